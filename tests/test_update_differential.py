"""One verdict for every input, on every runtime and in the host tool (issue 15, item 5).

MicroPython's str() decodes overlong UTF-8, surrogates and code points above
U+10FFFF, and its json reads integers of any length; CPython refuses all of
them. The device library now refuses them itself (strict UTF-8 and integers of
at most 16 digits in its byte-level JSON check, a serial of at most 2**53-1),
so the same bytes get the same verdict everywhere:

- pinset files (tests/test_pinset_files.py's corpus and more): certpin.load()
  on CPython, the unix port and the 32-bit v1.28 build, and the host's device
  check before a flash (certpin_host.cmd_flash.check_pinset_bytes);
- bundles (a corpus built here: every prefix of a signed bundle, crafted
  unprotected headers anyone can add to a published bundle, overlong and
  surrogate bytes, huge integers, many signatures, duplicate members,
  signed payloads with huge serials, installed pinsets with huge serials):
  certpin.update() on the three runtimes, certpin._update.verify in process,
  `certpin pinset check-update --json`, and `certpin flash BUNDLE` for a
  sample (a virtual board).
"""
import os

from conftest import Runtime, firmware_path
from support import corpus, jws
from support.cli import run
import test_pinset_files

K1, K2 = jws.new_key(), jws.new_key()
CUR = jws.pinset(5, [K1, K2], threshold=1)
NEW = jws.pinset(6, [K1, K2], threshold=1)


def runtimes():
    out = [Runtime("cpython"), Runtime("micropython")]
    path, why = firmware_path("mp1.28-32")
    if path:
        out.append(Runtime("mp1.28-32", path))
    else:
        print("32-bit build skipped: %s" % why)
    return out


def replay_all(tmp_path, name, cases):
    """{runtime: [(kind, detail)]} for corpus lines [(op, bytes)]."""
    path = str(tmp_path / (name + ".txt"))
    corpus.write_corpus(path, cases)
    out = {}
    for rt in runtimes():
        summary, results = corpus.replay(rt, path, verbose=True, timeout=600)
        assert summary["crashes"] == [], (rt, summary["crashes"])
        out[rt.name] = [(kind, detail) for _, kind, detail in results]
    return out


# ---------------------------------------------------------------- pinset files


def pinset_cases():
    return [(name, data) for name, data, _ in test_pinset_files.cases()]


def host_pinset_verdict(data):
    """The host tool's device check before `certpin flash PINSET`: ok or refused."""
    from certpin_host.cmd_flash import check_pinset_bytes
    from certpin_host.errors import UserError

    try:
        check_pinset_bytes(data, "p.json", True, log=lambda *a: None)
    except UserError as e:
        assert "device would refuse" in str(e) or "not UTF-8" in str(e), str(e)
        return ("refused", "PinsetError")
    return ("ok", "-")


def test_pinset_files_one_verdict_everywhere(tmp_path):
    cases = pinset_cases()
    files = []
    for i, (name, data) in enumerate(cases):
        p = str(tmp_path / ("%04d.json" % i))
        with open(p, "wb") as f:
            f.write(data)
        files.append(("f", p.encode()))
    got = replay_all(tmp_path, "pinsets", files)
    got["host"] = [host_pinset_verdict(data) for _, data in cases]
    names = sorted(got)
    differ = [(name, {rt: got[rt][i] for rt in names}) for i, (name, _) in enumerate(cases)
              if len({got[rt][i] for rt in names}) != 1]
    assert differ == [], "%d of %d cases differ: %s" % (len(differ), len(cases), differ)
    print("\npinset files: %d cases, one verdict on %s" % (len(cases), ", ".join(names)))


# ---------------------------------------------------------------- bundles


def raw_bundle(payload, entries, extra=b""):
    """Bundle text written by hand, so any bytes can go into it. extra: raw JSON
    inserted as the first member of the first signature entry (e.g. an unprotected header)."""
    p = jws.b64url(payload)
    parts = []
    for i, e in enumerate(entries):
        body = b'"protected":"%s","signature":"%s"' % (e["protected"].encode(), e["signature"].encode())
        parts.append(b"{" + (extra + b"," if extra and i == 0 else b"") + body + b"}")
    return b'{"payload":"' + p.encode() + b'","signatures":[' + b",".join(parts) + b"]}"


def sig(key, payload, **kw):
    return jws.signature(key, jws.b64url(payload), **kw)


def protected_raw(key, payload, raw_header):
    """An entry whose protected header is raw_header (bytes), validly signed by key."""
    hb = jws.b64url(raw_header)
    return {"protected": hb, "signature": jws.b64url(jws.raw_sign(key, (hb + "." + jws.b64url(payload)).encode()))}


