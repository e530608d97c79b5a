# certpin: X.509 public-key and certificate pinning for MicroPython and CPython.
#
#   spki_sha256(der), cert_sha256(der)   the digests inside pins
#   load(path), loads(text) -> Pinset    read and validate a pinset
#   check(pinset, host, chain)           pure check of a DER chain (leaf first)
#                                        (loaded on first use)
#   SSLContext(pinset, cadata, on_failure), connect(host, port, ...)
#                                        pinned TLS (loaded on first use)
#   install(pinset, cadata, others), uninstall()
#                                        every TLS client connection of the
#                                        application pinned (MicroPython; on use)
#
# Every refusal is a certpin.Error: PinError (the peer did not match, or its
# pins could not be checked) or PinsetError (the pinset is unusable).
#
# This module holds what every user needs (the DER walk, the loaded Pinset,
# the matching every connection uses). It is one module rather than three
# because on a device each module costs RAM of its own (measured on the unix
# port: `import certpin` took 8.3 KB as three modules, 7.5 KB as one). Rarely needed code lives in modules imported on first use: _load
# (validation, dropped after use on a device), _check (check()), _tls
# (pinned TLS), _deferred, _report (failure text), _cpy (CPython TLS),
# _install (install(): the stand-in for the tls module), _patch (install()'s
# work, dropped after use on a device).
__version__ = "0.1.0"

import hashlib
import sys


class Error(Exception):
    pass


class PinError(Error):
    pass


class PinsetError(Error):
    pass


class UpdateError(Error):
    # A pinset update was refused: e.reason says which rule (docs/updates.md),
    # set where it is raised (certpin._update); e.args[0] is the message.
    pass


# ---- The DER walk to the SubjectPublicKeyInfo ----
# Strict DER walk from an X.509 certificate to its SubjectPublicKeyInfo (SPKI).
#
# Every element on the way has its tag checked and a minimal definite length
# (1 or 2 length octets at most: certificates over 64 KiB are refused); the
# certificate ends exactly where its outer SEQUENCE says, and the SPKI ends
# inside TBSCertificate, so every element before it does too (offsets only
# grow); the SPKI's two parts, what follows it in TBSCertificate and the
# signature after TBSCertificate are checked the same way. The bytes hashed
# are the key a TLS stack reads, never something placed where a lax parser
# would look (an extension, the subject, trailing data).
#
# Speed: on MicroPython a function call costs as much as a dozen bytecodes, so
# each step is written inline and out-of-range reads are caught as IndexError
# instead of testing bounds at every step (measured: 3x faster than a
# header-reading helper per element). The walk allocates nothing.

def _long(b, i):
    # Size of the element at b[i] whose length octet has the high bit set.
    c = b[i + 1]
    if c == 0x81:
        n = b[i + 2]
        if n > 0x7F:
            return 3 + n
    elif c == 0x82:
        n = b[i + 2] << 8 | b[i + 3]
        if n > 0xFF:
            return 4 + n
    raise Error(
        "bad certificate: %s length at offset %d"
        % ("indefinite" if c == 0x80 else "over-long" if c > 0x82 else "non-minimal", i)
    )


def _tag(b, i, t):
    return Error("bad certificate: expected tag 0x%02x at offset %d, found 0x%02x" % (t, i, b[i]))


