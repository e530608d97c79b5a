# Pinset loading and validation: JSON text in, a compact read-only Pinset out.
#
# Everything is checked before anything is used: a device never runs with a
# pinset it could not fully read. Every error names the field.
#
# RAM layout (per pin ~35 bytes of record + the pin text; per host one dict
# slot and its name):
#   _h  dict  host name -> offset of its record in _b (a small int: no object)
#   _b  bytes records: [flags][n] then n x [kind][text offset: 2][digest: 32]
#   _t  str   every pin's text, back to back; check() returns a slice of it
import json
from binascii import a2b_base64, b2a_base64

from certpin import PinsetError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_TEXT = const(65535)  # record offsets are 16-bit
_SUBDOMAINS = const(1)
_REPORT_ONLY = const(2)
_REC = const(35)
# kind -> prefix; a pin's text is prefix + 44 base64 characters
PREFIXES = ("sha256/", "cert-sha256/")  # kind 1 = SPKI, kind 2 = whole certificate


class Pinset:
    """A validated pinset. Attributes: serial (int or None), expires ((Y, M, D) or None)."""

    def __init__(self, h, b, t, serial, expires):
        self._h = h
        self._b = b
        self._t = t
        self.serial = serial
        self.expires = expires

    def hosts(self):
        """The host names of the pinset, sorted."""
        return sorted(self._h)

    def pins(self, host):
        """The configured pins of the entry that covers ``host`` ([] if none)."""
        r = self._find(host)
        return [] if r < 0 else [self._text(r, j) for j in range(self._b[r + 1])]

    def _text(self, r, j):
        o = r + 2 + j * _REC
        b = self._b
        k = (b[o + 1] << 8) | b[o + 2]
        return self._t[k : k + len(PREFIXES[b[o] - 1]) + 44]

    def _find(self, host):
        # Offset of the record covering host, or -1. Exact, case-insensitive,
        # one trailing dot ignored; then the nearest parent with subdomains set
        # (never a sibling like xapi.example.com); IP literals match exactly.
        h = self._h
        if not isinstance(host, str):
            return -1
        r = h.get(host)  # the common case allocates nothing
        if r is not None:
            return r
        host = host.lower()
        if host[-1:] == ".":
            host = host[:-1]
        r = h.get(host)
        if r is not None:
            return r
        if _is_ip(host):
            return -1
        i = host.find(".")
        while i >= 0:
            r = h.get(host[i + 1 :])
            if r is not None and self._b[r] & _SUBDOMAINS:
                return r
            i = host.find(".", i + 1)
        return -1


def _is_ip(name):
    # IPv6 literals hold ':'; IPv4 literals are digits and dots only.
    if ":" in name:
        return True
    for c in name:
        if c != "." and not ("0" <= c <= "9"):
            return False
    return bool(name)


def _name_ok(name):
    if not name or len(name) > 253:
        return False
    if ":" in name:  # IPv6 literal
        for c in name:
            if c not in "0123456789abcdef:.":
                return False
        return True
    for label in name.split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        for c in label:
            if not ("a" <= c <= "z" or "0" <= c <= "9" or c in "-_"):
                return False
    return True


def _date(s, field):
    # "YYYY-MM-DD" -> (Y, M, D), a real calendar date.
    if not isinstance(s, str) or len(s) != 10 or s[4] != "-" or s[7] != "-":
        raise PinsetError("%s: expected a date YYYY-MM-DD, found %r" % (field, s))
    if not (s[:4] + s[5:7] + s[8:]).isdigit():
        raise PinsetError("%s: expected a date YYYY-MM-DD, found %r" % (field, s))
    y, m, d = int(s[:4]), int(s[5:7]), int(s[8:])
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= m <= 12 or not 1 <= d <= days[m - 1]:
        raise PinsetError("%s: %r is not a calendar date" % (field, s))
    return (y, m, d)


def _keys(d, allowed, field):
    if not isinstance(d, dict):
        raise PinsetError("%s: expected a JSON object" % field)
    for k in d:
        if k not in allowed:
            raise PinsetError("%s: unknown key %r (allowed: %s)" % (field, k, ", ".join(allowed)))


def _flag(e, key, field):
    v = e.get(key, False)
    if v is not True and v is not False:
        raise PinsetError("%s.%s: expected true or false, found %r" % (field, key, v))
    return v


