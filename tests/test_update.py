"""Signed pinset updates (issue 8), device side, on CPython and the MicroPython unix port.

Every refusal reason of docs/updates.md, in the rule order of the design: size,
JWS structure, the installed pinset's update keys and serial, per-signature
alg/kid/signature, threshold over DISTINCT keys, verify before parse, the
payload as a pinset, rollback, expiry against the clock and the time floor.
Then what an accepted update does: atomic install, no-op for the identical
bundle, signing-key rotation across two updates, the time floor moved to the
new `issued`, .bak recovery in load(). Bundles come from tests/support/jws.py
(cryptography); tests/test_update_interop.py covers an independent JOSE library.
"""
import base64
import json
import os

import pytest

import certpin
from certpin import _update
from support import jws

K1, K2, K3, K4 = (jws.new_key() for _ in range(4))
STRANGER = jws.new_key()


def run_steps(runtime, tmp_path, steps, name="board"):
    d = tmp_path / ("%s-%s" % (name, runtime.name))
    d.mkdir(exist_ok=True)
    cfg = tmp_path / ("steps-%s-%s.json" % (name, runtime.name))
    cfg.write_text(json.dumps(steps))
    p = runtime.run("update_steps.py", cfg, d, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("[")]
    assert lines, "no result from %s: rc=%s\nstdout=%s\nstderr=%s" % (runtime, p.returncode, p.stdout, p.stderr)
    return json.loads(lines[-1]), d


def write(text, name="certpin.json"):
    return {"op": "write", "name": name, "text": text.decode() if isinstance(text, bytes) else text}


def upd(bundle):
    """certpin.update(bundle): bytes go as bytes (hex in the step file), a str as a str."""
    if isinstance(bundle, bytes):
        return {"op": "update", "hex": bundle.hex()}
    return {"op": "update", "bundle": bundle}


def sig_entry(key, payload_b64, **kw):
    return jws.signature(key, payload_b64, **kw)


def bundle_of(payload, entries, **top):
    d = {"payload": jws.b64url(payload), "signatures": entries}
    d.update(top)
    return json.dumps(d).encode()


CUR = jws.pinset(5, [K1, K2, K3], threshold=2)
NEW = jws.pinset(6, [K1, K2, K3], threshold=2)
P = jws.b64url(NEW)


def signed(*keys, payload=NEW):
    return jws.bundle(payload, keys)


