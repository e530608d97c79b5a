# certpin: X.509 public-key and certificate pinning for MicroPython and CPython.
#
#   spki_sha256(der), cert_sha256(der)   the digests inside pins
#   load(path="/certpin.json"), loads(text) -> Pinset
#                                        read and validate a pinset
#   check(pinset, host, chain, verified=False) -> the pin that matched
#                                        pure check of a DER chain (leaf first)
#   SSLContext(pinset, cadata=None, on_failure=None)
#   connect(host, port=443, pinset=None, cadata=None, timeout=None)
#                                        pinned TLS
#   install(pinset=None, cadata=None, others="refuse"), uninstall()
#                                        every TLS client connection of the
#                                        application pinned (MicroPython)
#   update(bundle, path="/certpin.json") -> Pinset
#   fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None)
#                                        -> (Pinset, changed): signed pinset
#                                        updates (docs/updates.md)
#   reports(clear=False, path=...), send_reports(url=None, timeout=10, path=...)
#                                        the failure journal (docs/reports.md)
#
# Every refusal is a certpin.Error: PinError (the peer did not match, or its
# pins could not be checked), PinsetError (the pinset is unusable) or
# UpdateError (a signed update was refused; e.reason names the rule).
#
# RAM is what a device has least of, and it shares its heap with mbedTLS: this
# module holds only what every connection needs (the DER walk, the loaded
# Pinset, matching, the pinned SSLContext); the rest is resolved on use by
# __getattr__ below, and the modules that run rarely (_load: validation,
# _report/_refuse/_journal: failures, _connect: connect(), _fetch (the driver),
# _update, _http, _floor, _p256, _catchup: updates, _patch: install()'s work,
# _send: send_reports()) are dropped again after each call on a device.
# Measured: `make bench`.
__version__ = "0.1.0"

import hashlib
import sys

try:
    import tls
except ImportError:  # MicroPython < 1.23 (and CPython): the C module ssl
    try:
        import ssl as tls
    except ImportError:  # 1.20 and older on a port without the ssl -> ussl weak link
        import ussl as tls


class Error(Exception):
    pass


class PinError(Error):
    pass


class PinsetError(Error):
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


def _bad(m, *a):
    # Refuse a certificate, the message formatted here: this runs inside the
    # verify callback, where loading a module of texts would allocate
    # kilobytes (a refusal allocates its message and nothing else).
    raise Error("bad certificate: " + (m % a if a else m))


def _skip(b, i, t):
    # The end of the DER element at b[i], whose tag must be t.
    if b[i] != t:
        _bad("expected tag 0x%02x at offset %d, found 0x%02x", t, i, b[i])
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
    _bad("%s length at offset %d", "indefinite" if c == 0x80 else "over-long" if c > 0x82 else "non-minimal", i)


def _tbs(b):
    # The offset of the serial number inside TBSCertificate (after the
    # version), for a certificate _skip has framed.
    i = 2 if b[1] < 0x80 else b[1] - 0x7E
    i += 2 if b[i + 1] < 0x80 else b[i + 1] - 0x7E
    if b[i] == 0xA0:  # [0] EXPLICIT version: exactly A0 03 02 01 0v, v1..v3
        if b[i + 1] != 3 or b[i + 2] != 2 or b[i + 3] != 1 or b[i + 4] > 2:
            _bad("bad version at offset %d", i)
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
            _bad("data after the certificate" if e < n else "truncated")
        i = 2 if b[1] < 0x80 else b[1] - 0x7E
        t = _skip(b, i, 0x30)  # TBSCertificate
        # serialNumber, signature, issuer, validity, subject, then the SPKI
        i = _skip(b, _skip(b, _skip(b, _skip(b, _skip(b, _tbs(b), 2), 0x30), 0x30), 0x30), 0x30)
        e = _skip(b, i, 0x30)
        if e > t or t > n:
            _bad("an element overruns TBSCertificate")
        # The SPKI is exactly {AlgorithmIdentifier, BIT STRING}; after it come
        # only issuerUniqueID [1], subjectUniqueID [2], extensions [3], in that
        # order, up to t; after TBSCertificate exactly signatureAlgorithm and
        # signatureValue. A TLS stack refuses anything else, so it is refused
        # here too, not hashed.
        j = _skip(b, _skip(b, i + (2 if b[i + 1] < 0x80 else b[i + 1] - 0x7E), 0x30), 3)
        if j != e:
            _bad("data after the public key at offset %d", j)
        if j < t and b[j] == 0x81:
            j = _skip(b, j, 0x81)
        if j < t and b[j] == 0x82:
            j = _skip(b, j, 0x82)
        if j < t:
            j = _skip(b, j, 0xA3)
        if j != t:
            _bad("data after the extensions at offset %d", t)
        j = _skip(b, _skip(b, t, 0x30), 3)
        if j != n:
            _bad("data after the signature at offset %d", j)
        if whole:
            return hashlib.sha256(b).digest()
        return hashlib.sha256((b if isinstance(b, memoryview) else memoryview(b))[i:e]).digest()
    except IndexError:
        _bad("truncated")
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
            raise PinError(_use("_report", "text", 1, host))  # not a usable host name: why
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
    try:
        b = host.encode()
    except Exception:  # CPython: a lone surrogate cannot be encoded (MicroPython's str holds none)
        return False
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


