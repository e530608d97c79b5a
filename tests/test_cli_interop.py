"""Interop with an independent JOSE library (joserfc): certpin's bundles verify with it, and a
bundle it makes (JWS JSON general serialization, ES256, kid) is accepted by `check-update`."""
import json

import joserfc.errors
import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import ECKey, KeySet

from support.cli import run
from support.signing import Key, pinset_doc, write_pinset


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return [Key(d, name) for name in ("a", "b", "c")]


def jose_key(key, private=False):
    """The joserfc key for a test Key, named by certpin's kid."""
    with open(key.path if private else key.pub, "rb") as f:
        return ECKey.import_key(f.read(), {"kid": key.kid})


def test_certpin_bundles_verify_with_joserfc(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 3, keys=keys[:2], threshold=2)
    out = tmp_path / "pins.jws"
    assert run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", out).status == 0
    assert run(capsys, "pinset", "sign", pins, "--key", keys[1].path, "-o", out).status == 0
    doc = json.loads(out.read_bytes())
    # joserfc checks EVERY signature, choosing the key by kid
    result = jose_jws.deserialize_json(doc, KeySet([jose_key(keys[0]), jose_key(keys[1])]), algorithms=["ES256"])
    with open(pins, "rb") as f:
        assert result.payload == f.read()
    assert [m.protected for m in result.members] == [{"alg": "ES256", "kid": k.kid} for k in keys[:2]]
    # and it refuses a tampered one: a flipped payload byte, or a key that did not sign
    tampered = dict(doc, payload=("B" if doc["payload"][0] != "B" else "C") + doc["payload"][1:])
    with pytest.raises(joserfc.errors.BadSignatureError):
        jose_jws.deserialize_json(tampered, KeySet([jose_key(keys[0]), jose_key(keys[1])]), algorithms=["ES256"])
    with pytest.raises(joserfc.errors.JoseError):
        jose_jws.deserialize_json(doc, KeySet([jose_key(keys[0]), jose_key(keys[2])]), algorithms=["ES256"])


def test_an_openssl_signature_added_by_certpin_verifies_with_joserfc(capsys, tmp_path, keys):
    import subprocess

    pins = write_pinset(tmp_path / "pins.json", 3, keys=keys[:2])
    assert run(capsys, "pinset", "sign", pins, "--signer", keys[1].pub, "--signing-input", tmp_path / "in").status == 0
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", keys[1].path, "-out", str(tmp_path / "s.der"),
                    str(tmp_path / "in")], check=True, capture_output=True, timeout=60)
    out = tmp_path / "pins.jws"
    assert run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "s.der", "--signer", keys[1].pub,
               "-o", out).status == 0
    result = jose_jws.deserialize_json(json.loads(out.read_bytes()), KeySet([jose_key(keys[1])]),
                                       algorithms=["ES256"])
    assert result.payload == open(pins, "rb").read()


def joserfc_bundle(payload, signers):
    members = [{"protected": {"alg": "ES256", "kid": k.kid}} for k in signers]
    ks = KeySet([jose_key(k, private=True) for k in signers])
    return json.dumps(jose_jws.serialize_json(members, payload, ks, algorithms=["ES256"])).encode()


def test_a_joserfc_bundle_is_accepted_by_check_update(capsys, tmp_path, keys):
    cur = write_pinset(tmp_path / "cur.json", 3, keys=keys, threshold=2)
    nxt = (json.dumps(pinset_doc(4, keys=keys, threshold=2), indent=2) + "\n").encode()
    (tmp_path / "two.jws").write_bytes(joserfc_bundle(nxt, keys[:2]))
    r = run(capsys, "pinset", "check-update", tmp_path / "two.jws", "--current", cur, "--json")
    assert r.status == 0, r
    assert r.json()["serial_to"] == 4 and [s["verdict"] for s in r.json()["signatures"]] == ["valid", "valid"]
    # one signer is not enough for a threshold of 2
    (tmp_path / "one.jws").write_bytes(joserfc_bundle(nxt, keys[:1]))
    r = run(capsys, "pinset", "check-update", tmp_path / "one.jws", "--current", cur, "--json")
    assert r.status == 1 and r.json()["reason"] == "threshold"
    # certpin adds its own signature to the joserfc bundle
    (tmp_path / "v4.json").write_bytes(nxt)
    r = run(capsys, "pinset", "sign", tmp_path / "v4.json", "--key", keys[2].path, "-o", tmp_path / "one.jws")
    assert r.status == 0, r
    assert run(capsys, "pinset", "check-update", tmp_path / "one.jws", "--current", cur).status == 0