def refusals():
    """(name, installed, bundle, reason)"""
    garbage = b"\x00\xffnot a pinset at all {"
    gp = jws.b64url(garbage)
    one_bad = bundle_of(NEW, [sig_entry(K1, P), sig_entry(K2, P, sig=b"\x01" * 64)])
    flipped = bytearray(jws.raw_sign(K1, ("x." + P).encode()))
    cases = [
        ("too_large", CUR, b" " * 16385, "too_large"),
        ("too_large_str_counts_bytes", CUR, "\u00e9" * 8193, "too_large"),
        ("not_json", CUR, b"hello", "not_jws"),
        ("not_utf8", CUR, b"\xff\xfe{}", "not_jws"),
        ("lax_json", CUR, b'{"payload" "x" "signatures": []}', "not_jws"),
        ("json_array", CUR, b"[1, 2]", "not_jws"),
        ("no_signatures", CUR, json.dumps({"payload": P}).encode(), "not_jws"),
        ("empty_signatures", CUR, json.dumps({"payload": P, "signatures": []}).encode(), "not_jws"),
        ("extra_top_member", CUR, bundle_of(NEW, [sig_entry(K1, P), sig_entry(K2, P)], extra=1), "not_jws"),
        ("flattened", CUR, json.dumps(dict(payload=P, **sig_entry(K1, P))).encode(), "not_jws"),
        ("compact", CUR, ("%s.%s.%s" % (sig_entry(K1, P)["protected"], P, sig_entry(K1, P)["signature"])).encode(), "not_jws"),
        ("padded_payload", CUR, json.dumps({"payload": base64.urlsafe_b64encode(NEW[:-1]).decode(),
                                             "signatures": [sig_entry(K1, P)]}).encode(), "not_jws"),
        ("plus_in_payload", CUR, json.dumps({"payload": P[:10] + "+" + P[11:], "signatures": [sig_entry(K1, P)]}).encode(), "not_jws"),
        ("space_in_signature", CUR, json.dumps({"payload": P, "signatures": [
            dict(sig_entry(K1, P), signature=sig_entry(K1, P)["signature"][:8] + " " + sig_entry(K1, P)["signature"][8:])]}).encode(), "not_jws"),
        ("extra_signature_member", CUR, bundle_of(NEW, [dict(sig_entry(K1, P), x=1)]), "not_jws"),
        ("protected_not_json", CUR, bundle_of(NEW, [{"protected": jws.b64url(b"alg=ES256"), "signature": "AAAA"}]), "not_jws"),
        ("protected_not_object", CUR, bundle_of(NEW, [{"protected": jws.b64url(b'["ES256"]'), "signature": "AAAA"}]), "not_jws"),
        ("no_update_section", jws.pinset(5), signed(K1, K2), "no_update_keys"),
        ("no_serial", jws.pinset(5, [K1, K2, K3], 2).replace(b'"serial": 5,', b""), signed(K1, K2), "no_serial"),
        ("alg_none", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "none", "kid": jws.kid(K1)}, sig=b"")]), "unsupported_alg"),
        ("alg_HS256", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "HS256", "kid": jws.kid(K1)}, sig=b"\x00" * 32)]), "unsupported_alg"),
        ("alg_ES384", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "ES384", "kid": jws.kid(K1)}, sig=b"\x00" * 96)]), "unsupported_alg"),
        ("alg_missing", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"kid": jws.kid(K1)})]), "unsupported_alg"),
        ("crit", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "ES256", "kid": jws.kid(K1), "crit": ["exp"], "exp": 1})] * 2), "unsupported_alg"),
        ("b64_false", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "ES256", "kid": jws.kid(K1), "b64": False})]), "unsupported_alg"),
        ("unknown_key", CUR, signed(STRANGER, K4), "unknown_key"),
        ("no_kid", CUR, bundle_of(NEW, [sig_entry(K1, P, header={"alg": "ES256"})]), "unknown_key"),
        ("kid_lies", CUR, bundle_of(NEW, [sig_entry(STRANGER, P, header={"alg": "ES256", "kid": jws.kid(K1)})]), "bad_signature"),
        ("flipped_bit", CUR, bundle_of(NEW, [sig_entry(K1, P, sig=bytes(flipped))]), "bad_signature"),
        ("short_signature", CUR, bundle_of(NEW, [sig_entry(K1, P, sig=jws.raw_sign(K1, b"x")[:63])]), "bad_signature"),
        ("der_signature", CUR, bundle_of(NEW, [sig_entry(K1, P, sig=K1.sign(b"x", jws.ec.ECDSA(jws.hashes.SHA256())))]), "bad_signature"),
        ("signature_of_other_payload", CUR, bundle_of(NEW, [sig_entry(K1, jws.b64url(CUR)), sig_entry(K2, jws.b64url(CUR))]), "bad_signature"),
        ("one_of_two_required", CUR, signed(K1), "threshold"),
        ("one_key_twice", CUR, signed(K1, K1), "threshold"),
        ("one_good_one_forged", CUR, one_bad, "threshold"),
        ("one_good_one_stranger", CUR, signed(K2, STRANGER), "threshold"),
        # verify before parse: a garbage payload without valid signatures is refused for the signatures
        ("garbage_payload_bad_signature", CUR, bundle_of(garbage, [sig_entry(K1, gp, sig=b"\x02" * 64)]), "bad_signature"),
        ("garbage_payload_unknown_key", CUR, jws.bundle(garbage, [STRANGER]), "unknown_key"),
        ("garbage_payload_signed", CUR, jws.bundle(garbage, [K1, K2]), "bad_pinset"),
        ("unknown_key_in_payload", CUR, jws.bundle(NEW.replace(b'"hosts"', b'"hostz": 1, "hosts"'), [K1, K2]), "bad_pinset"),
        ("bad_update_key_in_payload", CUR, jws.bundle(jws.pinset(6, [base64.b64encode(b"\x30\x03\x02\x01\x01").decode()]), [K1, K2]), "bad_pinset"),
        ("new_without_serial", CUR, jws.bundle(NEW.replace(b'"serial": 6,', b""), [K1, K2]), "bad_pinset"),
        ("rollback", CUR, jws.bundle(jws.pinset(4, [K1, K2, K3], 2), [K1, K2]), "rollback"),
        ("same_serial_other_bytes", CUR, jws.bundle(jws.pinset(5, [K1, K2, K3], 2, expires=jws.today(100)), [K1, K2]), "rollback"),
        ("expired", CUR, jws.bundle(jws.pinset(6, [K1], issued="2026-01-01", expires="2026-01-02"), [K1, K2]), "expired"),
    ]
    return cases