def _use(name, f, *args, **kw):
    # certpin.<name>.<f>(*args, **kw), the module imported for this one call.
    # On a device it is dropped again afterwards, with every other such module
    # it imported (_drop()): validation runs once at boot, failure text only when
    # something is refused, updates rarely, so none of them stays resident in
    # a heap that the TLS stack shares.
    m = "certpin." + name
    try:
        __import__(m)
    except (ImportError, OSError) as e:
        # A module that cannot be read (a flash that failed a write, a library
        # copied in part): a certpin error, never a stray exception type; a
        # refusal (_refuse, _report) stays a PinError.
        raise (PinError if name[:3] == "_re" else Error)("certpin/%s cannot be loaded: %r" % (name, e))
    try:
        return getattr(sys.modules[m], f)(*args, **kw)
    finally:
        if sys.implementation.name == "micropython":
            _drop()


def _drop():
    # Every certpin submodule but those that stay once used: check() and
    # install() are cached, Deferred and _old's wrap_socket are held by the
    # connections they make. (A function of its own: written inside _use's
    # finally clause, this loop saw its variable come out an int on
    # MicroPython 1.20-1.23 builds, measured; as a function it does not.)
    g = globals()  # an import also binds the submodule here
    for m in list(sys.modules):
        n = m[8:]
        if m[:8] == "certpin." and n[:1] == "_" and n not in ("_check", "_install", "_deferred", "_old"):
            del sys.modules[m]
            if n in g:
                del g[n]


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


# ---- Pinned TLS (MicroPython) ----
# Conn is the pin check of one connection (shared with the CPython layer in
# _cpy.py); SSLContext is the MicroPython layer (on CPython it comes from
# _cpy.py, see the end of this module; connect() is in _connect.py, loaded
# per call). They live in this module rather than one of their own because a
# module costs RAM of its own (measured: 0.6 KB) and every device that pins
# connects.
#
# On MicroPython (>= 1.23) the pins are checked inside the handshake by
# tls.SSLContext.verify_callback, hashing mbedTLS's buffer in place: a mismatch
# aborts the handshake before any application byte is sent. Older firmware
# (no verify_callback, or no SSLContext at all) is handled by certpin/_old.py,
# which only such firmware ever loads. Everything that runs when a check fails
# or a pinset has expired (the messages, on_failure, the refusal) is in
# _refuse.py and _report.py, loaded for that and dropped again.

# Rejects from the callback must be negative mbedTLS codes, and not
# X509_CERT_VERIFY_FAILED (-0x2700): CERT_OPTIONAL forgives that one.
# -0x3000: MBEDTLS_ERR_X509_FATAL_ERROR (a literal below: a global name costs RAM).


def _lookup(ps, host):
    # The record of host in ps, else a PinError: no name, a name the stack
    # would read differently (Pinset._find), or a host the pinset does not have.
    if not host:
        raise PinError(_use("_report", "text", 2))  # no server_hostname
    r = ps._find(host)
    if r < 0:
        raise PinError(_use("_report", "text", 0, ps, host))  # not in the pinset
    return r


