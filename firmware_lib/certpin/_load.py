# Pinset validation: JSON text in, a compact read-only Pinset out.
#
# Everything is validated before anything is used (a device never runs with a
# pinset it could not fully read), and every error names the field. Imported
# for one use by certpin.load()/loads(), then dropped from RAM on a device.
import json
from binascii import a2b_base64, b2a_base64

from certpin import Pinset, PinsetError, _ip

PREFIXES = ("sha256/", "cert-sha256/")  # kind 1: SPKI pin, kind 2: whole-certificate pin
_NAME = "abcdefghijklmnopqrstuvwxyz0123456789.-_:"
_HEX = "0123456789abcdefABCDEF"


def _digits(s):
    # ASCII digits only: CPython's isdigit() and int() also take other
    # scripts' digits ("２０２７"), MicroPython's do not; both must agree.
    return s != "" and not s.strip("0123456789")


def _fail(field, msg, *a):
    raise PinsetError(field + ": " + (msg % a if a else msg))


def _obj(d, keys, field):
    if not isinstance(d, dict):
        _fail(field, "expected a JSON object")
    for k in d:
        if k not in keys:
            _fail(field, "unknown key %r (allowed: %s)", k, ", ".join(keys))


def _flag(e, key, field):
    v = e.get(key, False)
    if v is not True and v is not False:
        _fail(field + "." + key, "expected true or false, found %r", v)
    return v


def _syntax(t):
    # MicroPython's json is lax: it skips missing or extra ',' and ':', drops a
    # dangling key ({"a"} -> {}), reads [truefalse] as two values, takes unknown
    # escapes and raw control characters, and nests as deep as the heap allows.
    # So check the token sequence is JSON (numbers: integers only, all a pinset
    # has), at most 8 deep, before json.loads sees it. -1, or the error offset.
    # w (what may come next): 1 value, 3 ':', 4 ',' or close, 5 key or '}',
    # 6 value or ']', 2 key, 0 nothing (the document is complete).
    s = 1  # open containers as bits below a leading 1: 0 object, 1 array
    w = 1
    i = 0
    n = len(t)
    while i < n:
        c = t[i]
        j = i
        i += 1
        if c in " \t\r\n":
            continue
        if c == '"':
            while i < n and t[i] != '"':
                if t[i] < " ":
                    return i
                if t[i] == "\\":
                    c = t[i + 1 : i + 2]
                    if c == "u":  # exactly four hex digits, or MicroPython's json eats what follows
                        if len(t[i + 2 : i + 6]) < 4 or t[i + 2 : i + 6].strip(_HEX):
                            return i
                        i += 4
                    elif not c or c not in '"\\/bfnrt':
                        return i
                    i += 1
                i += 1
            if i >= n or w not in (1, 2, 5, 6):
                return j
            i += 1
            w = 3 if w in (2, 5) else 4
        elif c in "{[":
            if w not in (1, 6) or s >= 256:
                return j
            s = s << 1 | (c == "[")
            w = 6 if c == "[" else 5
        elif c in "}]":
            if s == 1 or s & 1 != (c == "]") or w not in (4, 5 + (c == "]")):
                return j
            s >>= 1
            w = 4
        elif c == ":" and w == 3:
            w = 1
        elif c == "," and w == 4 and s > 1:
            w = 1 + (s & 1 == 0)
        else:
            while i < n and t[i] not in ' \t\r\n,:[]{}"':
                i += 1
            k = j + (c == "-")
            if w not in (1, 6) or t[j:i] not in ("true", "false", "null") and not (
                _digits(t[k:i]) and (t[k] != "0" or i == k + 1)
            ):
                return j
            w = 4
        if w == 4 and s == 1:
            w = 0
    return -1 if w == 0 else n


def loads(text):
    """Parse and validate pinset JSON (str or UTF-8 bytes) into a Pinset."""
    try:
        if not isinstance(text, str):
            text = str(text, "utf-8")
        if len(text) > 65535:
            _fail("pinset", "larger than 65535 bytes")
        i = _syntax(text)
        if i >= 0:
            _fail("pinset", "not valid UTF-8 JSON text (syntax error at offset %d)", i)
        d = json.loads(text)
    except PinsetError:
        raise
    except Exception as e:  # not text, not UTF-8, ValueError, RecursionError, MemoryError
        _fail("pinset", "not valid UTF-8 JSON text (%s)", e.args[0] if e.args else type(e).__name__)
    try:
        return _validate(d)
    except PinsetError:
        raise
    except Exception as e:  # a shape no rule foresaw: refused all the same, as a PinsetError
        _fail("pinset", "cannot be read (%s: %s)", type(e).__name__, e)