@pytest.fixture(scope="module")
def cases():
    return refusals()


def test_every_refusal_reason_on_the_device(runtime, tmp_path, cases):
    steps = []
    for name, installed, bundle, reason in cases:
        steps += [write(installed), upd(bundle), {"op": "read", "name": "certpin.json"}]
    out, d = run_steps(runtime, tmp_path, steps)
    got = {}
    for i, (name, installed, bundle, reason) in enumerate(cases):
        r, after = out[3 * i + 1], out[3 * i + 2]
        got[name] = r.get("reason")
        assert r["ok"] is False and r["type"] == "UpdateError", (name, r)
        assert reason in r["message"], (name, r["message"])
        assert after == installed.decode(), (name, "the installed pinset changed")
    assert got == {c[0]: c[3] for c in cases}
    assert not os.path.exists(d / "certpin.json.tmp") and not os.path.exists(d / "certpin.floor")


def test_truncated_bundles_are_refused_and_change_nothing(runtime, tmp_path):
    # A bundle cut short anywhere (a power cut while it was stored, a
    # connection that closed early) is refused, whatever is left of it; the
    # installed pinset stays byte for byte. Every prefix of a valid bundle,
    # then the whole bundle as the control.
    whole = signed(K1, K2)
    steps = [write(CUR), {"op": "prefixes", "hex": whole.hex()}, {"op": "read", "name": "certpin.json"}, upd(whole)]
    out, d = run_steps(runtime, tmp_path, steps)
    r = out[1]
    assert r["tried"] == len(whole) and r["accepted"] == [], r
    assert r["outcomes"] == [["UpdateError", "not_jws"]], r["outcomes"]
    assert out[2] == CUR.decode(), "a truncated bundle changed the installed pinset"
    assert out[3]["ok"] and out[3]["serial"] == 6, out[3]


def test_refusal_messages_say_what_to_do(cases):
    msgs = {}
    for name, installed, bundle, reason in cases:
        with pytest.raises(certpin.UpdateError) as e:
            _update.verify(installed, bundle)
        assert e.value.reason == reason, name
        assert isinstance(e.value, certpin.Error)
        msgs[name] = e.value.args[0]
    assert "certpin flash" in msgs["no_update_section"] and "certpin flash" in msgs["no_serial"]
    assert "1 of 2 required" in msgs["one_key_twice"] and "counted once" in msgs["one_key_twice"]
    assert "1 of 2 required" in msgs["one_good_one_forged"]
    assert "serial 4" in msgs["rollback"] and "serial 5" in msgs["rollback"]
    assert "only ES256" in msgs["alg_none"]
    assert "2026-01-02" in msgs["expired"]
    assert "16384" in msgs["too_large"]


def test_two_of_three_installs_and_the_identical_bundle_is_a_no_op(runtime, tmp_path):
    b = signed(K3, K1)
    out, d = run_steps(runtime, tmp_path, [
        write(CUR), upd(b), {"op": "read", "name": "certpin.json"},
        {"op": "fetch", "url": None}, upd(b), {"op": "load"},
    ])
    assert out[1]["ok"] and out[1]["serial"] == 6, out[1]
    assert out[2] == NEW.decode()  # the exact signed bytes
    assert out[4]["ok"] and out[4]["serial"] == 6, out[4]  # no-op: the installed pinset
    assert out[5]["serial"] == 6
    assert sorted(os.listdir(d)) == ["certpin.floor", "certpin.json"]  # no .tmp, no .bak left


def test_signing_key_rotation_across_two_updates(runtime, tmp_path):
    # serial 1 trusts K1. Update 2 hands signing to K2 and K3 (2 of 2): signed
    # by K1 alone it is refused (rule 6b, new_threshold: nothing proves the
    # new keys are held), by K1 + K2 + K3 installed. Update 3 signed by K1
    # alone is then refused (K1 is no longer an update key), and by K2 alone
    # it lacks the threshold; K2 + K3 install it (K3 is also one of its own keys).
    s1 = jws.pinset(1, [K1])
    s2 = jws.pinset(2, [K2, K3], threshold=2)
    s3 = jws.pinset(3, [K3, K4], threshold=1)
    out, _ = run_steps(runtime, tmp_path, [
        write(s1), upd(jws.bundle(s2, [K1])), upd(jws.bundle(s2, [K1, K2])), upd(jws.bundle(s2, [K1, K2, K3])),
        upd(jws.bundle(s3, [K1])), upd(jws.bundle(s3, [K2])), upd(jws.bundle(s3, [K2, K3])),
        upd(jws.bundle(s2, [K1])),  # the older bundle again: K1 no longer counts
        upd(jws.bundle(s2, [K2, K3])),  # and signed by today's keys it is a rollback
    ])
    assert out[1]["reason"] == "new_threshold" and "0 of 2" in out[1]["message"], out[1]
    assert out[2]["reason"] == "new_threshold" and "1 of 2" in out[2]["message"], out[2]
    assert out[3]["ok"] and out[3]["serial"] == 2
    assert out[4]["reason"] == "unknown_key"
    assert out[5]["reason"] == "threshold"
    assert out[6]["ok"] and out[6]["serial"] == 3
    assert out[7]["reason"] == "unknown_key"
    assert out[8]["reason"] == "rollback"


