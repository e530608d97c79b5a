"""Interop with an independent JOSE library (joserfc, a `dev` extra).

- Bundles joserfc makes (general JSON serialization, ES256, two signers, a
  per-signature unprotected header) install on the device: CPython and the
  MicroPython unix port.
- Bundles made by the test signer (tests/support/jws.py) verify with joserfc,
  and joserfc refuses what the device refuses for the signature.
"""
import json

import pytest
from joserfc import jws as jose
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet

from support import jws
from test_update import run_steps, upd, write

K1, K2, K3 = (jws.new_key() for _ in range(3))
CUR = jws.pinset(1, [K1, K2, K3], threshold=2)
NEW = jws.pinset(2, [K1, K2, K3], threshold=2)


def jose_key(k):
    return ECKey.import_key(k, {"kid": jws.kid(k)})


def joserfc_bundle(payload, keys):
    members = [{"protected": {"alg": "ES256", "kid": jws.kid(k)}, "header": {"jku": "https://keys.example.com/fleet.json"}} for k in keys]
    value = jose.serialize_json(members, payload, KeySet([jose_key(k) for k in keys]), algorithms=["ES256"])
    return json.dumps(value).encode()


def test_joserfc_bundles_install_on_the_device(runtime, tmp_path):
    b = joserfc_bundle(NEW, [K1, K3])
    assert b'"header"' in b
    out, _ = run_steps(runtime, tmp_path, [write(CUR), upd(b), {"op": "read", "name": "certpin.json"},
                                           write(CUR), upd(joserfc_bundle(NEW, [K2]))])
    assert out[1]["ok"] and out[1]["serial"] == 2, out[1]
    assert out[2] == NEW.decode()
    assert out[4]["reason"] == "threshold", out[4]


def test_certpin_bundles_verify_with_joserfc():
    value = json.loads(jws.bundle(NEW, [K1, K2]))
    keys = KeySet([jose_key(k) for k in (K1, K2, K3)])
    obj = jose.deserialize_json(value, keys, algorithms=["ES256"])
    assert obj.payload == NEW
    assert [m.protected["kid"] for m in obj.members] == [jws.kid(K1), jws.kid(K2)]
    # A flipped bit in a signature: joserfc refuses it too.
    s = value["signatures"][0]["signature"]
    value["signatures"][0]["signature"] = s[:5] + ("A" if s[5] != "A" else "B") + s[6:]
    with pytest.raises(BadSignatureError):
        jose.deserialize_json(value, keys, algorithms=["ES256"])
