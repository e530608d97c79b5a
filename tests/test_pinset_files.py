"""Pinset files as a device finds them after a power cut or a bad copy.

Truncated at every byte offset, wrong encodings (UTF-16/32, Latin-1 bytes, a
BOM), huge (> 64 KiB), nested absurdly deep, JSON that MicroPython's lax
parser would accept but is not JSON: certpin.load() raises PinsetError, never
another exception, and never returns a partial pinset. Both runtimes, each in
ONE process iterating over every case (tests/device/replay.py, op "f").
"""
import base64
import hashlib
import json
import os


import certpin
from support import corpus

SPKI = "sha256/" + base64.b64encode(hashlib.sha256(b"spki").digest()).decode()
CERT = "cert-sha256/" + base64.b64encode(hashlib.sha256(b"cert").digest()).decode()


def valid_text():
    return json.dumps(
        {
            "format": 1,
            "serial": 12,
            "expires": "2027-06-30",
            "hosts": {
                "api.example.com": {"pins": [SPKI, CERT], "subdomains": True},
                "localhost": {"pins": [SPKI], "report_only": False},
                "10.0.0.1": {"pins": [CERT]},
            },
        },
        indent=1,
    ).encode()


def cases():
    """[(name, bytes, expect_ok)]"""
    full = valid_text()
    out = []
    for i in range(len(full)):
        out.append(("truncated-%d" % i, full[:i], False))
    out.append(("complete", full, True))
    out.append(("complete-plus-newline", full + b"\n", True))
    text = full.decode()
    latin = text.replace("api.example.com", "api.ex\xe4mple.com")
    out += [
        ("utf-16-le-bom", text.encode("utf-16"), False),
        ("utf-16-be", text.encode("utf-16-be"), False),
        ("utf-32", text.encode("utf-32"), False),
        ("utf-8-bom", b"\xef\xbb\xbf" + full, False),
        ("latin-1-host", latin.encode("latin-1"), False),
        ("latin-1-in-pin", full.replace(SPKI[7:11].encode(), b"A\xe9AA", 1), False),
        ("utf-8-non-ascii-host", latin.encode("utf-8"), False),
        ("nul-bytes", full.replace(b" ", b"\x00", 3), False),
        ("empty", b"", False),
        ("whitespace", b" \n\t ", False),
        ("json-null", b"null", False),
        ("json-list", b"[]", False),
        ("lone-surrogate-escape", full.replace(b"localhost", b"localhost\\ud800"), False),
        # 10^5 brackets: over the size limit; and just under it, still absurd.
        ("deep-100k-brackets", b"[" * 100000 + b"]" * 100000, False),
        ("deep-100k-open", b"[" * 100000, False),
        ("deep-60k-open", b"[" * 60000, False),
        ("deep-30k-balanced", b"[" * 30000 + b"]" * 30000, False),
        ("deep-objects", b'{"a":' * 10000 + b"1" + b"}" * 10000, False),
        ("deep-inside-pins", full.replace(b'"10.0.0.1": {', b'"10.0.0.1": {"pins": ' + b"[" * 20000 + b"]" * 20000 + b", ", 1), False),
        ("huge-70k-padding", full[:-1] + b" " * 70000 + b"}", False),
        ("huge-70k-host", json.dumps({"format": 1, "hosts": {"h%d.example.com" % i: {"pins": [SPKI]} for i in range(2500)}}).encode(), False),
        ("huge-70k-string", json.dumps({"format": 1, "hosts": {"localhost": {"pins": [SPKI]}}, "x": "y" * 70000}).encode(), False),
        # Integers are bounded (issue 15, item 5): at most 16 digits in the JSON
        # (MicroPython reads any length, CPython refuses over 4300), a serial
        # from 0 to 2**53-1: one verdict on every runtime and in the host tool.
        ("huge-number", full.replace(b'"serial": 12', b'"serial": ' + b"9" * 300), False),
        ("huge-number-5000", full.replace(b'"serial": 12', b'"serial": ' + b"9" * 5000), False),
        ("serial-17-digits", full.replace(b'"serial": 12', b'"serial": 10000000000000000'), False),
        ("serial-2-53", full.replace(b'"serial": 12', b'"serial": 9007199254740992'), False),
        ("serial-2-53-minus-1", full.replace(b'"serial": 12', b'"serial": 9007199254740991'), True),
        ("serial-16-nines", full.replace(b'"serial": 12', b'"serial": 9999999999999999'), False),
        ("serial-minus-zero", full.replace(b'"serial": 12', b'"serial": -0'), True),
        ("serial-16-digits-zero-lead", full.replace(b'"serial": 12', b'"serial": 0000000000000012'), False),
        ("int-17-digits-elsewhere", full.replace(b'"format": 1', b'"format": 1, "x": 12345678901234567'), False),
        # Strict UTF-8 (issue 15, item 5): MicroPython's str() decodes these, CPython refuses them.
        ("overlong-slash", full.replace(b"localhost", b"local\xc0\xafhost"), False),
        ("overlong-3-byte", full.replace(b"localhost", b"local\xe0\x80\xafhost"), False),
        ("surrogate-utf8", full.replace(b"localhost", b"local\xed\xa0\x80host"), False),
        ("above-10ffff", full.replace(b"localhost", b"local\xf4\x90\x80\x80host"), False),
        ("f5-lead", full.replace(b"localhost", b"local\xf5\x80\x80\x80host"), False),
        ("truncated-sequence", full.replace(b"localhost", b"local\xe2\x82host"), False),
        ("lone-continuation", full.replace(b"localhost", b"local\x80host"), False),
        ("truncated-at-end", full[:-1] + b'"\xe2\x82', False),
        ("lone-low-surrogate-escape", full.replace(b"localhost", b"localhost\\udc00"), False),
        ("high-then-high-escape", full.replace(b"localhost", b"localhost\\ud800\\ud800"), False),
        ("huge-exponent", full.replace(b'"serial": 12', b'"serial": 1e999999'), False),
        ("nan", full.replace(b'"serial": 12', b'"serial": NaN'), False),
        ("float-format", full.replace(b'"format": 1', b'"format": 1.0'), False),
        ("bool-format", full.replace(b'"format": 1', b'"format": true'), False),
        ("leading-zero-format", full.replace(b'"format": 1', b'"format": 01'), False),
        # What MicroPython's json would read "fine": missing/extra separators,
        # dangling keys, unknown escapes, raw control characters.
        ("missing-colon", full.replace(b'"subdomains": true', b'"subdomains" true'), False),
        ("missing-comma", full.replace(b'],\n   "subdomains"', b']\n   "subdomains"'), False),
        ("double-comma", full.replace(b'"serial": 12,', b'"serial": 12,,'), False),
        ("trailing-comma", full.replace(b'"subdomains": true', b'"subdomains": true,'), False),
        ("dangling-key", full.replace(b'"subdomains": true', b'"subdomains": true, "report_only"'), False),
        ("dangling-host", full[:-2] + b', "evil.example.com"}}', False),
        ("adjacent-literals", full.replace(b'"subdomains": true', b'"subdomains": truefalse'), False),
        ("unknown-escape", full.replace(b"localhost", b"loc\\alhost"), False),
        ("raw-tab-in-string", full.replace(b"localhost", b"local\thost"), False),
        ("two-documents", full + full, False),
        ("garbage-after", full + b"x", False),
        # \u without four hex digits: MicroPython's json eats the next four
        # characters (a closing quote included) and can hand back non-str host
        # keys (sorted() then raised TypeError); issue 9, item 4.
        ("u-escape-no-digits", full.replace(b"localhost", b"localhost\\u"), False),
        ("u-escape-two-digits", full.replace(b"localhost", b"localhost\\u12"), False),
        ("u-escape-non-hex", full.replace(b"localhost", b"localhost\\u12g4"), False),
        ("u-escape-none-key", b'{"format": 1, "hosts": {"\\u": "", "x": null, "b": ""}}', False),
        ("u-escape-int-key", b'{"format": 1, "hosts": {"a\\u": "q", "": 1, "b": "q"}}', False),
        ("u-escape-bool-key", b'{"format": 1, "hosts": {"b": "", "x": "\\u", "": true, "a\\u": ""}}', False),
        ("u-escape-valid", full.replace(b'"localhost"', b'"\\u006cocalhost"'), True),
        ("u-escape-nul-in-host", full.replace(b"localhost", b"local\\u0000host"), False),
        # Digits of other scripts: CPython's isdigit()/int() take them, MicroPython's
        # do not; the format says ASCII (issue 9, item 5).
        ("fullwidth-date", full.replace(b"2027-06-30", "\uff12\uff10\uff12\uff17-\uff10\uff16-\uff13\uff10".encode()), False),
        ("arabic-indic-date", full.replace(b"2027-06-30", "\u0662\u0660\u0662\u0667-06-30".encode()), False),
        ("fullwidth-serial", full.replace(b'"serial": 12', '"serial": \uff11\uff12'.encode()), False),
        ("binary", os.urandom(4096), False),
        ("all-bytes", bytes(range(256)) * 4, False),
    ]
    for name, data, ok in out:
        assert ok or data != full, name  # every variant really differs
    return out


