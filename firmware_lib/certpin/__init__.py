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
# Size over speed: one helper per element rather than the walk written out
# inline. The check takes microseconds against a handshake's milliseconds
# (pinned and plain handshakes take the same time within noise), while every
# byte of resident code comes out of the heap mbedTLS shares (measured on the
# unix port: 1.2 KB less RAM than the inline walk, about the same speed).
# Out-of-range reads are caught as IndexError; the walk allocates nothing.


def _skip(b, i, t):
    # The end of the DER element at b[i], whose tag must be t.
    if b[i] != t:
        raise Error("bad certificate: expected tag 0x%02x at offset %d, found 0x%02x" % (t, i, b[i]))
    c = b[i + 1]
    if c < 0x80:
        return i + 2 + c
    if c == 0x81:
        if b[i + 2] > 0x7F:
            return i + 3 + b[i + 2]
    elif c == 0x82:
        n = b[i + 2] << 8 | b[i + 3]
        if n > 0xFF:
            return i + 4 + n
    raise Error(
        "bad certificate: %s length at offset %d"
        % ("indefinite" if c == 0x80 else "over-long" if c > 0x82 else "non-minimal", i)
    )


def _tbs(b):
    # The offset of the serial number inside TBSCertificate (after the
    # version), for a certificate _skip has framed.
    i = 2 if b[1] < 0x80 else b[1] - 0x7E
    i += 2 if b[i + 1] < 0x80 else b[i + 1] - 0x7E
    if b[i] == 0xA0:  # [0] EXPLICIT version: exactly A0 03 02 01 0v, v1..v3
        if b[i + 1] != 3 or b[i + 2] != 2 or b[i + 3] != 1 or b[i + 4] > 2:
            raise Error("bad certificate: bad version at offset %d" % i)
        i += 5
    return i


