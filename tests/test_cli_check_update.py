"""certpin pinset check-update: the publishing gate, decided by the device library's own rules."""
import json

import pytest

from support.cli import run, run_subprocess
from support.jws import b64url
from support.signing import Key, bundle, fake_pin, pinset_doc, today, write_pinset
from support.vboard_fixtures import vboard  # noqa: F401


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return [Key(d, name) for name in ("a", "b", "c", "d")]


def pinset_bytes(*args, **kw):
    return (json.dumps(pinset_doc(*args, **kw), indent=2) + "\n").encode()


def check(capsys, tmp_path, current, bndl, *extra):
    cur, b = tmp_path / "current.json", tmp_path / "update.jws"
    cur.write_bytes(current)
    b.write_bytes(bndl)
    return run(capsys, "pinset", "check-update", b, "--current", cur, *extra)


def test_accepted_bundle_made_by_the_cli_prints_what_changes(capsys, tmp_path, keys):
    cur = write_pinset(tmp_path / "v1.json", 1, keys=keys[:2])
    nxt = tmp_path / "v2.json"
    nxt.write_bytes(open(cur, "rb").read())
    assert run(capsys, "pinset", "add", nxt, "mqtt.example.com", "--pin", fake_pin(1), "--pin", fake_pin(2)).status == 0
    assert run(capsys, "pinset", "set-update", nxt, "--update-key", keys[1].pub, "--update-key", keys[2].pub,
               "--update-url", "https://u.example.com/p.jws").status == 0
    assert run(capsys, "pinset", "sign", nxt, "--key", keys[0].path, "-o", tmp_path / "v2.jws").status == 0
    # v2 names new update keys: a threshold of them signs it too (rule 6b, new_threshold)
    assert run(capsys, "pinset", "sign", nxt, "--key", keys[1].path, "-o", tmp_path / "v2.jws").status == 0
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", cur)
    assert r.status == 0, r
    assert "installs it: serial 1 -> 3" in r.out
    assert "signatures[0] %s: valid" % keys[0].kid in r.out
    assert "host mqtt.example.com added (2 pins)" in r.out
    assert "update keys: +%s -%s" % (keys[2].kid, keys[0].kid) in r.out
    assert "update url: (none) -> https://u.example.com/p.jws" in r.out
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", cur, "--json")
    doc = r.json()
    assert r.status == 0 and doc["ok"] is True and doc["same"] is False and doc["reason"] is None
    assert doc["serial_from"] == 1 and doc["serial_to"] == 3 and doc["issued"] == today()
    assert doc["signatures"] == [{"index": 0, "kid": keys[0].kid, "verdict": "valid"},
                                 {"index": 1, "kid": keys[1].kid, "verdict": "valid"}]
    # the installed pinset itself, offered again: a no-op, although its signer
    # (keys[0]) is no longer an update key of it: nothing would change
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", nxt, "--json")
    assert r.status == 0 and r.json()["same"] is True, r
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", nxt)
    assert r.status == 0 and "a no-op" in r.out, r


