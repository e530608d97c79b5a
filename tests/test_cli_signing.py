"""Signed pinset updates, host side: keygen --signing, the pinset "update" section, pinset sign
(own keys, several signers, external signers with openssl and an HSM-like signer), lint rules."""
import base64
import json
import os
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

import certpin
from certpin_host import lint
from support.cli import run
from support.jws import b64url, unb64url
from support.signing import Key, fake_pin, pinset_doc, today, write_pinset


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return [Key(d, name) for name in ("a", "b", "c")]


def load(path):
    with open(str(path)) as f:
        return json.load(f)


def read(path):
    with open(str(path), "rb") as f:
        return f.read()


def bundle_doc(path):
    return json.loads(read(path))


def verifies(key, bundle, i):
    """Independent check of signature i of a bundle with cryptography (RFC 7515 signing input)."""
    sig = bundle["signatures"][i]
    raw = unb64url(sig["signature"])
    assert len(raw) == 64
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.key.public_key().verify(der, (sig["protected"] + "." + bundle["payload"]).encode(),
                                    ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- keygen --signing


def test_keygen_signing_makes_a_private_p256_key_and_prints_its_line_and_kid(capsys, tmp_path):
    path = tmp_path / "sign.pem"
    r = run(capsys, "keygen", "--signing", path, "--public", tmp_path / "sign.pub.pem")
    assert r.status == 0, r
    (line, what_line), (kid, what_kid) = [x.split("  ", 1) for x in r.out.splitlines()]  # labelled (issue 18)
    assert what_line.startswith("update.keys line of ") and what_kid.startswith("kid of ")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = serialization.load_pem_private_key(read(path), None)
    assert isinstance(key.curve, ec.SECP256R1)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert line == base64.b64encode(spki).decode()
    assert kid == "sha256/" + base64.b64encode(__import__("hashlib").sha256(spki).digest()).decode()
    assert "update.keys" in r.err and "OFFLINE" in r.err
    # never overwritten
    before = read(path)
    r = run(capsys, "keygen", "--signing", path)
    assert r.status == 2 and "already exists" in r.err and read(path) == before


@pytest.mark.parametrize("argv, words", [
    (["--signing", "x.pem", "--type", "rsa"], "P-256"),
    (["--signing", "x.pem", "--curve", "P-384"], "P-256"),
    (["y.pem", "--signing", "x.pem"], "not both"),
    ([], "give FILE"),
])
def test_keygen_signing_refuses_other_key_types(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    r = run(capsys, "keygen", *argv)
    assert r.status == 2 and words in r.err, r
    assert not os.listdir(tmp_path)


def test_a_keygen_signing_key_is_used_by_the_other_commands(capsys, tmp_path):
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    line_a = run(capsys, "keygen", "--signing", a).out.split()[0]
    line_b = run(capsys, "keygen", "--signing", b).out.split()[0]
    pins = tmp_path / "pins.json"
    r = run(capsys, "pinset", "new", pins, "api.example.com", "--pin", fake_pin(1), "--pin", fake_pin(2),
            "--update-key", a, "--update-key", b, "--expires", today(100))
    assert r.status == 0, r
    assert load(pins)["update"] == {"keys": [line_a, line_b], "threshold": 1}


# ---------------------------------------------------------------- the update section


def test_new_writes_update_and_issued_in_order(capsys, tmp_path, keys):
    path = tmp_path / "pins.json"
    r = run(capsys, "pinset", "new", path, "api.example.com", "--pin", fake_pin(1), "--pin", fake_pin(2),
            "--expires", today(100), "--update-key", keys[0].pub, "--update-key", keys[1].path,
            "--threshold", "2", "--update-url", "https://updates.example.com/fleet-a/certpin.jws")
    assert r.status == 0, r
    assert "update: 2 key(s), threshold 2" in r.out and "lint:" not in r.err, r
    text = path.read_text()
    assert list(json.loads(text)) == ["format", "serial", "issued", "expires", "update", "hosts"]
    data = json.loads(text)
    assert data["issued"] == today() and data["serial"] == 1
    assert data["update"] == {"keys": [keys[0].line, keys[1].line], "threshold": 2,
                              "url": "https://updates.example.com/fleet-a/certpin.jws"}
    assert list(data["update"]) == ["keys", "threshold", "url"]
    ps = certpin.loads(text)
    assert ps.serial == 1 and ps.issued is not None
    assert run(capsys, "pinset", "lint", path).status == 0


def test_new_without_update_keys_is_warned_about(capsys, tmp_path):
    path = tmp_path / "pins.json"
    r = run(capsys, "pinset", "new", path, "api.example.com", "--pin", fake_pin(1), "--pin", fake_pin(2),
            "--expires", today(100))
    assert r.status == 0
    assert "lint: warning: no \"update\"" in r.err and "reflashing" in r.err
    assert "update" not in load(path) and load(path)["issued"] == today()


def test_set_update_changes_keys_threshold_url_bumps_serial_and_issued(capsys, tmp_path, keys):
    path = write_pinset(tmp_path / "pins.json", 7, keys=keys[:2], issued=today(-30))
    r = run(capsys, "pinset", "set-update", path, "--threshold", "2", "--update-url", "http://10.0.0.1/p.jws")
    assert r.status == 0, r
    d = load(path)
    assert d["serial"] == 8 and d["issued"] == today()
    assert d["update"] == {"keys": [keys[0].line, keys[1].line], "threshold": 2, "url": "http://10.0.0.1/p.jws"}
    assert "serial 7 -> 8" in r.out
    # rotate: the key list is replaced as given
    r = run(capsys, "pinset", "set-update", path, "--update-key", keys[1].pub, "--update-key", keys[2].pub,
            "--no-update-url")
    assert r.status == 0, r
    assert load(path)["update"] == {"keys": [keys[1].line, keys[2].line], "threshold": 2}
    assert load(path)["serial"] == 9
    # add keeps the section and stamps too
    r = run(capsys, "pinset", "add", path, "mqtt.example.com", "--pin", fake_pin(3), "--pin", fake_pin(4))
    assert r.status == 0 and load(path)["serial"] == 10 and load(path)["update"]["threshold"] == 2


def test_set_update_on_a_pinset_without_update(capsys, tmp_path, keys):
    path = write_pinset(tmp_path / "pins.json", 1)
    r = run(capsys, "pinset", "set-update", path, "--threshold", "1")
    assert r.status == 2 and "--update-key" in r.err
    r = run(capsys, "pinset", "set-update", path, "--update-key", keys[0].pub)
    assert r.status == 0 and load(path)["update"] == {"keys": [keys[0].line], "threshold": 1}
    assert "lint: warning: update: a single update key" in r.err


@pytest.mark.parametrize("argv, words", [
    ([], "nothing to set"),
    (["--threshold", "3"], "between 1 and the number of update keys (2)"),
    (["--threshold", "0"], "between 1"),
    (["--update-url", "ftp://x.example.com/p"], "http:// or https://"),
    (["--update-url", "https://x.example.com/a b"], "printable ASCII"),
    (["--update-url", "https://" + "x" * 600], "at most 512"),
    (["--update-key", "{a}", "--update-key", "{a}"], "twice"),
    (["--update-key", "{p384}"], "P-256"),
    (["--update-key", "{rsa}"], "P-256"),
    (["--update-key", "{missing}"], "no such file"),
])
def test_set_update_refuses_bad_input_and_leaves_the_file(capsys, tmp_path, keys, argv, words):
    path = write_pinset(tmp_path / "pins.json", 1, keys=keys[:2])
    before = read(path)
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {"a": keys[0].pub, "missing": str(tmp_path / "nope.pem")}
    for name, k in (("p384", p384), ("rsa", rsa_key)):
        files[name] = str(tmp_path / (name + ".pem"))
        with open(files[name], "wb") as f:
            f.write(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    r = run(capsys, "pinset", "set-update", path, *[a.format(**files) for a in argv])
    assert r.status == 2 and words in r.err, r
    assert read(path) == before


def test_from_server_writes_the_update_section_too(capsys, tmp_path, keys, pki, serve):
    s = serve(pki.genuine)
    backup = tmp_path / "backup.pem"
    assert run(capsys, "keygen", backup).status == 0
    path = tmp_path / "pins.json"
    argv = ["pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("root.pem"),
            "--backup", backup, "--expires", today(90)]
    r = run(capsys, *argv, "--update-key", keys[0].pub, "--update-key", keys[1].pub, "--threshold", "2")
    assert r.status == 0, r
    d = load(path)
    assert d["update"] == {"keys": [keys[0].line, keys[1].line], "threshold": 2} and d["issued"] == today()
    # again on the existing file: serial bumped, the update section kept, the URL added
    r = run(capsys, *argv, "--update-url", "http://u.example.com/p.jws")
    assert r.status == 0, r
    d = load(path)
    assert d["serial"] == 2 and d["update"]["threshold"] == 2 and d["update"]["url"] == "http://u.example.com/p.jws"


def test_set_update_missing_file(capsys, tmp_path, keys):
    r = run(capsys, "pinset", "set-update", tmp_path / "nope.json", "--update-key", keys[0].pub)
    assert r.status == 2 and "no such file" in r.err


# ---------------------------------------------------------------- lint


def lint_doc(doc, **kw):
    return lint.lint_pinset_text(json.dumps(doc), **kw)


def has(findings, level, words):
    return any(f.level == level and words in f.message for f in findings)


def test_lint_is_clean_with_two_update_keys(keys):
    assert lint_doc(pinset_doc(1, keys=keys[:2])) == []
    assert lint_doc(pinset_doc(1, keys=keys, threshold=3, url="https://u.example.com/x.jws")) == []


def _doc_with(k, **update):
    d = pinset_doc(1, keys=k[:2])
    d["update"].update(update)
    return d


@pytest.mark.parametrize("change, words", [
    (lambda k: _doc_with(k, threshold=3), "more than the 2 key(s)"),
    (lambda k: _doc_with(k, threshold=0), "below 1"),
    (lambda k: _doc_with(k, threshold=-1), "below 1"),
    (lambda k: _doc_with(k, threshold=True), "must be an integer"),
    (lambda k: _doc_with(k, threshold=1.0), "must be an integer"),
    (lambda k: _doc_with(k, threshold="1"), "must be an integer"),
    (lambda k: _doc_with(k, keys=[k[0].line, k[0].line]), "listed twice"),
    (lambda k: _doc_with(k, keys=[k[0].line, "MFkw"]), "not"),
    (lambda k: _doc_with(k, keys=[k[0].line, k[1].line.rstrip("=")]), "base64"),
    (lambda k: _doc_with(k, keys=[k[0].line, base64.b64encode(b"garbage").decode()]), "SubjectPublicKeyInfo"),
    (lambda k: _doc_with(k, keys=[k[0].line, _line(rsa.generate_private_key(public_exponent=65537, key_size=2048))]),
     "not an ECDSA P-256 key"),
    (lambda k: _doc_with(k, keys=[k[0].line, _line(ec.generate_private_key(ec.SECP384R1()))]),
     "not an ECDSA P-256 key"),
    (lambda k: _doc_with(k, keys=[k[0].line, _compressed(k[1])]), "uncompressed"),
    (lambda k: _doc_with(k, keys=[]), "non-empty list"),
    (lambda k: _doc_with(k, keys=k[0].line), "non-empty list"),
    (lambda k: _doc_with(k, keys=[k[0].line, 5]), "string"),
    (lambda k: _doc_with(k, keys=[_line(ec.generate_private_key(ec.SECP256R1())) for _ in range(17)],
                         threshold=1), "at most 16"),
    (lambda k: _doc_with(k, url="ftp://x.example.com/p"), "http:// or https://"),
    (lambda k: _doc_with(k, url=5), "string"),
    (lambda k: _doc_with(k, url="https://x.example.com/\u00e9"), "printable ASCII"),
    (lambda k: _doc_with(k, urls="https://x.example.com/"), "unknown key 'urls'"),
    (lambda k: {**pinset_doc(1, keys=k[:2]), "update": [k[0].line]}, "must be an object"),
    (lambda k: {**pinset_doc(1, keys=k[:2]), "update": {"keys": [k[0].line, k[1].line]}}, "missing \"threshold\""),
    (lambda k: {**pinset_doc(1, keys=k[:2]), "update": {"threshold": 1}}, "missing \"keys\""),
    (lambda k: pinset_doc(1, keys=k[:2], hosts={"a.example.com": {"pins": [k[0].kid, fake_pin(1)]}}),
     "also pinned for a.example.com"),
    (lambda k: pinset_doc(1, keys=k[:2], issued="2026-02-30"), "\"issued\""),
    (lambda k: pinset_doc(1, keys=k[:2], issued="\uff12\uff10\uff12\uff16-01-01"), "ASCII digits"),
    (lambda k: pinset_doc(1, keys=k[:2], issued=today(100), expires=today(50)), "after \"expires\""),
    (lambda k: pinset_doc(1, keys=k[:2], issued=today(30)), "in the future"),
])
def test_lint_update_errors(keys, change, words):
    findings = lint_doc(change(keys))
    assert has(findings, "error", words), findings


def _line(key):
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _compressed(k):
    """The DER SPKI of k with a compressed point (valid for cryptography, not what a device reads)."""
    point = k.key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    der = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200") + point
    return base64.b64encode(der).decode()


def test_lint_update_warnings(keys):
    findings = lint_doc(pinset_doc(1, keys=keys[:1]))
    assert [f.level for f in findings] == ["warning"] and has(findings, "warning", "a single update key")
    findings = lint_doc(pinset_doc(1))
    assert [f.level for f in findings] == ["warning"] and has(findings, "warning", "no \"update\"")


def test_lint_agrees_with_device_on_update_refusals(keys):
    # Every file with an update/issued problem the device refuses gets a specific lint error.
    docs = [
        _doc_with(keys, threshold=3), _doc_with(keys, threshold=0), _doc_with(keys, threshold=True),
        _doc_with(keys, threshold=1.0), _doc_with(keys, keys=[keys[0].line, keys[0].line]),
        _doc_with(keys, keys=[keys[0].line, "MFkw"]), _doc_with(keys, keys=[]),
        _doc_with(keys, keys=[keys[0].line, _line(ec.generate_private_key(ec.SECP384R1()))]),
        _doc_with(keys, keys=[keys[0].line, keys[1].line.rstrip("=")]),
        _doc_with(keys, keys=[_line(ec.generate_private_key(ec.SECP256R1())) for _ in range(17)]),
        _doc_with(keys, url="ftp://x.example.com/p"), _doc_with(keys, url="https://x.example.com/ a"),
        _doc_with(keys, url="https://" + "x" * 600), _doc_with(keys, urls="https://x.example.com/"),
        {**pinset_doc(1, keys=keys[:2]), "update": {"keys": [keys[0].line]}},
        {**pinset_doc(1, keys=keys[:2]), "update": {"threshold": 1}},
        {**pinset_doc(1, keys=keys[:2]), "update": None},
        pinset_doc(1, keys=keys[:2], issued="2026-02-30"),
        pinset_doc(1, keys=keys[:2], issued="2026-1-1"),
        pinset_doc(1, keys=keys[:2], issued=today(100), expires=today(50)),
    ]
    for doc in docs:
        text = json.dumps(doc)
        with pytest.raises(certpin.Error):  # each of these is refused by the device ...
            certpin.loads(text)
        own = [f for f in lint.lint_pinset_text(text) if f.level == "error" and "a device refuses" not in f.message]
        assert own, doc  # ... and lint's own rules say why, specifically


# ---------------------------------------------------------------- sign


def test_sign_then_add_a_second_signature_on_another_machine(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    out = tmp_path / "pins.jws"
    r = run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", out)
    assert r.status == 0, r
    assert "signed by " + keys[0].kid in r.out and "1 signature(s)" in r.out
    b = bundle_doc(out)
    assert set(b) == {"payload", "signatures"} and unb64url(b["payload"]) == read(pins)  # the exact bytes
    assert json.loads(unb64url(b["signatures"][0]["protected"])) == {"alg": "ES256", "kid": keys[0].kid}
    assert set(b["signatures"][0]) == {"protected", "signature"}
    assert verifies(keys[0], b, 0)
    for field in ("payload",):
        assert "=" not in b[field] and "+" not in b[field] and "/" not in b[field]
    # the second signer, with a copy of the pinset and the bundle
    copy = tmp_path / "machine-b"
    copy.mkdir()
    (copy / "pins.json").write_bytes(read(pins))
    (copy / "pins.jws").write_bytes(read(out))
    r = run(capsys, "pinset", "sign", copy / "pins.json", "--key", keys[1].path, "-o", copy / "pins.jws")
    assert r.status == 0, r
    b = bundle_doc(copy / "pins.jws")
    assert len(b["signatures"]) == 2 and verifies(keys[0], b, 0) and verifies(keys[1], b, 1)
    assert "2 signature(s) by 2 distinct key(s)" in r.out
    # signing again with a key that already signed adds nothing
    before = read(copy / "pins.jws")
    r = run(capsys, "pinset", "sign", copy / "pins.json", "--key", keys[1].path, "-o", copy / "pins.jws")
    assert r.status == 0 and "already signed" in r.out
    assert read(copy / "pins.jws") == before


def test_sign_with_several_keys_at_once_and_a_size_under_the_device_limit(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    out = tmp_path / "pins.jws"
    r = run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "--key", keys[1].path, "--key", keys[2].path,
            "-o", out)
    assert r.status == 0, r
    b = bundle_doc(out)
    assert [json.loads(unb64url(s["protected"]))["kid"] for s in b["signatures"]] == [k.kid for k in keys]
    assert all(verifies(k, b, i) for i, k in enumerate(keys))


def test_sign_refuses_to_add_to_a_bundle_of_another_pinset(capsys, tmp_path, keys):
    a = write_pinset(tmp_path / "a.json", 2, keys=keys[:2])
    b = write_pinset(tmp_path / "b.json", 3, keys=keys[:2])
    out = tmp_path / "pins.jws"
    assert run(capsys, "pinset", "sign", a, "--key", keys[0].path, "-o", out).status == 0
    before = read(out)
    r = run(capsys, "pinset", "sign", b, "--key", keys[1].path, "-o", out)
    assert r.status == 2 and "different pinset" in r.err and "serial 2" in r.err, r
    assert read(out) == before
    # nor overwrite a file that is not a bundle, nor write over PINSET
    r = run(capsys, "pinset", "sign", b, "--key", keys[1].path, "-o", a)
    assert r.status == 2 and "not a bundle" in r.err
    r = run(capsys, "pinset", "sign", b, "--key", keys[1].path, "-o", b)
    assert r.status == 2 and "PINSET itself" in r.err


def test_sign_refuses_what_a_device_or_lint_refuses(capsys, tmp_path, keys):
    out = tmp_path / "x.jws"
    # the device refuses the file: never signed, --force or not
    bad = pinset_doc(2, keys=keys[:2])
    bad["update"]["threshold"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = run(capsys, "pinset", "sign", tmp_path / "bad.json", "--key", keys[0].path, "-o", out, "--force")
    assert r.status == 1 and "device would refuse" in r.err and "not signed" in r.err, r
    # lint errors: refused unless --force
    single = pinset_doc(2, keys=keys[:2], hosts={"api.example.com": {"pins": [fake_pin(1)]}})
    (tmp_path / "single.json").write_text(json.dumps(single))
    r = run(capsys, "pinset", "sign", tmp_path / "single.json", "--key", keys[0].path, "-o", out)
    assert r.status == 1 and "--force" in r.err and "not signed" in r.err, r
    assert not out.exists()
    r = run(capsys, "pinset", "sign", tmp_path / "single.json", "--key", keys[0].path, "-o", out, "--force")
    assert r.status == 0, r
    # warnings: refused with --strict only
    one_key = write_pinset(tmp_path / "one.json", 2, keys=keys[:1])
    r = run(capsys, "pinset", "sign", one_key, "--key", keys[0].path, "-o", tmp_path / "one.jws", "--strict")
    assert r.status == 1 and "single update key" in r.err
    # no serial: a device could not order it
    noserial = pinset_doc(2, keys=keys[:2])
    del noserial["serial"]
    (tmp_path / "noserial.json").write_text(json.dumps(noserial))
    r = run(capsys, "pinset", "sign", tmp_path / "noserial.json", "--key", keys[0].path, "-o", tmp_path / "n.jws")
    assert r.status == 1 and "serial" in r.err
    # too large for a device's 16 KiB bundle limit
    hosts = {"h%03d.example.com" % i: {"pins": [fake_pin("a%d" % i), fake_pin("b%d" % i)]} for i in range(100)}
    big = write_pinset(tmp_path / "big.json", 2, keys=keys[:2], hosts=hosts)
    assert os.path.getsize(big) > 12288
    r = run(capsys, "pinset", "sign", big, "--key", keys[0].path, "-o", tmp_path / "big.jws")
    assert r.status == 1 and "16384" in r.err and not (tmp_path / "big.jws").exists(), r


def test_sign_refuses_keys_that_are_not_p256_private_keys(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    out = tmp_path / "pins.jws"
    for name, key in (("p384", ec.generate_private_key(ec.SECP384R1())),
                      ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))):
        path = tmp_path / (name + ".pem")
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        r = run(capsys, "pinset", "sign", pins, "--key", path, "-o", out)
        assert r.status == 2 and "P-256" in r.err, r
    r = run(capsys, "pinset", "sign", pins, "--key", keys[0].pub, "-o", out)
    assert r.status == 2 and "not a private key" in r.err and "--signer" in r.err, r
    (tmp_path / "garbage.pem").write_text("hello")
    r = run(capsys, "pinset", "sign", pins, "--key", tmp_path / "garbage.pem", "-o", out)
    assert r.status == 2 and "Traceback" not in r.err, r
    assert not out.exists()


def test_sign_with_an_encrypted_key_reads_the_passphrase(capsys, tmp_path, keys, monkeypatch):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    enc = tmp_path / "enc.pem"
    enc.write_bytes(keys[0].key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(b"s3cret")))
    out = tmp_path / "pins.jws"
    monkeypatch.delenv("CERTPIN_PASSPHRASE", raising=False)
    r = run(capsys, "pinset", "sign", pins, "--key", enc, "-o", out)
    assert r.status == 2 and "CERTPIN_PASSPHRASE" in r.err
    monkeypatch.setenv("CERTPIN_PASSPHRASE", "wrong")
    r = run(capsys, "pinset", "sign", pins, "--key", enc, "-o", out)
    assert r.status == 2 and "wrong passphrase" in r.err
    monkeypatch.setenv("CERTPIN_PASSPHRASE", "s3cret")
    r = run(capsys, "pinset", "sign", pins, "--key", enc, "-o", out)
    assert r.status == 0, r
    assert verifies(keys[0], bundle_doc(out), 0)


@pytest.mark.parametrize("argv, words", [
    (["-o", "x.jws"], "nothing to sign with"),
    (["--key", "{a}"], "-o BUNDLE"),
    (["--signature", "s.der", "-o", "x.jws"], "one --signer"),
    (["--signer", "{a}", "--signing-input", "in.bin", "--key", "{a}"], "exactly one --signer"),
    (["--signing-input", "in.bin"], "exactly one --signer"),
])
def test_sign_usage_mistakes(capsys, tmp_path, keys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    r = run(capsys, "pinset", "sign", pins, *[a.format(a=keys[0].path) for a in argv])
    assert r.status == 2 and words in r.err, r


# ---------------------------------------------------------------- external signing


def openssl(*args):
    p = subprocess.run(["openssl"] + [str(a) for a in args], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def test_external_signing_with_the_openssl_command_line(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    to_sign = tmp_path / "to-sign.bin"
    r = run(capsys, "pinset", "sign", pins, "--signer", keys[0].pub, "--signing-input", to_sign)
    assert r.status == 0, r
    assert "openssl dgst -sha256 -sign" in r.out and not (tmp_path / "pins.jws").exists()
    data = read(to_sign)
    protected, payload = data.decode("ascii").split(".")
    assert json.loads(unb64url(protected)) == {"alg": "ES256", "kid": keys[0].kid}
    assert unb64url(payload) == read(pins)
    # the operator's command, on the machine that holds the key
    openssl("dgst", "-sha256", "-sign", keys[0].path, "-out", tmp_path / "sig.der", to_sign)
    out = tmp_path / "pins.jws"
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "sig.der", "--signer", keys[0].pub, "-o", out)
    assert r.status == 0, r
    b = bundle_doc(out)
    assert b["signatures"][0]["protected"] == protected and verifies(keys[0], b, 0)
    # and a second signer with openssl again, added to the same bundle; openssl verifies the result too
    run(capsys, "pinset", "sign", pins, "--signer", keys[1].pub, "--signing-input", tmp_path / "b.bin")
    openssl("dgst", "-sha256", "-sign", keys[1].path, "-out", tmp_path / "b.der", tmp_path / "b.bin")
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "b.der", "--signer", keys[1].pub, "-o", out)
    assert r.status == 0 and len(bundle_doc(out)["signatures"]) == 2
    b = bundle_doc(out)
    sig = b["signatures"][1]
    raw = unb64url(sig["signature"])
    (tmp_path / "check.der").write_bytes(utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                                                    int.from_bytes(raw[32:], "big")))
    (tmp_path / "check.in").write_bytes((sig["protected"] + "." + b["payload"]).encode())
    p = openssl("dgst", "-sha256", "-verify", keys[1].pub, "-signature", tmp_path / "check.der", tmp_path / "check.in")
    assert b"Verified OK" in p.stdout


def test_a_signature_over_the_pinset_file_itself_is_refused_with_what_to_sign(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    openssl("dgst", "-sha256", "-sign", keys[0].path, "-out", tmp_path / "sig.der", pins)  # the natural mistake
    out = tmp_path / "pins.jws"
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "sig.der", "--signer", keys[0].pub, "-o", out)
    assert r.status == 2 and "over the pinset file itself" in r.err, r
    assert "--signing-input" in r.err and "openssl dgst -sha256 -sign" in r.err
    assert not out.exists()
    # a signature by another key, or over other bytes: refused, saying so
    openssl("dgst", "-sha256", "-sign", keys[1].path, "-out", tmp_path / "other.der", pins)
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "other.der", "--signer", keys[0].pub, "-o", out)
    assert r.status == 2 and "does not verify" in r.err and keys[0].kid in r.err
    (tmp_path / "junk.der").write_bytes(b"\x30\x03junk")
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "junk.der", "--signer", keys[0].pub, "-o", out)
    assert r.status == 2 and "not an ECDSA signature" in r.err


class HSM:
    """A signer that holds its key elsewhere: certpin gets only the public key and signatures back."""

    def __init__(self):
        self._key = ec.generate_private_key(ec.SECP256R1())

    def write_public(self, path):
        with open(str(path), "wb") as f:
            f.write(self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))

    def sign_raw(self, data):
        """PKCS#11 CKM_ECDSA_SHA256 style: raw r || s."""
        r, s = utils.decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def sign_kms_base64(self, data):
        """Cloud KMS style: a DER signature, base64 in a text file."""
        return base64.b64encode(self._key.sign(data, ec.ECDSA(hashes.SHA256()))) + b"\n"

    def sign_digest_as_message(self, data):
        """A mistake: hashing the digest again."""
        import hashlib

        return self._key.sign(hashlib.sha256(data).digest(), ec.ECDSA(hashes.SHA256()))