HEADER_VALUES = [
    # (name, raw JSON value bytes)
    ("ascii", b'"x"'),
    ("two-byte", '"\u00e9"'.encode()),
    ("three-byte", '"\u20ac"'.encode()),
    ("four-byte", '"\U0001f600"'.encode()),
    ("max-code-point", b'"\xf4\x8f\xbf\xbf"'),
    ("overlong-slash", b'"\xc0\xaf"'),
    ("overlong-c1", b'"\xc1\xbf"'),
    ("overlong-3", b'"\xe0\x80\xaf"'),
    ("overlong-4", b'"\xf0\x80\x80\xaf"'),
    ("surrogate-high", b'"\xed\xa0\x80"'),
    ("surrogate-low", b'"\xed\xbf\xbf"'),
    ("surrogate-pair-cesu", b'"\xed\xa0\xbd\xed\xb8\x80"'),
    ("above-10ffff", b'"\xf4\x90\x80\x80"'),
    ("f5-lead", b'"\xf5\x80\x80\x80"'),
    ("ff-byte", b'"\xff"'),
    ("lone-continuation", b'"\x80"'),
    ("truncated-2", b'"\xc3"'),
    ("truncated-3", b'"\xe2\x82"'),
    ("truncated-4", b'"\xf0\x9f\x98"'),
    ("escape-lone-high", b'"\\ud800"'),
    ("escape-lone-low", b'"\\udc00"'),
    ("escape-high-high", b'"\\ud800\\ud800"'),
    ("escape-pair", b'"\\ud83d\\ude00"'),
    ("escape-nul", b'"\\u0000"'),
    ("int-16-digits", b"9999999999999999"),
    ("int-17-digits", b"99999999999999999"),
    ("int-5000-digits", b"9" * 5000),
    ("int-negative-17", b"-12345678901234567"),
    ("float", b"1.5"),
    ("exponent", b"1e5"),
    ("nest-4", b"[" * 4 + b"]" * 4),  # the JSON check allows 8 levels in all: within them
    ("nest-8", b"[" * 8 + b"]" * 8),  # beyond them, in the header as in the protected header
    ("object", b'{"a":[1,true,null]}'),
]


def bundle_cases():
    """[(name, installed, bundle)]"""
    out = []
    good = raw_bundle(NEW, [sig(K1, NEW)])
    for n in range(0, len(good), 3):  # every third prefix (test_update.py tries them all)
        out.append(("prefix-%d" % n, CUR, good[:n]))
    out.append(("whole", CUR, good))
    for name, value in HEADER_VALUES:
        out.append(("header-" + name, CUR, raw_bundle(NEW, [sig(K1, NEW)], b'"header":{"v":' + value + b"}")))
        out.append(("protected-" + name, CUR, raw_bundle(NEW, [protected_raw(
            K1, NEW, b'{"alg":"ES256","kid":"' + jws.kid(K1).encode() + b'","v":' + value + b"}")])))
    out += [
        ("top-member-dup", CUR, good[:1] + b'"payload":"' + jws.b64url(CUR).encode() + b'",' + good[1:]),
        ("bom", CUR, b"\xef\xbb\xbf" + good),
        ("utf16", CUR, good.decode().encode("utf-16")),
        ("nul-after", CUR, good + b"\x00"),
        ("32-signatures", CUR, raw_bundle(NEW, [sig(K1, NEW)] + [sig(K2, NEW, sig=b"\x01" * 64)] * 31)),
        ("33-signatures", CUR, raw_bundle(NEW, [sig(K1, NEW)] + [sig(K2, NEW, sig=b"\x01" * 64)] * 32)),
        ("kid-overlong", CUR, raw_bundle(NEW, [protected_raw(K1, NEW, b'{"alg":"ES256","kid":"sha256/\xc0\xaf"}')])),
        ("alg-escaped", CUR, raw_bundle(NEW, [protected_raw(
            K1, NEW, b'{"alg":"\\u0045S256","kid":"' + jws.kid(K1).encode() + b'"}')])),
    ]
    for name, serial in (("2-53-minus-1", b"9007199254740991"), ("2-53", b"9007199254740992"),
                         ("17-digits", b"10000000000000000"), ("5000-digits", b"9" * 5000)):
        p = NEW.replace(b'"serial": 6', b'"serial": ' + serial)
        out.append(("payload-serial-" + name, CUR, raw_bundle(p, [sig(K1, p)])))
    for name, serial in (("2-53-minus-1", b"9007199254740990"), ("5000-digits", b"9" * 5000),
                         ("17-digits", b"10000000000000000")):
        inst = CUR.replace(b'"serial": 5', b'"serial": ' + serial)
        p = NEW.replace(b'"serial": 6', b'"serial": 9007199254740991')
        out.append(("installed-serial-" + name, inst, raw_bundle(p, [sig(K1, p)])))
    bad_utf8_payload = NEW.replace(b'"hosts"', b'"x\xc0\xaf": 1, "hosts"')
    out.append(("payload-overlong-signed", CUR, raw_bundle(bad_utf8_payload, [sig(K1, bad_utf8_payload)])))
    return out