def test_the_installed_bundle_again_after_a_rotation_is_a_no_op(runtime, tmp_path):
    # A device polls update.url after it installed the rotation: the bundle's
    # signer (K1) is no longer one of its keys, but the payload is its own
    # file byte for byte, so nothing changes: a no-op, not a refusal. A
    # different payload signed by K1 is still refused.
    s1 = jws.pinset(1, [K1])
    s2 = jws.pinset(2, [K2])
    out, d = run_steps(runtime, tmp_path, [
        write(s1), upd(jws.bundle(s2, [K1, K2])), upd(jws.bundle(s2, [K1])),
        upd(jws.bundle(jws.pinset(3, [K2]), [K1])),
    ])
    assert out[1]["ok"] and out[1]["serial"] == 2
    assert out[2]["ok"] and out[2]["serial"] == 2, out[2]
    assert out[3]["reason"] == "unknown_key"
    assert open(os.path.join(d, "certpin.json"), "rb").read() == s2


def test_update_advances_the_floor_to_issued_and_expiry_follows_the_floor(runtime, tmp_path):
    s1 = jws.pinset(1, [K1], issued="2026-03-01", expires="2027-01-01")
    s2 = jws.pinset(2, [K1], issued="2026-06-15", expires="2027-06-01")
    s3 = jws.pinset(3, [K1], issued="2026-06-20", expires="2026-12-31")
    out, d = run_steps(runtime, tmp_path, [
        write(s1), {"op": "load"}, upd(jws.bundle(s2, [K1])), {"op": "read", "name": "certpin.floor"},
        write("2027-01-05\n", "certpin.floor"), upd(jws.bundle(s3, [K1])),  # floor past s3's expiry
        {"op": "load"},
    ])
    assert out[1]["floor"] == "2026-03-01" and out[1]["issued"] == "2026-03-01"
    assert out[2]["ok"] and out[2]["floor"] == "2026-06-15"
    assert out[3] == "2026-06-15\n"
    assert out[5]["reason"] == "expired" and "2027-01-05" in out[5]["message"]
    assert out[6]["serial"] == 2 and out[6]["floor"] == "2027-01-05"


def test_write_failure_leaves_the_installed_pinset(runtime, tmp_path):
    out, d = run_steps(runtime, tmp_path, [
        write(CUR), {"op": "mkdir", "name": "certpin.json.tmp"}, upd(signed(K1, K2)),
        {"op": "read", "name": "certpin.json"}, {"op": "load"},
    ])
    assert out[2]["reason"] == "write_failed" and "unchanged" in out[2]["message"], out[2]
    assert out[3] == CUR.decode() and out[4]["serial"] == 5


def test_load_recovers_the_old_pinset_from_bak_and_update_clears_a_stale_bak(runtime, tmp_path):
    # The instant on FAT between "path -> path.bak" and "tmp -> path".
    out, d = run_steps(runtime, tmp_path, [
        write(CUR, "certpin.json.bak"), write("half-written", "certpin.json.tmp"), {"op": "load"},
        write(b"stale", "certpin.json.bak"), upd(signed(K1, K2)), {"op": "load"},
    ])
    assert out[2]["ok"] and out[2]["serial"] == 5, out[2]
    assert out[4]["ok"] and out[5]["serial"] == 6
    assert sorted(os.listdir(d)) == ["certpin.floor", "certpin.json"]


