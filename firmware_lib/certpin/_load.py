# Pinset validation: JSON text in, a compact read-only Pinset out.
#
# Everything is validated before anything is used (a device never runs with a
# pinset it could not fully read), and every error names the field. Imported
# for one use by certpin.load()/loads(), then dropped from RAM on a device.
# The texts of its refusals are in certpin/_ptext.py, loaded only for one.
# The update rules (certpin/_update.py) read bundles with _syntax and update
# keys with public_key too: this module is loaded for that (and dropped
# again) while they check signatures, and for the payload's parse.
import json
import os
import sys
from binascii import a2b_base64, b2a_base64, hexlify

from certpin import Pinset, PinsetError, _ip

try:
    from micropython import const
except ImportError:  # CPython

    def const(t):
        return t


# Names in this module are few and short on purpose: the module is dropped
# after a load, but every name it uses (functions, arguments, globals,
# attributes, string constants of up to 10 characters) stays interned as a
# qstr on a device for good. Local variables cost nothing.


def _fail(f, m, *a):
    # f: the field, m: what is wrong with it: its number in certpin/_ptext.py,
    # loaded only for a refusal (when it cannot be, as on a flash failing a
    # read or short of RAM, the refusal stands, its text named by number).
    try:
        n = "certpin._ptext"  # made at run time: a name in this module is interned at boot, for good
        __import__(n)
        m = sys.modules[n].text(m, a)
    except Exception as e:
        m = "text %d of certpin/_ptext.py %r (not loaded: %r)" % (m, a, e)
    raise PinsetError(f + ": " + m)


def _obj(d, keys, f):
    if not isinstance(d, dict):
        _fail(f, 0)  # not an object
    for k in d:
        if k not in keys:
            _fail(f, 1, k, ", ".join(keys))  # unknown key


def _flag(e, key, f):
    v = e.get(key, False)
    if v is not True and v is not False:
        _fail(f + "." + key, 2, v)  # not a boolean
    return v


def _syntax(t):
    # MicroPython's json is lax: it skips missing or extra ',' and ':', drops a
    # dangling key ({"a"} -> {}), reads [truefalse] as two values, takes unknown
    # escapes and raw control characters, lets a \u without four hex digits
    # swallow what follows (a closing quote too), and nests as deep as the
    # heap allows. So check the token sequence is JSON (numbers: integers only,
    # all a pinset has, at most 16 digits: MicroPython reads any length,
    # CPython refuses over 4300), at most 8 deep, before json.loads sees it.
    # It also holds the text to strict UTF-8, which MicroPython's str() does
    # not (it decodes overlong forms, surrogates and code points above
    # U+10FFFF; CPython refuses them): non-ASCII bytes can only be inside
    # strings, so only strings need the check. A \u escape of a surrogate
    # must be a high one followed by a low one (the runtimes decode a lone
    # one differently). t: the UTF-8 bytes, or a bytearray (a fetched
    # bundle: no copy; the few slices it takes are made bytes, which a
    # bytearray's are not on MicroPython); indexing a str would intern every
    # character it meets as a qstr on MicroPython, for good. -1, or the error
    # offset.
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
        if c in b" \t\r\n":
            continue
        if c == 34:  # "
            while i < n and t[i] != 34:
                c = t[i]
                if c < 32:
                    return i
                if c > 127:  # strict UTF-8: 2 to 4 bytes, shortest form, no surrogate, <= U+10FFFF
                    k = (c > 0xDF) + (c > 0xEF)  # continuation bytes after the second
                    if (
                        c < 0xC2 or c > 0xF4 or i + k + 1 >= n
                        or not (0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80) <= t[i + 1]
                        <= (0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF)
                    ):
                        return i
                    i += 1
                    while k:
                        i += 1
                        k -= 1
                        if t[i] & 0xC0 != 0x80:
                            return i
                elif c == 92:  # backslash
                    c = t[i + 1] if i + 1 < n else 0
                    if c == 117:  # u: exactly four hex digits
                        if len(t[i + 2 : i + 6]) < 4 or bytes(t[i + 2 : i + 6]).strip(b"0123456789abcdefABCDEF"):
                            return i
                        if t[i + 2] in b"dD" and t[i + 3] in b"89abcdefABCDEF":  # a surrogate
                            k = bytes(t[i + 6 : i + 12])  # a high one needs \uDC00-\uDFFF next
                            if (
                                t[i + 3] not in b"89abAB" or len(k) < 6 or k[:2] != b"\\u" or k[2] not in b"dD"
                                or k[3] not in b"cdefCDEF" or k[4:].strip(b"0123456789abcdefABCDEF")
                            ):
                                return i
                            i += 6
                        i += 4
                    elif c not in b'"\\/bfnrt':
                        return i
                    i += 1
                i += 1
            if i >= n or w not in (1, 2, 5, 6):
                return j
            i += 1
            w = 3 if w in (2, 5) else 4
        elif c == 123 or c == 91:  # { [
            if w not in (1, 6) or s >= 256:
                return j
            s = s << 1 | (c == 91)
            w = 6 if c == 91 else 5
        elif c == 125 or c == 93:  # } ]
            if s == 1 or s & 1 != (c == 93) or w not in (4, 5 + (c == 93)):
                return j
            s >>= 1
            w = 4
        elif c == 58 and w == 3:  # :
            w = 1
        elif c == 44 and w == 4 and s > 1:  # ,
            w = 1 + (s & 1 == 0)
        else:  # a literal or an integer (ASCII digits)
            while i < n and t[i] not in b' \t\r\n,:[]{}"':
                i += 1
            k = j + (c == 45)  # -
            if w not in (1, 6) or bytes(t[j:i]) not in (b"true", b"false", b"null") and not (
                k < i < k + 17 and not bytes(t[k:i]).strip(b"0123456789") and (t[k] != 48 or i == k + 1)
            ):
                return j
            w = 4
        if w == 4 and s == 1:
            w = 0
    return -1 if w == 0 else n