def _reasons(keys):
    cur = pinset_bytes(5, keys=keys[:2])
    new = pinset_bytes(6, keys=keys[:2])
    a, c = keys[0], keys[2]
    signed = json.loads(bundle(new, [a]))
    cases = {
        "too_large": (cur, b'{"payload": "' + b"A" * 16400 + b'", "signatures": []}'),
        "not_jws": (cur, b"not json at all"),
        "not_jws (no signatures)": (cur, json.dumps({"payload": b64url(new), "signatures": []}).encode()),
        "not_jws (padding)": (cur, json.dumps({"payload": signed["payload"] + "=",
                                               "signatures": signed["signatures"]}).encode()),
        "not_jws (extra member)": (cur, json.dumps(dict(signed, extra=1)).encode()),
        "no_update_keys": (pinset_bytes(5), bundle(new, [a])),
        "no_serial": (json.dumps({k: v for k, v in pinset_doc(5, keys=keys[:2]).items() if k != "serial"}).encode(),
                      bundle(new, [a])),
        "unsupported_alg (none)": (cur, bundle(new, [a], header={"alg": "none", "kid": a.kid})),
        "unsupported_alg (HS256)": (cur, bundle(new, [a], header={"alg": "HS256", "kid": a.kid})),
        "unsupported_alg (ES384)": (cur, bundle(new, [a], header={"alg": "ES384", "kid": a.kid})),
        "unsupported_alg (crit)": (cur, bundle(new, [a], header={"alg": "ES256", "kid": a.kid, "crit": ["x"]})),
        "unknown_key": (cur, bundle(new, [c])),
        "bad_signature": (cur, bundle(new, [a], sig=b"\x01" * 64)),
        "bad_signature (short)": (cur, bundle(new, [a], sig=b"\x01" * 63)),
        "threshold": (pinset_bytes(5, keys=keys[:3], threshold=2), bundle(pinset_bytes(6, keys=keys[:3]), [a, a])),
        "bad_pinset": (cur, bundle(b'{"format": 1, "serial": 6, "hosts": {}}', [a])),
        "rollback": (cur, bundle(pinset_bytes(5, keys=keys[:2], hosts={"x.example.com": {
            "pins": [fake_pin(1), fake_pin(2)]}}), [a])),
        "rollback (older)": (cur, bundle(pinset_bytes(4, keys=keys[:2]), [a])),
        "expired": (cur, bundle(pinset_bytes(6, keys=keys[:2], issued=today(-30), expires=today(-1)), [a])),
    }
    return cases


def _lying_kid(payload, signer, named):
    """Signed by signer, but the header names another (trusted) key: the signature must not verify."""
    return bundle(payload, [signer], header={"alg": "ES256", "kid": named.kid})


@pytest.mark.parametrize("case", [
    "too_large", "not_jws", "not_jws (no signatures)", "not_jws (padding)", "not_jws (extra member)",
    "no_update_keys", "no_serial", "unsupported_alg (none)", "unsupported_alg (HS256)", "unsupported_alg (ES384)",
    "unsupported_alg (crit)", "unknown_key", "bad_signature", "bad_signature (short)", "threshold",
    "bad_pinset", "rollback", "rollback (older)", "expired"])
def test_every_refusal_is_exit_1_with_its_reason(capsys, tmp_path, keys, case):
    cur, bndl = _reasons(keys)[case]
    reason = case.split()[0]
    r = check(capsys, tmp_path, cur, bndl)
    assert r.status == 1, r
    assert "REFUSES it" in r.out and ("(%s)" % reason) in r.out, r
    r = check(capsys, tmp_path, cur, bndl, "--json")
    assert r.status == 1 and r.json()["ok"] is False and r.json()["reason"] == reason, r


def test_a_signature_whose_kid_names_another_key_does_not_verify(capsys, tmp_path, keys):
    cur = pinset_bytes(5, keys=keys[:2])
    r = check(capsys, tmp_path, cur, _lying_kid(pinset_bytes(6, keys=keys[:2]), keys[2], keys[0]))
    assert r.status == 1 and "(bad_signature)" in r.out, r


def test_threshold_two_of_three_counts_each_key_once(capsys, tmp_path, keys):
    a, b, c, d = keys
    cur = pinset_bytes(10, keys=[a, b, c], threshold=2)
    new = pinset_bytes(11, keys=[a, b, c], threshold=2)
    for signers, ok in (([a], False), ([a, a], False), ([a, a, a], False), ([a, d], False), ([d, a, d], False),
                        ([a, b], True), ([c, a], True), ([a, a, c], True), ([d, b, c], True)):
        r = check(capsys, tmp_path, cur, bundle(new, signers), "--json")
        assert r.status == (0 if ok else 1), (signers, r)
        if not ok:  # some signature was valid: short of the threshold
            assert r.json()["reason"] == "threshold", (signers, r)
    # a bad signature next to one good one still falls short, with the reason threshold
    one_bad = json.loads(bundle(new, [a]))
    one_bad["signatures"] += json.loads(bundle(new, [b], sig=b"\x02" * 64))["signatures"]
    r = check(capsys, tmp_path, cur, json.dumps(one_bad).encode(), "--json")
    assert r.status == 1 and r.json()["reason"] == "threshold" and "1 of 2" in r.json()["message"]
    sigs = r.json()["signatures"]
    assert [s["verdict"] for s in sigs] == ["valid", "bad signature"]