def test_pinset_format_update_and_issued():
    ok = json.loads(jws.pinset(3, [K1, K2], threshold=2, url="https://updates.example.com/a/certpin.jws", issued="2026-05-01"))
    ps = certpin.loads(json.dumps(ok))
    assert ps.issued == (2026, 5, 1) and ps.floor == (2026, 5, 1) and ps.serial == 3
    assert not hasattr(ps, "update")  # the keys are not kept in RAM

    def bad(mutate, field):
        d = json.loads(json.dumps(ok))
        mutate(d)
        with pytest.raises(certpin.PinsetError, match=field.replace("[", r"\[").replace("]", r"\]")):
            certpin.loads(json.dumps(d))

    ec_p384 = jws.ec.generate_private_key(jws.ec.SECP384R1())
    bad(lambda d: d["update"].update(keys=[]), "update.keys")
    bad(lambda d: d["update"].update(keys=[jws.key_line(K1)] * 17), "update.keys")
    bad(lambda d: d["update"].update(keys=[jws.key_line(K1), jws.key_line(K1)]), "update.keys[1]")
    bad(lambda d: d["update"].update(keys=[jws.key_line(ec_p384)]), "update.keys[0]")
    bad(lambda d: d["update"].update(keys=[jws.key_line(K1).rstrip("=")]), "update.keys[0]")
    bad(lambda d: d["update"].update(keys=[jws.key_line(K1).replace("+", "-").replace("/", "_")] if
                                      ("+" in jws.key_line(K1) or "/" in jws.key_line(K1)) else ["!"]), "update.keys[0]")
    off_curve = bytearray(jws.spki(K1))
    off_curve[-1] ^= 1
    bad(lambda d: d["update"].update(keys=[base64.b64encode(bytes(off_curve)).decode()]), "not on the curve")
    bad(lambda d: d["update"].update(threshold=3), "update.threshold")
    bad(lambda d: d["update"].update(threshold=0), "update.threshold")
    bad(lambda d: d["update"].update(threshold=True), "update.threshold")
    bad(lambda d: d["update"].pop("threshold"), "update.threshold")
    bad(lambda d: d["update"].update(url="ftp://x/y"), "update.url")
    bad(lambda d: d["update"].update(url="https://x/a b"), "update.url")
    bad(lambda d: d["update"].update(url="https://x/" + "a" * 510), "update.url")
    bad(lambda d: d["update"].update(urls="https://x/"), "update")
    bad(lambda d: d.update(update=[]), "update")
    bad(lambda d: d.update(issued="2026-02-30"), "issued")
    bad(lambda d: d.update(issued="２０２６-01-01"), "issued")
    bad(lambda d: d.update(issued=ok["expires"][:8] + "28", expires=ok["expires"][:8] + "27"), "issued")
    d = json.loads(json.dumps(ok))
    d["update"]["threshold"] = 1
    d["update"].pop("url")
    assert certpin.loads(json.dumps(d)).serial == 3


def test_update_format_on_the_device_agrees(runtime, tmp_path):
    # The same refusals through the device loader on both runtimes (loads_cases.py).
    ok = json.loads(jws.pinset(3, [K1, K2], threshold=2))
    docs = []
    for mutate in (lambda d: None, lambda d: d["update"].update(threshold=3),
                   lambda d: d["update"].update(keys=[jws.key_line(K1)] * 2),
                   lambda d: d.update(issued="2026-13-01"), lambda d: d["update"].update(url="gopher://x")):
        d = json.loads(json.dumps(ok))
        mutate(d)
        docs.append({"text": json.dumps(d)})
    f = tmp_path / "cases.json"
    f.write_text(json.dumps(docs))
    p = runtime.run("loads_cases.py", f)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert [o[0] for o in out] == ["ok", "PinsetError", "PinsetError", "PinsetError", "PinsetError"], out
    for o, field in zip(out[1:], ("update.threshold", "update.keys[1]", "issued", "update.url")):
        assert field in o[1], o


def test_verify_is_pure_and_today_overrides_the_clock(tmp_path):
    s2 = jws.pinset(6, [K1, K2, K3], 2, issued="2026-02-01", expires="2026-03-01")
    b = jws.bundle(s2, [K1, K2])
    data, ps, same = _update.verify(CUR, b, today=(2026, 2, 15))
    assert data == s2 and ps.serial == 6 and same is False
    with pytest.raises(certpin.UpdateError) as e:
        _update.verify(CUR, b, today=(2026, 3, 2))
    assert e.value.reason == "expired"
    data, ps, same = _update.verify(CUR, jws.bundle(CUR, [K1, K2]))
    assert same is True and ps.serial == 5
    assert _update.verify(CUR.decode(), b.decode(), today=(2026, 2, 1))[1].serial == 6  # str works too
    with pytest.raises(certpin.PinsetError):
        _update.verify(b"{not a pinset", b)