def loads(text):
    """Parse and validate pinset JSON (str or UTF-8 bytes) into a Pinset."""
    return parse(text)[1]


def parse(text):
    # (the JSON object, its Pinset): certpin._update reads "update" from the object.
    # The bytes are checked (strict UTF-8 and JSON, _syntax) before anything
    # decodes them, so every runtime gives the same verdict and message, and
    # json.loads reads the bytes: no decoded copy of the whole text.
    try:
        t = text if isinstance(text, bytes) else text.encode() if isinstance(text, str) else bytes(memoryview(text))
        if len(t) > 65535:
            _fail("pinset", 3)  # too large
        i = _syntax(t)
        if i >= 0:
            c = t[i] if i < len(t) else 0
            _fail("pinset", 4 if c > 127 else 5 if c == 45 or 47 < c < 58 else 6, i)  # not UTF-8, a number, syntax
        d = json.loads(t)
    except (PinsetError, MemoryError):  # out of RAM: not a verdict on the file
        raise
    except Exception as e:  # not text or bytes, ValueError, RecursionError
        _fail("pinset", 7, e.args[0] if e.args else type(e).__name__)  # not JSON text
    try:
        return d, _validate(d)
    except (PinsetError, MemoryError):
        raise
    except Exception as e:  # a shape no rule foresaw: refused all the same, as a PinsetError
        _fail("pinset", 8, type(e).__name__, e)  # cannot be read


def date(v):
    # (Y, M, D) of a "YYYY-MM-DD" calendar date (ASCII digits), else None.
    s = v if isinstance(v, str) and len(v) == 10 and v[4] + v[7] == "--" else ""
    # ASCII digits only: CPython's isdigit() and int() also take other
    # scripts' digits ("２０２７"), MicroPython's do not; both must agree.
    if not s or (s[:4] + s[5:7] + s[8:]).strip("0123456789"):
        return None
    y, m, n = int(s[:4]), int(s[5:7]), int(s[8:])
    feb = 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    if not 0 < m < 13 or not 0 < n <= (31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1]:
        return None
    return (y, m, n)


def _date(d, key):
    v = d.get(key)
    if v is None:
        return None
    r = date(v)
    if r is None:
        _fail(key, 9, v)  # not a date
    return r


_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
# DER SubjectPublicKeyInfo of a P-256 key up to its point: SEQUENCE, SEQUENCE
# {id-ecPublicKey, prime256v1}, BIT STRING of 66 bytes, no unused bits, 0x04
# (uncompressed). Strict DER allows exactly this one encoding of such a key.
_SPKI = const(b"\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\x03\x42\x00\x04")