def test_signing_key_rotation_across_two_updates(capsys, tmp_path, keys):
    a, b, c, _ = keys
    v1 = write_pinset(tmp_path / "v1.json", 1, keys=[a, b])
    v2 = write_pinset(tmp_path / "v2.json", 2, keys=[b, c])  # a retired, c new
    v3 = write_pinset(tmp_path / "v3.json", 3, keys=[b, c])
    assert run(capsys, "pinset", "sign", v2, "--key", a.path, "-o", tmp_path / "v2.jws").status == 0
    # v2 names new update keys: a threshold of them signs it too (rule 6b), else new_threshold
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", v1, "--json")
    assert r.status == 1 and r.json()["reason"] == "new_threshold"
    assert run(capsys, "pinset", "sign", v2, "--key", c.path, "-o", tmp_path / "v2.jws").status == 0
    assert run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", v1).status == 0
    # after v2, a's signature no longer counts, c's does
    assert run(capsys, "pinset", "sign", v3, "--key", a.path, "-o", tmp_path / "v3-a.jws").status == 0
    r = run(capsys, "pinset", "check-update", tmp_path / "v3-a.jws", "--current", v2, "--json")
    assert r.status == 1 and r.json()["reason"] == "unknown_key"
    assert run(capsys, "pinset", "sign", v3, "--key", c.path, "-o", tmp_path / "v3-c.jws").status == 0
    assert run(capsys, "pinset", "check-update", tmp_path / "v3-c.jws", "--current", v2).status == 0
    # c could not have signed v2 for devices still on v1
    assert run(capsys, "pinset", "sign", v2, "--key", c.path, "-o", tmp_path / "v2-c.jws").status == 0
    r = run(capsys, "pinset", "check-update", tmp_path / "v2-c.jws", "--current", v1, "--json")
    assert r.status == 1 and r.json()["reason"] == "unknown_key"


def test_today_judges_expiry_as_of_that_date(capsys, tmp_path, keys):
    cur = pinset_bytes(1, keys=keys[:2])
    new = pinset_bytes(2, keys=keys[:2], expires=today(20))
    assert check(capsys, tmp_path, cur, bundle(new, [keys[0]])).status == 0
    r = check(capsys, tmp_path, cur, bundle(new, [keys[0]]), "--today", today(30))
    assert r.status == 1 and "(expired)" in r.out
    r = check(capsys, tmp_path, cur, bundle(new, [keys[0]]), "--today", "2027-13-01")
    assert r.status == 2 and "--today" in r.err


def test_unreadable_files_are_exit_2(capsys, tmp_path, keys):
    cur = write_pinset(tmp_path / "cur.json", 1, keys=keys[:2])
    r = run(capsys, "pinset", "check-update", tmp_path / "nope.jws", "--current", cur)
    assert r.status == 2 and "no such file" in r.err
    (tmp_path / "b.jws").write_bytes(bundle(pinset_bytes(2, keys=keys[:2]), [keys[0]]))
    r = run(capsys, "pinset", "check-update", tmp_path / "b.jws", "--current", tmp_path / "nope.json")
    assert r.status == 2 and "no such file" in r.err
    r = run(capsys, "pinset", "check-update", tmp_path / "b.jws", "--current", tmp_path)
    assert r.status == 2 and "directory" in r.err