class Conn:
    # see() runs inside mbedTLS's verify callback: it never raises (that would
    # unwind through C), never calls user code and allocates only the digest
    # of a certificate it has to check. on_failure is called from _report,
    # outside the handshake.
    def __init__(self, ctx, host):
        ps = ctx.pinset
        r = _lookup(ps, host)
        self.ctx, self.ps, self.r, self.host = ctx, ps, r, host
        self.verified = bool(ctx.cadata)  # CA validation: a pin may match any depth
        self.report = ps._b[r] & 2  # report_only
        self.pins = True  # False: an expired pinset with cadata, CA validation only
        self.leaf = False  # the check ran on depth 0
        self.matched = -1  # the index of the pin that matched
        self.nb = 0  # the notBefore of the certificate that matched
        self.seen = None  # [(depth, digest or error text)] while nothing matched
        self.error = None  # what see() raised
        e, f = ps.expires, ps.floor  # expiry is judged against the time floor, never the raw clock
        if e and f and f > e:
            _use("_refuse", "expired", self)

    def see(self, cert, depth):
        # One certificate of the chain the stack built, top first, leaf last:
        # 0 lets the handshake go on, -0x3000 aborts it. Without cadata only
        # the leaf can match, so only the leaf is hashed.
        try:
            if depth == 0:
                self.leaf = True
            if self.pins and self.matched < 0 and (depth == 0 or self.verified):
                try:
                    d = spki_sha256(cert)
                    self.matched = match(self.ps, self.r, cert, d)
                    if self.matched >= 0:
                        self.nb = not_before(cert)  # used only once the handshake has passed: finish()
                except Error as e:
                    d = e.args[0]
                if self.matched < 0:
                    if self.seen is None:
                        self.seen = []
                    self.seen.append((depth, d))
            return 0 if depth or self.matched >= 0 or self.report or not self.pins else -0x3000
        except Exception as e:  # MemoryError or a bug: refuse, never unwind through C
            self.error = e
            return -0x3000

    def finish(self):
        # After the handshake, before the socket reaches the caller.
        if self.error is None and (self.matched >= 0 or not self.pins):
            # Passed. Only now, with the handshake complete (the server proved
            # it holds the pinned key), may the matched certificate's notBefore
            # move the time floor; never from inside the callback.
            n = self.nb
            ps = self.ps
            f = ps.floor
            if n and (f is None or n > f[0] * 10000 + f[1] * 100 + f[2]):
                f = (n // 10000, n // 100 % 100, n % 100)
                if ps._fp:  # a pinset from a file: the floor file too (written only when it moves)
                    _use("_floor", "advance", ps, f)
                else:
                    ps.floor = f
            return
        _use("_refuse", "finish", self)  # a PinError (or only a report, for report_only)

    def refused(self, exc):
        # The stack refused the handshake: a PinError that says why, or the
        # network error itself (raised by the caller).
        _use("_refuse", "refused", self, exc)


def context_args(pinset, cadata, on_failure):
    if not isinstance(pinset, Pinset):
        raise PinsetError(_use("_report", "text", 3))  # not a Pinset
    if on_failure is not None and not callable(on_failure):
        raise Error(_use("_report", "text", 4))  # on_failure not callable
    if cadata is None:
        return pinset, None, on_failure
    cadata = list(cadata) if isinstance(cadata, (list, tuple)) else [cadata]
    for i, c in enumerate(cadata):
        if not isinstance(c, (bytes, bytearray)):
            raise Error(_use("_report", "text", 5))  # cadata not DER bytes
        cadata[i] = bytes(c)  # MicroPython's TLS takes no bytearray (TypeError); bytes(bytes) is no copy
    return pinset, cadata or None, on_failure


def _context(cadata, cb=None):
    # A client tls.SSLContext (MicroPython >= 1.23): cadata's CA certificates
    # loaded and CERT_REQUIRED; else CERT_OPTIONAL when a callback checks the
    # pins (CERT_NONE would skip the callback; CERT_OPTIONAL runs it and
    # ignores chain errors, which is why Conn then lets only the leaf match);
    # else CERT_NONE. AttributeError on firmware without SSLContext or
    # verify_callback, before any certificate is loaded (certpin/_old.py).
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if cb:
        c.verify_callback = cb
    for der in cadata or ():
        try:
            c.load_verify_locations(der)  # one positional argument, no keywords (1.22 differs: _old.py)
        except ValueError:
            raise Error(_use("_report", "text", 6))  # cadata the firmware cannot load
    c.verify_mode = tls.CERT_REQUIRED if cadata else tls.CERT_OPTIONAL if cb else tls.CERT_NONE
    return c


class SSLContext:
    """An SSLContext whose connections must match ``pinset``.

    Use it wherever code takes an SSLContext (umqtt.simple's ssl=,
    asyncio.open_connection(..., ssl=ctx)). ``cadata``: a DER CA certificate or
    a list; with it mbedTLS validates the chain and the hostname, and a pin may
    match any certificate of the validated chain; without it only the leaf may.
    ``on_failure(record)``: called for each failure with a dict (host, reason,
    enforced, message).
    """

    _cert = None  # (cert, key) to present (mutual TLS): set by certpin.install()

    def __init__(self, pinset, cadata=None, on_failure=None):
        self.pinset, self.cadata, self.on_failure = context_args(pinset, cadata, on_failure)

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        s = None
        try:
            st = Conn(self, server_hostname)  # an unpinned or unusable name is refused before any TLS
            # One mbedTLS context per connection: callback state is per
            # connection and deferred handshakes may interleave.
            try:
                c = _context(self.cadata, st.see)
            except AttributeError:  # MicroPython < 1.23: no SSLContext or no verify_callback
                from certpin._old import wrap_socket

                return wrap_socket(st, sock, server_hostname)
            if self._cert:
                c.load_cert_chain(*self._cert)
            try:
                s = c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake_on_connect)
            except (OSError, ValueError) as e:
                st.refused(e)
                raise
            if not do_handshake_on_connect:
                from certpin._deferred import Deferred  # only asyncio-style users pay for it

                return Deferred(s, st)
            st.finish()
            return s
        except BaseException as e:  # refused: closed for good, the TCP connection too
            try:
                (s or sock).close()
            except Exception:  # a stream without close(): the refusal still stands
                pass
            # _old or _deferred that cannot be read: refused, a PinError saying why
            raise PinError("certpin cannot be loaded: %r" % e) if isinstance(e, ImportError) else e