def test_hsm_like_signing_with_only_the_public_key_on_this_machine(capsys, tmp_path, keys):
    hsm1, hsm2 = HSM(), HSM()
    hsm1.write_public(tmp_path / "hsm1.pub.pem")
    hsm2.write_public(tmp_path / "hsm2.pub.pem")

    doc = pinset_doc(4)
    doc["update"] = {"keys": [_pub_line(tmp_path / "hsm1.pub.pem"), _pub_line(tmp_path / "hsm2.pub.pem")],
                     "threshold": 2}
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps(doc, indent=2) + "\n")
    out = tmp_path / "pins.jws"
    for i, (hsm, pub, how) in enumerate(((hsm1, "hsm1.pub.pem", "raw"), (hsm2, "hsm2.pub.pem", "kms"))):
        r = run(capsys, "pinset", "sign", pins, "--signer", tmp_path / pub, "--signing-input", tmp_path / "in.bin")
        assert r.status == 0, r
        data = read(tmp_path / "in.bin")
        sig = hsm.sign_raw(data) if how == "raw" else hsm.sign_kms_base64(data)
        (tmp_path / "sig.bin").write_bytes(sig)
        r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "sig.bin", "--signer", tmp_path / pub,
                "-o", out)
        assert r.status == 0, r
        assert len(bundle_doc(out)["signatures"]) == i + 1
    # hashing twice is recognised and explained
    run(capsys, "pinset", "sign", pins, "--signer", tmp_path / "hsm1.pub.pem", "--signing-input", tmp_path / "in.bin")
    (tmp_path / "twice.der").write_bytes(hsm1.sign_digest_as_message(read(tmp_path / "in.bin")))
    r = run(capsys, "pinset", "sign", pins, "--signature", tmp_path / "twice.der", "--signer",
            tmp_path / "hsm1.pub.pem", "-o", tmp_path / "other.jws")
    assert r.status == 2 and "hashed twice" in r.err, r