def test_a_current_pinset_a_device_could_not_load_is_a_refusal(capsys, tmp_path, keys):
    r = check(capsys, tmp_path, b'{"format": 1, "hosts": {}}', bundle(pinset_bytes(2, keys=keys[:2]), [keys[0]]))
    assert r.status == 1 and "REFUSES" in r.out and "Traceback" not in r.err, r


def test_scriptable_as_a_subprocess(tmp_path, keys):
    cur = write_pinset(tmp_path / "cur.json", 1, keys=keys[:2])
    (tmp_path / "ok.jws").write_bytes(bundle(pinset_bytes(2, keys=keys[:2]), [keys[0]]))
    (tmp_path / "bad.jws").write_bytes(bundle(pinset_bytes(2, keys=keys[:2]), [keys[3]]))
    ok = run_subprocess("pinset", "check-update", tmp_path / "ok.jws", "--current", cur)
    bad = run_subprocess("pinset", "check-update", tmp_path / "bad.jws", "--current", cur)
    assert (ok.status, bad.status) == (0, 1), (ok, bad)
    assert ok.err == "" and bad.err == ""


# ---------------------------------------------------------------- issue 18: what the file is; the board's own state


def test_a_plain_pinset_is_not_a_bundle_and_it_says_what_to_run(capsys, tmp_path, keys):
    cur = write_pinset(tmp_path / "cur.json", 1, keys=keys[:2])
    new = write_pinset(tmp_path / "new.json", 2, keys=keys[:2])
    r = run(capsys, "pinset", "check-update", new, "--current", cur)
    assert r.status == 2 and "is a pinset (serial 2), not a signed bundle" in r.err and "pinset sign" in r.err, r
    # and the other way round: lint on a bundle
    (tmp_path / "b.jws").write_bytes(bundle(pinset_bytes(2, keys=keys[:2]), [keys[0]]))
    r = run(capsys, "pinset", "lint", tmp_path / "b.jws")
    assert r.status == 2 and "is a signed bundle (JWS, of serial 2), not a pinset" in r.err, r
    assert "check-update" in r.err


def test_the_boards_own_pinset_and_floor_win_over_a_stale_current(capsys, tmp_path, keys, vboard):
    import os

    b = vboard()
    a = keys[0]
    v1, v2, v3 = (pinset_bytes(n, keys=keys[:2]) for n in (1, 2, 3))
    stale = tmp_path / "installed.json"
    stale.write_bytes(v1)  # what the operator believes the fleet holds
    with open(os.path.join(b.root, "certpin.json"), "wb") as f:
        f.write(v3)  # what the board holds
    (tmp_path / "v2.jws").write_bytes(bundle(v2, [a]))
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", stale)
    assert r.status == 0 and "installs it" in r.out, r  # the stale file says yes ...
    r = run(capsys, "pinset", "check-update", tmp_path / "v2.jws", "--current", stale, "--port", b.port)
    assert r.status == 1 and "(rollback)" in r.out and "the board on %s" % b.port in r.out, r  # ... the board no
    assert "NOTE: the board's pinset (serial 3) is not --current" in r.err, r
    # the board's time floor judges expiry, as the board does
    (tmp_path / "v4.jws").write_bytes(bundle(pinset_bytes(4, keys=keys[:2], expires=today(20)), [a]))
    assert run(capsys, "pinset", "check-update", tmp_path / "v4.jws", "--port", b.port).status == 0
    with open(os.path.join(b.root, "certpin.floor"), "w") as f:
        f.write(today(30) + "\n")
    r = run(capsys, "pinset", "check-update", tmp_path / "v4.jws", "--port", b.port, "--json")
    assert r.status == 1 and r.json()["reason"] == "expired", r
    # a board with no pinset installs no update
    os.remove(os.path.join(b.root, "certpin.json"))
    r = run(capsys, "pinset", "check-update", tmp_path / "v4.jws", "--port", b.port)
    assert r.status == 1 and "has no pinset" in r.err, r
    r = run(capsys, "pinset", "check-update", tmp_path / "v4.jws")
    assert r.status == 2 and "--port" in r.err, r