def public_key(t):
    # (x, y) of the P-256 public key in the DER SubjectPublicKeyInfo t
    # (certpin._p256.public_key()): the one encoding certpin reads (above),
    # a point on the curve. Anything else is read by certpin/_ptext.py's
    # whole parser, loaded only for that, which raises ValueError("not a
    # P-256 public key: ...") saying what is wrong.
    if isinstance(t, (bytes, bytearray, memoryview)) and len(t) == 91 and bytes(t[:27]) == _SPKI:
        x = int(hexlify(t[27:59]), 16)  # not int.from_bytes: its "big" would be interned at boot, for good
        y = int(hexlify(t[59:91]), 16)
        if x < _P and y < _P and (y * y - (x * x - 3) * x - _B) % _P == 0:
            return x, y
    m = "certpin._ptext"
    __import__(m)
    return sys.modules[m].public_key(t)


def _update_section(d):
    # "update": who may sign the next pinset (certpin._update). The keys are
    # checked here, so a pinset naming a key no update could ever verify
    # against is refused when it is loaded, not when an update arrives.
    _obj(d, ("keys", "threshold", "url"), "update")
    keys = d.get("keys")
    if not isinstance(keys, list) or not 0 < len(keys) < 17:
        _fail("update.keys", 10)  # not a list of 1 to 16 keys

    for j, k in enumerate(keys):
        f = "update.keys[%d]" % j
        try:
            der = a2b_base64(k) if isinstance(k, str) and not k.strip(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") else b""
        except ValueError:  # bad padding (binascii.Error is one); MemoryError is not a verdict
            der = b""
        if not der or b2a_base64(der)[:-1] != k.encode():
            _fail(f, 11)  # not base64
        try:
            public_key(der)
        except ValueError as e:
            raise PinsetError(f + ": " + e.args[0])
        if k in keys[:j]:
            _fail(f, 12, keys.index(k))  # a duplicate
    t = d.get("threshold")
    if type(t) is not int or not 0 < t <= len(keys):
        _fail("update.threshold", 13, len(keys), t)
    url(d.get("url"), "update.url")


def url(v, f):
    # None, or an http:// or https:// URL of printable ASCII (checked on the
    # bytes: iterating a str on MicroPython interns every character it meets).
    try:
        b = v.encode() if isinstance(v, str) else b""
    except Exception:  # CPython: a lone surrogate
        b = b""
    if v is not None and not (0 < len(b) <= 512 and min(b) > 32 and max(b) < 127 and (b[:7] == b"http://" or b[:8] == b"https://")):
        _fail(f, 14, v)  # not a URL


def _report(r, f, t):
    # "report": where certpin.send_reports() sends the journal's records
    # (docs/reports.md); t: at the top, where it may also name the device id
    # the records carry (a host's names only a url).
    _obj(r, ("url", "device") if t else ("url",), f)
    if not t and "url" not in r:
        _fail("%s.%s" % (f, "url"), 15)  # required
    url(r.get("url"), "%s.%s" % (f, "url"))
    v = r.get("device")
    b = v.encode() if isinstance(v, str) else b""
    if v is not None and not (0 < len(b) <= 64 and min(b) > 32 and max(b) < 127):
        _fail("%s.%s" % (f, "device"), 16, v)


def _validate(d):
    _obj(d, ("format", "serial", "issued", "expires", "update", "report", "hosts"), "pinset")
    v = d.get("format")
    if v != 1 or type(v) is not int:
        _fail("format", 17, v)
    serial = d.get("serial")
    if serial is not None and (type(serial) is not int or not 0 <= serial <= 9007199254740991):
        _fail("serial", 18, serial)
    expires = _date(d, "expires")
    issued = _date(d, "issued")
    if issued and expires and issued > expires:
        _fail("issued", 19, *issued)  # after expires
    if "update" in d:
        _update_section(d["update"])
    if "report" in d:
        _report(d["report"], "report", True)
    hosts = d.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        _fail("hosts", 20)  # no host
    for name in hosts:
        if not isinstance(name, str):  # JSON keys are; a lax parser's may not be (sorted() would raise)
            _fail("hosts[%r]" % (name,), 21)  # not a host name
    names = sorted(hosts)
    size = 0
    for name in names:
        f = "hosts[%r]" % name
        if (
            not isinstance(name, str)
            or not 0 < len(name) < 254
            or name.strip("abcdefghijklmnopqrstuvwxyz0123456789.-_:")
            or ".." in name
            or name[:1] in ".-"  # a slice: indexing a str interns the character (MicroPython)
            or name[-1:] in ".-"
        ):
            _fail(f, 22)  # not a lowercase host name
        e = hosts[name]
        _obj(e, ("pins", "subdomains", "report_only", "ports", "report"), f)
        if "report" in e:
            _report(e["report"], "%s.%s" % (f, "report"), False)
        pins = e.get("pins")
        if not isinstance(pins, list) or not 0 < len(pins) < 256:
            _fail("%s.%s" % (f, "pins"), 23)  # "%s.%s": one interned string for every field
        if _flag(e, "subdomains", f) and _ip(name):
            _fail("%s.%s" % (f, "subdomains"), 24)  # an IP literal
        _flag(e, "report_only", f)
        v = e.get("ports", [443])  # the ports `certpin verify` checks; the device only validates them
        if not isinstance(v, list) or not 0 < len(v) < 17 or [p for p in v if type(p) is not int or not 0 < p < 65536 or v.count(p) > 1]:
            _fail("%s.%s" % (f, "ports"), 25, v)
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
            kind = 1 if isinstance(pin, str) and pin[:7] == "sha256/" else 2  # else cert-sha256/
            p = "sha256/" if kind == 1 else "cert-sha256/"
            try:
                dg = a2b_base64(pin[len(p) :]) if pin[: len(p)] == p else b""
            except (ValueError, TypeError):  # not base64, not a str (MemoryError is no verdict on the pin)
                dg = b""
            if not isinstance(pin, str) or len(pin) != len(p) + 44 or len(dg) != 32 or b2a_base64(dg)[:44] != pin[len(p) :].encode():
                _fail("hosts[%r].pins[%d]" % (name, j), 26, pin)  # not a pin
            b[r] = kind
            b[r + 1 : r + 33] = dg
            texts.append(pin)
            t += len(pin)
            r += 33
    m = 0
    for name in names:
        m = max(m, len(name))
    return Pinset(tuple(names), bytes(b), "".join(texts), serial, expires, issued, m)


def floor_path(path):
    # The time floor lives next to the pinset: /certpin.json -> /certpin.floor.
    return (path[:-5] if path[-5:] == ".json" else path) + ".floor"


def read_floor(d):
    # (Y, M, D) from the floor file, or None. certpin._floor.advance writes
    # d + ".tmp" and renames it over d (the floor file); on FAT that rename is
    # delete then rename, so a power cut between the two leaves only the .tmp,
    # which is then complete. Anything unreadable counts as no floor: the floor
    # only ever makes expiry come sooner, never lets a connection through.
    for q in (d, d + ".tmp"):
        try:
            with open(q, "rb") as f:
                t = f.read(12)
        except OSError as e:
            if e.args[:1] == (2,) and q == d:  # ENOENT: the .tmp is complete (FAT's window)
                continue
            return None  # an error reading the floor is no reason to trust an older .tmp
        try:
            return date(str(t[:10], "utf-8")) if len(t) == 11 and t[10] == 10 else None
        except Exception:  # not UTF-8
            return None
    return None


def read(path):
    # The pinset file's bytes (at most 64 KiB and one byte, so a larger file is
    # refused, not cut short). An update's install (certpin._update) moves the
    # old file to path.bak before the new one takes its name; a power cut
    # between the two leaves only path.bak, the old pinset: put it back. Only
    # then: when path does not exist (ENOENT, from open and again from stat),
    # never on another error (EMFILE, EIO: path may hold a newer pinset, and
    # a .bak beside it is a stale one an install did not get to remove).
    try:
        f = open(path, "rb")
    except OSError as e:
        if e.args[:1] != (2,):
            raise
        try:
            os.stat(path)
        except OSError as e:
            if e.args[:1] == (2,):
                try:
                    os.rename(path + ".bak", path)
                except OSError:
                    pass
        f = open(path, "rb")
    with f:
        # read(n) allocates n bytes up front on MicroPython: ask for the file's
        # size (one more than the 64 KiB limit at most), not 64 KiB every boot.
        return f.read(min(os.stat(path)[6], 65535) + 1)


def load(path="/certpin.json"):
    """Read and validate the pinset file at ``path``, and its time floor."""
    try:
        ps = loads(read(path))
        ps._fp = fp = floor_path(path)
        v = read_floor(fp)
    except (OSError, ValueError, TypeError) as e:  # ValueError/TypeError: a path open() cannot take
        _fail(path, 27, e)  # cannot read the file
    except PinsetError as e:
        raise PinsetError("%s: %s" % (path, e.args[0]))
    if v and (ps.floor is None or v > ps.floor):
        ps.floor = v
    return ps