def test_pinset_files_truncated_misencoded_huge_deep(runtime, tmp_path):
    items = cases()
    paths = []
    for i, (name, data, ok) in enumerate(items):
        p = str(tmp_path / ("%04d-%s.json" % (i, name)))
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    missing = str(tmp_path / "does-not-exist.json")
    items.append(("missing-file", None, False))
    paths.append(missing)
    items.append(("a-directory", None, False))
    paths.append(str(tmp_path))
    cpath = str(tmp_path / "corpus.txt")
    corpus.write_corpus(cpath, [("f", p.encode()) for p in paths])
    summary, results = corpus.replay(runtime, cpath, verbose=True, timeout=120)
    print("\n%s pinset files: %s" % (runtime, json.dumps(summary)))
    assert summary["crashes"] == [], summary["crashes"]
    assert summary["tried"] == len(items)
    wrong = []
    for (n, kind, detail), (name, data, ok) in zip(results, items):
        want = ("ok", "-") if ok else ("refused", "PinsetError")
        if (kind, detail) != want:
            wrong.append((name, kind, detail))
    assert wrong == [], wrong
    # In-process (CPython) the accepted files are exactly the pinset written.
    for name, data, ok in items:
        if ok:
            ps = certpin.loads(data)
            assert ps.hosts() == ["10.0.0.1", "api.example.com", "localhost"]
            assert ps.pins("x.api.example.com") == [SPKI, CERT]