def _digest(pin, field):
    # "sha256/<b64>" or "cert-sha256/<b64>" -> (kind, 32-byte digest); canonical base64 only.
    if not isinstance(pin, str):
        raise PinsetError("%s: expected a string, found %r" % (field, pin))
    for kind in (1, 2):
        p = PREFIXES[kind - 1]
        if pin.startswith(p):
            b64 = pin[len(p) :]
            try:
                d = a2b_base64(b64)
            except Exception:
                d = b""
            if len(b64) != 44 or len(d) != 32 or b2a_base64(d)[:44] != b64.encode():
                raise PinsetError(
                    "%s: %r is not %s followed by the base64 of a 32-byte SHA-256 digest" % (field, pin, p)
                )
            return kind, d
    raise PinsetError("%s: %r must start with sha256/ (SPKI) or cert-sha256/ (certificate)" % (field, pin))


def loads(text):
    """Parse and validate pinset JSON text (str or UTF-8 bytes); returns a Pinset."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = str(text, "utf-8")
        except Exception:
            raise PinsetError("pinset: not UTF-8 text")
    if not isinstance(text, str):
        raise PinsetError("pinset: expected JSON text, found %s" % type(text).__name__)
    if len(text) > _MAX_TEXT:
        raise PinsetError("pinset: larger than %d bytes" % _MAX_TEXT)
    try:
        d = json.loads(text)
    except Exception as e:  # ValueError, RecursionError, MemoryError: all mean "unreadable"
        raise PinsetError("pinset: not valid JSON (%s)" % (e.args[0] if e.args else type(e).__name__))
    _keys(d, ("format", "serial", "expires", "hosts"), "pinset")
    if d.get("format") != 1 or type(d.get("format")) is not int:
        raise PinsetError("format: expected 1, found %r" % (d.get("format"),))
    serial = d.get("serial")
    if serial is not None and (type(serial) is not int or serial < 0):
        raise PinsetError("serial: expected a whole number >= 0, found %r" % (serial,))
    expires = d.get("expires")
    if expires is not None:
        expires = _date(expires, "expires")
    hosts = d.get("hosts")
    if not isinstance(hosts, dict):
        raise PinsetError("hosts: expected a JSON object mapping host names to entries")
    if not hosts:
        raise PinsetError("hosts: no hosts (a device would refuse every connection)")
    # First pass: validate, and size the record buffer exactly.
    checked = []
    size = 0
    texts = []
    tlen = 0
    for name in sorted(hosts):
        e = hosts[name]
        f = "hosts[%r]" % name
        if not _name_ok(name) or name != name.lower() or name[-1] == ".":
            raise PinsetError("%s: not a lowercase host name or IP literal without a trailing dot" % f)
        _keys(e, ("pins", "subdomains", "report_only"), f)
        pins = e.get("pins")
        if not isinstance(pins, list) or not pins:
            raise PinsetError("%s.pins: expected a non-empty list of pins" % f)
        if len(pins) > 255:
            raise PinsetError("%s.pins: more than 255 pins" % f)
        flags = 0
        if _flag(e, "subdomains", f):
            if _is_ip(name):
                raise PinsetError("%s.subdomains: an IP literal has no subdomains" % f)
            flags |= _SUBDOMAINS
        if _flag(e, "report_only", f):
            flags |= _REPORT_ONLY
        ds = []
        for j, pin in enumerate(pins):
            kind, dg = _digest(pin, "%s.pins[%d]" % (f, j))
            ds.append((kind, tlen, dg))
            texts.append(pin)
            tlen += len(pin)
        checked.append((name, flags, ds))
        size += 2 + _REC * len(ds)
    if tlen > _MAX_TEXT:
        raise PinsetError("pinset: too many pins")
    # Second pass: build the compact form.
    b = bytearray(size)
    h = {}
    r = 0
    for name, flags, ds in checked:
        h[name] = r
        b[r] = flags
        b[r + 1] = len(ds)
        o = r + 2
        for kind, k, dg in ds:
            b[o] = kind
            b[o + 1] = k >> 8
            b[o + 2] = k & 0xFF
            b[o + 3 : o + _REC] = dg
            o += _REC
        r = o
    return Pinset(h, bytes(b), "".join(texts), serial, expires)


def load(path="/certpin.json"):
    """Read and validate the pinset file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TEXT + 1)
    except OSError as e:
        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    try:
        return loads(data)
    except PinsetError as e:
        raise PinsetError("%s: %s" % (path, e.args[0]))