def _pub_line(path):
    key = serialization.load_pem_public_key(read(path))
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def test_an_existing_bad_signature_by_the_same_key_is_replaced(capsys, tmp_path, keys):
    pins = write_pinset(tmp_path / "pins.json", 2, keys=keys[:2])
    out = tmp_path / "pins.jws"
    assert run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", out).status == 0
    b = bundle_doc(out)
    b["signatures"][0]["signature"] = b64url(b"\x01" * 64)
    out.write_text(json.dumps(b))
    r = run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", out)
    assert r.status == 0 and "does not verify" in r.out, r
    b = bundle_doc(out)
    assert len(b["signatures"]) == 1 and verifies(keys[0], b, 0)


def test_lint_agrees_with_device_on_random_update_sections(keys):
    # Random update/issued members from pools of good and bad values: whenever the
    # device refuses the file, lint's own rules must say why (never only "a device refuses").
    import random

    rng = random.Random(8)
    p384 = _line(ec.generate_private_key(ec.SECP384R1()))
    key_pool = [keys[0].line, keys[1].line, keys[2].line, keys[0].line, p384, "MFkw", keys[1].line.rstrip("="),
                _compressed(keys[2]), "", 5, None, keys[0].line + "\n", " " + keys[1].line]
    value_pool = {
        "threshold": [1, 2, 3, 0, -1, 17, True, 1.0, "1", None, 2 ** 40],
        "url": ["https://u.example.com/x.jws", "http://10.0.0.1/p", "ftp://x/y", "https://", "https://a b",
                "https://x.example.com/\u00e9", 5, "", "http://" + "x" * 510],
    }
    refused = 0
    for _ in range(300):
        doc = pinset_doc(1)
        if rng.random() < 0.9:
            upd = {}
            if rng.random() < 0.9:
                upd["keys"] = [rng.choice(key_pool) for _ in range(rng.choice((0, 1, 2, 3, 17)))] \
                    if rng.random() < 0.9 else rng.choice(key_pool)
            for k, pool in value_pool.items():
                if rng.random() < (0.9 if k == "threshold" else 0.5):
                    upd[k] = rng.choice(pool)
            if rng.random() < 0.05:
                upd["extra"] = 1
            doc["update"] = upd if rng.random() < 0.95 else rng.choice([[], "x", None, 1])
        if rng.random() < 0.3:
            doc["issued"] = rng.choice(["2026-02-30", "2026-1-01", today(), today(400), 20260101, None,
                                        "\u0662\u0660\u0662\u0666-01-01"])
        text = json.dumps(doc)
        try:
            certpin.loads(text)
        except certpin.Error:
            refused += 1
            own = [f for f in lint.lint_pinset_text(text) if f.level == "error" and "a device refuses" not in f.message]
            assert own, doc
    assert refused > 150  # the pools reach the device's refusals


def test_sign_warns_when_the_signing_key_is_a_host_pin(capsys, tmp_path, keys):
    """(issue 18) a TLS key used as a signing key: its pin is also a host's pin in the pinset."""
    a, b = keys[0], keys[1]
    path = write_pinset(tmp_path / "p.json", 3, keys=[b], hosts={"api.example.com": {"pins": [a.kid, fake_pin(1)]}})
    r = run(capsys, "pinset", "sign", path, "--key", a.path, "-o", tmp_path / "p.jws")
    assert r.status == 0, r
    assert "WARNING" in r.err and "is the key pinned for api.example.com" in r.err, r
    r = run(capsys, "pinset", "sign", path, "--key", b.path, "-o", tmp_path / "q.jws")
    assert r.status == 0 and "is the key pinned for" not in r.err, r