def host_verdicts(cases):
    import certpin
    from certpin import _update

    out = []
    for name, installed, b in cases:
        try:
            data, ps, same = _update.verify(installed, b)
            out.append(("ok", "%d" % ps.serial) if not same else ("ok", "same"))
        except certpin.UpdateError as e:
            out.append(("refused", "UpdateError:" + e.reason))
        except certpin.PinsetError:
            out.append(("refused", "PinsetError"))
    return out


def cli_verdicts(capsys, tmp_path, cases):
    out = []
    for i, (name, installed, b) in enumerate(cases):
        cur = tmp_path / ("cur%d.json" % i)
        cur.write_bytes(installed)
        bf = tmp_path / ("b%d.jws" % i)
        bf.write_bytes(b)
        r = run(capsys, "pinset", "check-update", bf, "--current", cur, "--json")
        doc = r.json()
        if r.status == 0:
            out.append(("ok", "%d" % doc["serial_to"]))
        elif doc["reason"] == "bad_current":
            out.append(("refused", "PinsetError"))
        else:
            out.append(("refused", "UpdateError:" + doc["reason"]))
    return out


def test_bundles_one_verdict_everywhere(capsys, tmp_path):
    cases = bundle_cases()
    lines = []
    for name, installed, b in cases:
        lines += [("i", installed), ("u", b)]
    got = replay_all(tmp_path, "bundles", lines)
    got["host-verify"] = host_verdicts(cases)
    got["check-update"] = cli_verdicts(capsys, tmp_path, cases)
    names = sorted(got)
    by_case = {}
    differ = []
    for i, (name, _, _) in enumerate(cases):
        v = {rt: got[rt][i] for rt in names}
        if len(set(v.values())) != 1:
            differ.append((name, v))
        by_case[name] = got["cpython"][i]
    assert differ == [], "%d of %d cases differ: %s" % (len(differ), len(cases), differ)
    # the verdicts themselves: what strict UTF-8 and bounded integers mean
    ok = ("ok", "6")
    assert by_case["whole"] == ok
    for name, value in HEADER_VALUES:
        accepted = name in ("ascii", "two-byte", "three-byte", "four-byte", "max-code-point", "escape-pair",
                            "escape-nul", "int-16-digits", "nest-4", "object")
        for where in ("header-", "protected-"):
            want = ok if accepted else ("refused", "UpdateError:not_jws")
            assert by_case[where + name] == want, (where + name, by_case[where + name])
    assert all(v == ("refused", "UpdateError:not_jws") for k, v in by_case.items() if k.startswith("prefix-"))
    assert by_case["32-signatures"] == ok and by_case["33-signatures"] == ("refused", "UpdateError:not_jws")
    assert by_case["payload-serial-2-53-minus-1"] == ("ok", "9007199254740991")
    for name in ("2-53", "17-digits", "5000-digits"):
        assert by_case["payload-serial-" + name] == ("refused", "UpdateError:bad_pinset"), name
    assert by_case["installed-serial-2-53-minus-1"] == ("ok", "9007199254740991")
    assert by_case["installed-serial-5000-digits"] == ("refused", "PinsetError")
    assert by_case["installed-serial-17-digits"] == ("refused", "PinsetError")
    assert by_case["payload-overlong-signed"] == ("refused", "UpdateError:bad_pinset")
    print("\nbundles: %d cases, one verdict on %s" % (len(cases), ", ".join(names)))


def test_flash_bundle_agrees_on_a_sample(vboard, tmp_path):  # noqa: F811 (the fixture, imported below)
    """`certpin flash BUNDLE` decides with the device's rules: the same verdicts on a virtual board."""
    b = vboard()
    sample = {name: (inst, bnd) for name, inst, bnd in bundle_cases()
              if name in ("header-overlong-slash", "header-surrogate-high", "header-int-5000-digits",
                          "payload-serial-5000-digits", "header-four-byte")}
    for name, (inst, bnd) in sorted(sample.items()):
        with open(os.path.join(b.root, "certpin.json"), "wb") as f:
            f.write(inst)
        path = tmp_path / (name + ".jws")
        path.write_bytes(bnd)
        p = b.flash(str(path), "--tool", "mpremote")
        if name == "header-four-byte":
            assert p.returncode == 0, (name, p.stdout + p.stderr)
        else:
            reason = "bad_pinset" if name.startswith("payload") else "not_jws"
            assert p.returncode == 1 and reason in p.stderr, (name, p.stdout + p.stderr)
            assert open(os.path.join(b.root, "certpin.json"), "rb").read() == inst, name


from support.vboard_fixtures import vboard  # noqa: E402,F401