def spki_sha256(b, whole=False):
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes).

    The digest inside an OkHttp/HPKP ``sha256/<base64>`` pin. ``b`` is bytes,
    bytearray or memoryview; raises certpin.Error if it is not strict DER.
    Allocates the hash object, one memoryview (two for bytes input) and the
    digest. (whole=True: the digest of the whole certificate; see cert_sha256.)
    """
    try:
        n = len(b)
        e = _skip(b, 0, 0x30)  # Certificate, exactly the whole buffer
        if e != n:
            raise Error("bad certificate: " + ("data after the certificate" if e < n else "truncated"))
        i = 2 if b[1] < 0x80 else b[1] - 0x7E
        t = _skip(b, i, 0x30)  # TBSCertificate
        # serialNumber, signature, issuer, validity, subject, then the SPKI
        i = _skip(b, _skip(b, _skip(b, _skip(b, _skip(b, _tbs(b), 2), 0x30), 0x30), 0x30), 0x30)
        e = _skip(b, i, 0x30)
        if e > t or t > n:
            raise Error("bad certificate: an element overruns TBSCertificate")
        # The SPKI is exactly {AlgorithmIdentifier, BIT STRING}; after it come
        # only issuerUniqueID [1], subjectUniqueID [2], extensions [3], in that
        # order, up to t; after TBSCertificate exactly signatureAlgorithm and
        # signatureValue. A TLS stack refuses anything else, so it is refused
        # here too, not hashed.
        j = _skip(b, _skip(b, i + (2 if b[i + 1] < 0x80 else b[i + 1] - 0x7E), 0x30), 3)
        if j != e:
            raise Error("bad certificate: data after the public key at offset %d" % j)
        if j < t and b[j] == 0x81:
            j = _skip(b, j, 0x81)
        if j < t and b[j] == 0x82:
            j = _skip(b, j, 0x82)
        if j < t:
            j = _skip(b, j, 0xA3)
        if j != t:
            raise Error("bad certificate: data after the extensions at offset %d" % t)
        j = _skip(b, _skip(b, t, 0x30), 3)
        if j != n:
            raise Error("bad certificate: data after the signature at offset %d" % j)
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


def not_before(b):
    # The notBefore date of a certificate spki_sha256() accepted, as
    # Y*10000 + M*100 + D: a small int, so nothing is allocated inside the
    # verify callback; 0 when it is not a plain UTCTime/GeneralizedTime date.
    try:
        i = _skip(b, _skip(b, _skip(b, _tbs(b), 2), 0x30), 0x30) + 2  # into Validity
        t = b[i]
        k = 6 if t == 0x17 and b[i + 1] == 13 else 8 if t == 0x18 and b[i + 1] == 15 else 0
        v = 0
        i += 2
        while k:
            c = b[i] - 48
            if not 0 <= c <= 9:
                return 0
            v = v * 10 + c
            i += 1
            k -= 1
        if t == 0x17:  # YYMMDD: 50-99 are 19YY (RFC 5280 4.1.2.5.1)
            v += 19000000 if v >= 500000 else 20000000
        return v if 0 < v // 100 % 100 < 13 and 0 < v % 100 < 32 else 0
    except (IndexError, Error):
        return 0


# ---- The loaded pinset (validation is in _load.py) ----
#
# RAM layout, ~125 bytes per pin for a 50-host pinset with 2 pins per host:
#   _n  tuple  the host names, sorted (a tuple costs less than a dict's table)
#   _b  bytes  [record offset: 2] per host, then per host a record:
#              [flags][n][text offset: 2], n x [kind][digest: 32]
#   _t  str    every pin's text back to back (certpin._report.text())


class Pinset:
    """A validated pinset: serial (int or None); expires, issued, floor ((Y, M, D) or None).

    floor is the time floor, the latest date authenticated so far
    (docs/updates.md): expiry is judged against it, never the raw clock.
    """

    def __init__(self, n, b, t, serial, expires, issued, m):
        self._n, self._b, self._t, self.serial, self.expires = n, b, t, serial, expires
        self.issued = self.floor = issued
        self._fp = None  # the floor file, for a pinset read by load()
        self._m = m  # the longest name: a parent longer than this cannot match

    def hosts(self):
        return list(self._n)

    def pins(self, host):
        """The pins of the entry covering ``host`` ([] when none does, or it is no host name)."""
        return _use("_report", "pins", self, host)

    def _find(self, host):
        # Offset of the record covering host, or -1. Exact and case-insensitive
        # with one trailing dot ignored; else the nearest parent entry with
        # subdomains (never a sibling such as xapi.example.com). IP literals
        # match exactly. A name the resolver or the TLS stack would read
        # differently (a NUL cuts it short in C) is a PinError, not a lookup.
        if not _usable(host):
            raise PinError(_use("_report", "bad_name", host))
        a = self._n
        b = self._b
        h = host  # as given first: the common case allocates nothing
        i = -2  # -2: h is host as given, -1: lowercased, else: h is the parent after host[i]
        while True:
            lo = 0  # binary search for exactly h (no allocation)
            hi = len(a)
            while lo < hi:
                m = (lo + hi) >> 1
                if a[m] < h:
                    lo = m + 1
                else:
                    hi = m
            if lo < len(a) and a[lo] == h:
                r = b[2 * lo] << 8 | b[2 * lo + 1]
                if i < 0 or b[r] & 1:  # a parent counts only with subdomains
                    return r
            if i == -2:
                host = host.lower()
                if host[-1:] == ".":
                    host = host[:-1]
                h = host
                i = -1
                continue
            if i == -1:
                if _ip(host):
                    return -1
                # Parents no longer than the longest entry, most specific
                # first; each find() starts where the last stopped: linear.
                i = host.find(".", max(0, len(host) - self._m - 1))
            else:
                i = host.find(".", i + 1)
            if i < 0:
                return -1
            h = host[i + 1 :]


def _usable(host):
    # Whether host can be looked up: a str of printable ASCII (pinset names
    # are ASCII; MicroPython and CPython lowercase other characters
    # differently), at most 253 characters plus a trailing dot, labels of at
    # most 63 (certpin._report.bad_name says which rule failed). Checked on
    # the UTF-8 bytes: iterating a str on MicroPython interns every distinct
    # character as a qstr, for good.
    if not isinstance(host, str):
        return False
    b = host.encode()
    n = len(b)
    if n == 0 or n > 254 or n == 254 and b[-1] != 46 or min(b) < 32 or max(b) > 126:
        return False
    i = 0
    while True:
        j = host.find(".", i)
        if (n if j < 0 else j) - i > 63:
            return False
        if j < 0:
            return True
        i = j + 1


def _ip(name):
    # An IP literal: IPv6 (a colon) or only ASCII digits and dots.
    d = name.replace(".", "")
    return ":" in name or d != "" and not d.strip("0123456789")


# Modules loaded for one call and dropped again on a device (see _use).
_ONCE = ("_load", "_report", "_refuse", "_installmsg", "_update", "_fetch", "_p256", "_floor")


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
    """Read and validate the pinset file at ``path``, and its time floor."""
    return _use("_load", "load", path)


def update(bundle, path="/certpin.json"):
    """Install a signed pinset update (docs/updates.md); the Pinset now installed."""
    return _use("_update", "update", bundle, path)


def fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None):
    """GET a signed pinset update (url: the pinset's update.url), then update(): (Pinset, changed)."""
    return _use("_fetch", "fetch_update", url, path, timeout, cadata)


def match(ps, r, der, d):
    # The index of the pin of record r that certificate `der` (SPKI digest d)
    # matches, or -1. Allocates nothing but a certificate digest, and that only
    # when the host has a cert-sha256/ pin.
    b = ps._b
    o = r + 4
    c = None
    j = 0
    while j < b[r + 1]:
        x = d
        if b[o] == 2:
            if c is None:
                c = cert_sha256(der)
            x = c
        if b.find(x, o + 1, o + 33) == o + 1:
            return j
        o += 33
        j += 1
    return -1


def __getattr__(name):
    # Imported on first use, then cached in this module: the pure check()
    # (host tools, tests), the TLS layer, install(). A device that only
    # connects never loads check(); the host tools never load the TLS layer.
    if name == "check":
        m = "_check"
    elif name == "SSLContext" or name == "connect":
        m = "_cpy" if sys.implementation.name == "cpython" else "_tls"
    elif name == "install" or name == "uninstall":
        m = "_install"
    else:
        raise AttributeError(name)
    m = "certpin." + m
    __import__(m)
    v = globals()[name] = getattr(sys.modules[m], name)
    return v