def __getattr__(name):
    # The rest of the API, resolved on use so that what a device does not use
    # costs it no RAM:
    #   load, loads, update, fetch_update, connect, reports, send_reports:
    #     their module is loaded for the call and dropped again (nothing
    #     cached: a fresh function on each access);
    #   check, install, uninstall, and on CPython SSLContext: imported once,
    #     then cached here;
    #   UpdateError: made once, on first use, and kept.
    if name == "load" or name == "loads":
        m = "_load"
    elif name == "update" or name == "fetch_update":
        m = "_fetch"  # their driver: it loads the rules, the transport and the install in turn
    elif name == "connect":
        m = "_" + name  # "_connect", made here: a literal would be interned when certpin is imported
    elif name in ("reports", "send_reports"):
        m = "_journal"
    else:
        if name == "check":
            v = "_check"
        elif name == "SSLContext":  # CPython's (MicroPython's is above)
            v = "_cpy"
        elif name == "install" or name == "uninstall":
            v = "_install"
        elif name == "UpdateError":
            v = None
        else:
            raise AttributeError(name)
        if v:
            v = "certpin." + v
            __import__(v)
            v = getattr(sys.modules[v], name)
        else:  # a signed update was refused: e.reason names the rule (docs/updates.md)
            v = type(name, (Error,), {})
        globals()[name] = v
        return v
    return lambda *a, **kw: _use(m, name, *a, **kw)


if sys.implementation.name != "micropython":  # CPython's TLS layer is _cpy.py (via __getattr__)
    del SSLContext