def _validate(d):
    _obj(d, ("format", "serial", "expires", "hosts"), "pinset")
    v = d.get("format")
    if v != 1 or type(v) is not int:
        _fail("format", "expected 1, found %r", v)
    serial = d.get("serial")
    if serial is not None and (type(serial) is not int or serial < 0):
        _fail("serial", "expected a whole number >= 0, found %r", serial)
    v = d.get("expires")
    expires = None
    if v is not None:
        s = v if isinstance(v, str) and len(v) == 10 and v[4] + v[7] == "--" else "x"
        if not _digits(s[:4] + s[5:7] + s[8:]):
            _fail("expires", "expected a date YYYY-MM-DD, found %r", v)
        y, m, n = int(s[:4]), int(s[5:7]), int(s[8:])
        feb = 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
        if not 0 < m < 13 or not 0 < n <= (31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1]:
            _fail("expires", "%r is not a calendar date", v)
        expires = (y, m, n)
    hosts = d.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        _fail("hosts", "expected a JSON object of one or more host entries")
    for name in hosts:
        if not isinstance(name, str):  # JSON keys are; a lax parser's may not be (sorted() would raise)
            _fail("hosts[%r]" % (name,), "not a host name")
    names = sorted(hosts)
    size = 0
    for name in names:
        f = "hosts[%r]" % name
        if (
            not isinstance(name, str)
            or not 0 < len(name) < 254
            or name.strip(_NAME)
            or ".." in name
            or name[0] in ".-"
            or name[-1] in ".-"
        ):
            _fail(f, "not a lowercase host name or IP literal without a trailing dot")
        e = hosts[name]
        _obj(e, ("pins", "subdomains", "report_only"), f)
        pins = e.get("pins")
        if not isinstance(pins, list) or not 0 < len(pins) < 256:
            _fail(f + ".pins", "expected a list of 1 to 255 pins")
        if _flag(e, "subdomains", f) and _ip(name):
            _fail(f + ".subdomains", "an IP literal has no subdomains")
        _flag(e, "report_only", f)
        size += 4 + 33 * len(pins)
    # Second pass: pins, into the compact form (sized exactly, no growth).
    b = bytearray(2 * len(names) + size)
    texts = []
    t = 0
    r = 2 * len(names)
    for i, name in enumerate(names):
        e = hosts[name]
        b[2 * i] = r >> 8
        b[2 * i + 1] = r & 255
        b[r] = (e.get("subdomains") is True) | (e.get("report_only") is True) << 1
        b[r + 1] = len(e["pins"])
        b[r + 2] = t >> 8
        b[r + 3] = t & 255
        r += 4
        for j, pin in enumerate(e["pins"]):
            kind = 1 if isinstance(pin, str) and pin[:7] == PREFIXES[0] else 2
            p = PREFIXES[kind - 1]
            try:
                dg = a2b_base64(pin[len(p) :]) if pin[: len(p)] == p else b""
            except Exception:
                dg = b""
            if not isinstance(pin, str) or len(pin) != len(p) + 44 or len(dg) != 32 or b2a_base64(dg)[:44] != pin[len(p) :].encode():
                _fail(
                    "hosts[%r].pins[%d]" % (name, j),
                    "%r is not sha256/ (SPKI) or cert-sha256/ (certificate) + base64 of a SHA-256 digest",
                    pin,
                )
            b[r] = kind
            b[r + 1 : r + 33] = dg
            texts.append(pin)
            t += len(pin)
            r += 33
    return Pinset(tuple(names), bytes(b), "".join(texts), serial, expires)


def load(path="/certpin.json"):
    """Read and validate the pinset file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
        return loads(data)
    except (OSError, ValueError, TypeError) as e:  # ValueError/TypeError: a path open() cannot take
        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    except PinsetError as e:
        raise PinsetError("%s: %s" % (path, e.args[0]))