def spki_sha256(b, whole=False):
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes).

    The digest inside an OkHttp/HPKP ``sha256/<base64>`` pin. ``b`` is bytes,
    bytearray or memoryview; raises certpin.Error if it is not strict DER.
    Allocates the hash object, one memoryview (two for bytes input) and the
    digest. (whole=True: the digest of the whole certificate; see cert_sha256.)
    """
    try:
        # Certificate ::= SEQUENCE, exactly the whole buffer
        if b[0] != 0x30:
            raise _tag(b, 0, 0x30)
        k = b[1]
        e = k + 2 if k < 0x80 else _long(b, 0)
        if e != len(b):
            raise Error("bad certificate: " + ("data after the certificate" if e < len(b) else "truncated"))
        i = 2 if k < 0x80 else k - 0x7E
        # TBSCertificate ::= SEQUENCE
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        t = i + (k + 2 if k < 0x80 else _long(b, i))
        i += 2 if k < 0x80 else k - 0x7E
        # [0] EXPLICIT version: exactly A0 03 02 01 0v, v1..v3
        if b[i] == 0xA0:
            if b[i + 1] != 3 or b[i + 2] != 2 or b[i + 3] != 1 or b[i + 4] > 2:
                raise Error("bad certificate: bad version at offset %d" % i)
            i += 5
        # serialNumber INTEGER
        if b[i] != 0x02:
            raise _tag(b, i, 0x02)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        # signature AlgorithmIdentifier, issuer Name, validity, subject Name
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        # subjectPublicKeyInfo SEQUENCE, inside TBSCertificate
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        e = i + (k + 2 if k < 0x80 else _long(b, i))
        if e > t or t > len(b):
            raise Error("bad certificate: an element overruns TBSCertificate")
        # The SPKI is exactly {AlgorithmIdentifier, BIT STRING}; after it come
        # only issuerUniqueID [1], subjectUniqueID [2], extensions [3], in that
        # order, up to t; after TBSCertificate exactly signatureAlgorithm and
        # signatureValue. A TLS stack refuses anything else, so it is refused
        # here too, not hashed.
        k = b[i + 1]
        j = i + (2 if k < 0x80 else k - 0x7E)
        if b[j] != 0x30:
            raise _tag(b, j, 0x30)
        k = b[j + 1]
        j += k + 2 if k < 0x80 else _long(b, j)
        if b[j] != 0x03:
            raise _tag(b, j, 0x03)
        k = b[j + 1]
        j += k + 2 if k < 0x80 else _long(b, j)
        if j != e:
            raise Error("bad certificate: data after the public key at offset %d" % j)
        if j < t and b[j] == 0x81:
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j < t and b[j] == 0x82:
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j < t:
            if b[j] != 0xA3:
                raise _tag(b, j, 0xA3)
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j != t:
            raise Error("bad certificate: data after the extensions at offset %d" % t)
        if b[t] != 0x30:
            raise _tag(b, t, 0x30)
        k = b[t + 1]
        t += k + 2 if k < 0x80 else _long(b, t)
        if b[t] != 0x03:
            raise _tag(b, t, 0x03)
        k = b[t + 1]
        t += k + 2 if k < 0x80 else _long(b, t)
        if t != len(b):
            raise Error("bad certificate: data after the signature at offset %d" % t)
        if whole:
            return hashlib.sha256(b).digest()
        return hashlib.sha256((b if isinstance(b, memoryview) else memoryview(b))[i:e]).digest()
    except IndexError:
        raise Error("bad certificate: truncated")
    except TypeError:  # checked here, not up front: the hot path stays short
        raise Error("certificate must be DER bytes, bytearray or memoryview, not %s" % type(b).__name__)


def cert_sha256(der):
    """SHA-256 of the whole DER certificate (32 bytes), after the same checks."""
    return spki_sha256(der, True)


# ---- The loaded pinset (validation is in _load.py) ----
#
# RAM layout, ~125 bytes per pin for a 50-host pinset with 2 pins per host:
#   _n  tuple  the host names, sorted (a tuple costs less than a dict's table)
#   _b  bytes  [record offset: 2] per host, then per host a record:
#              [flags][n][text offset: 2], n x [kind][digest: 32]
#   _t  str    every pin's text back to back: check() returns a slice of it


class Pinset:
    """A validated pinset: serial (int or None), expires, issued, floor ((Y, M, D) or None)."""

    # floor: the time floor, the latest date authenticated so far
    # (docs/updates.md); expiry is judged against it, never the raw clock.

    def __init__(self, n, b, t, serial, expires, issued=None):
        self._n, self._b, self._t, self.serial, self.expires = n, b, t, serial, expires
        self.issued = self.floor = issued
        self._fp = None  # the floor file, for a pinset read by load()
        m = 0
        for h in n:
            m = max(m, len(h))
        self._m = m  # the longest name: a parent longer than this cannot match

    def hosts(self):
        return list(self._n)

    def pins(self, host):
        """The pins of the entry covering ``host`` ([] when none does, or it is no host name)."""
        r = -1 if _bad_name(host) else self._find(host)
        return [] if r < 0 else [self._text(r, j) for j in range(self._b[r + 1])]

    def _text(self, r, j):
        b = self._b
        k = b[r + 2] << 8 | b[r + 3]
        o = r + 4
        while j >= 0:
            n = 51 if b[o] == 1 else 56  # len("sha256/") or len("cert-sha256/"), + 44
            if not j:
                return self._t[k : k + n]
            k += n
            o += 33
            j -= 1

    def _rec(self, name):
        # Record offset of exactly `name`, or -1 (binary search; no allocation).
        a = self._n
        lo = 0
        hi = len(a)
        while lo < hi:
            m = (lo + hi) >> 1
            if a[m] < name:
                lo = m + 1
            else:
                hi = m
        if lo < len(a) and a[lo] == name:
            return self._b[2 * lo] << 8 | self._b[2 * lo + 1]
        return -1

    def _find(self, host):
        # Offset of the record covering host, or -1. Exact and case-insensitive
        # with one trailing dot ignored; else the nearest parent entry with
        # subdomains (never a sibling such as xapi.example.com). IP literals
        # match exactly. A name the resolver or the TLS stack would read
        # differently (a NUL cuts it short in C) is a PinError, not a lookup.
        e = _bad_name(host)
        if e:
            raise PinError("%r is not a usable host name: %s" % (host[:80] if isinstance(host, str) else host, e))
        r = self._rec(host)  # the common case allocates nothing
        if r < 0:
            host = host.lower()
            if host[-1:] == ".":
                host = host[:-1]
            r = self._rec(host)
            # Parents no longer than the longest entry, most specific first;
            # each find() starts where the last stopped: linear in len(host).
            i = -1 if r >= 0 or _ip(host) else host.find(".", max(0, len(host) - self._m - 1))
            while i >= 0:
                r = self._rec(host[i + 1 :])
                if r >= 0 and self._b[r] & 1:
                    return r
                r = -1
                i = host.find(".", i + 1)
        return r


def _bad_name(host):
    # Why host cannot be looked up, or None: printable ASCII only (pinset
    # names are ASCII; MicroPython and CPython lowercase other characters
    # differently), at most 253 characters plus a trailing dot, labels of at
    # most 63.
    if not isinstance(host, str):
        return "expected a str, not " + type(host).__name__
    n = len(host)
    if n == 0 or n > 254 or n == 254 and host[-1] != ".":
        return "%d characters (1 to 253 allowed)" % n
    k = 0
    for c in host:
        if c == ".":
            k = 0
        elif c < " " or c > "~":
            return "control or non-ASCII character %r (write IDNs in their xn-- form)" % c
        else:
            k += 1
            if k > 63:
                return "a label longer than 63 characters"
    return None


def _ip(name):
    # An IP literal: IPv6 (a colon) or only ASCII digits and dots.
    d = name.replace(".", "")
    return ":" in name or d != "" and not d.strip("0123456789")


# Modules loaded for one call and dropped again on a device (see _use).
_ONCE = ("_load", "_report", "_update", "_fetch", "_p256", "_floor")


def _use(name, fn, *args):
    # certpin.<name>.<fn>(*args), the module imported for this one call. On a
    # device it is dropped again afterwards, with every other _ONCE module it
    # imported: validation runs once at boot, failure text only when something
    # is refused, updates rarely, so none of them stays resident in a heap
    # that the TLS stack shares.
    m = "certpin." + name
    __import__(m)
    try:
        return getattr(sys.modules[m], fn)(*args)
    finally:
        if sys.implementation.name == "micropython":
            g = globals()  # an import also binds the submodule here
            for n in _ONCE:
                sys.modules.pop("certpin." + n, None)
                if n in g:
                    del g[n]


def loads(text):
    """Parse and validate pinset JSON (str or UTF-8 bytes) into a Pinset."""
    return _use("_load", "loads", text)


def load(path="/certpin.json"):
    """Read and validate the pinset file at ``path``."""
    return _use("_load", "load", path)


def match(ps, r, der, d):
    # The pin text of record r that certificate `der` (SPKI digest d) matches, or None.
    b = ps._b
    o = r + 4
    c = None
    for j in range(b[r + 1]):
        x = d
        if b[o] == 2:  # a whole-certificate pin: hash only when the host has one
            if c is None:
                c = cert_sha256(der)
            x = c
        if b.find(x, o + 1, o + 33) == o + 1:
            return ps._text(r, j)
        o += 33
    return None


def __getattr__(name):
    # Imported on first use, then cached in this module: the pure check()
    # (host tools, tests) and the TLS layer. A device that only connects
    # never loads check(); the host tools never load the TLS layer.
    # update(bundle, path="/certpin.json") -> Pinset and
    # fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None)
    # -> (Pinset, changed) run their module for one call (docs/updates.md):
    # nothing is cached, so a device that updates keeps no RAM for it.
    if name == "update":
        return lambda bundle, path="/certpin.json": _use("_update", "update", bundle, path)
    if name == "fetch_update":
        return lambda url=None, path="/certpin.json", timeout=10, cadata=None: _use(
            "_fetch", "fetch_update", url, path, timeout, cadata)
    if name == "check":
        m = "certpin._check"
    elif name in ("SSLContext", "connect"):
        m = "certpin._cpy" if sys.implementation.name == "cpython" else "certpin._tls"
    elif name == "install" or name == "uninstall":  # (a tuple here cost 128 B of RAM, measured)
        m = "certpin._install"
    else:
        raise AttributeError(name)
    __import__(m)
    v = globals()[name] = getattr(sys.modules[m], name)
    return v
