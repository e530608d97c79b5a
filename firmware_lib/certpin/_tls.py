# Pinned TLS. Conn is the pin policy of one connection (shared with the
# CPython layer in _cpy.py); SSLContext is the MicroPython layer.
#
# On MicroPython (>= 1.23) the pins are checked inside the handshake by
# tls.SSLContext.verify_callback, hashing mbedTLS's buffer in place: a mismatch
# aborts the handshake before any application byte is sent. Older firmware
# (no verify_callback, or no SSLContext at all) is handled by certpin/_old.py,
# which only such firmware ever loads.
from certpin import Error, PinError, PinsetError, Pinset, _use, match, spki_sha256

try:
    import tls
except ImportError:  # MicroPython < 1.23 (and CPython): the C module ssl
    try:
        import ssl as tls
    except ImportError:  # 1.20 and older on a port without the ssl -> ussl weak link
        import ussl as tls

# Rejects from the callback must be negative mbedTLS codes, and not
# X509_CERT_VERIFY_FAILED (-0x2700): CERT_OPTIONAL forgives that one.
_REJECT = -0x3000  # MBEDTLS_ERR_X509_FATAL_ERROR


# ---- time floor (issue 8): the notBefore of the certificate that matched ----
def not_before(b):
    # notBefore of a certificate spki_sha256() has just walked, as
    # Y*10000 + M*100 + D (a small int: nothing is allocated inside the verify
    # callback), or 0 when it is not a plain UTCTime/GeneralizedTime date.
    try:
        k = b[1]
        i = 2 if k < 0x80 else k - 0x7E  # into Certificate
        k = b[i + 1]
        i += 2 if k < 0x80 else k - 0x7E  # into TBSCertificate
        if b[i] == 0xA0:
            i += 5  # version (checked by the walk)
        for _ in range(3):  # serialNumber, signature, issuer
            k = b[i + 1]
            i += k + 2 if k < 0x80 else (b[i + 2] if k == 0x81 else b[i + 2] << 8 | b[i + 3]) + k - 0x7E
        k = b[i + 1]
        i += 2 if k < 0x80 else k - 0x7E  # into Validity
        t = b[i]
        if not (t == 0x17 and b[i + 1] == 13 or t == 0x18 and b[i + 1] == 15):
            return 0
        i += 2
        v = 0
        for j in range(i, i + (6 if t == 0x17 else 8)):
            c = b[j] - 48
            if not 0 <= c <= 9:
                return 0
            v = v * 10 + c
        if t == 0x17:  # YYMMDD: 50-99 are 19YY (RFC 5280 4.1.2.5.1)
            v += 19000000 if v >= 500000 else 20000000
        m = v // 100 % 100
        return v if 0 < m < 13 and 0 < v % 100 < 32 else 0
    except IndexError:
        return 0


class Conn:
    # see() runs inside mbedTLS's verify callback: it never raises (that would
    # unwind through C) and never calls user code. on_failure is only called
    # from __init__, finish() and refused(), outside the handshake.
    def __init__(self, ctx, host):
        ps = ctx.pinset
        if not host:
            raise PinError("server_hostname is required: pins are looked up by it")
        r = ps._find(host)  # a PinError for a name the stack would read differently
        if r < 0:
            raise PinError(_use("_report", "unknown", ps, host))
        self.ps, self.r, self.host, self.on_failure = ps, r, host, ctx.on_failure
        self.verified = bool(ctx.cadata)
        self.report = ps._b[r] & 2
        self.pins = True  # False: expired pinset + CA validation = CA only
        self.leaf = False  # the check ran on depth 0
        self.matched = self.error = None
        self.nb = 0  # notBefore of the matched certificate (not_before())
        self.seen = []  # (depth, digest or error text, subject)
        e = ps.expires
        f = ps.floor  # expiry is judged against the time floor, never the raw clock (docs/updates.md)
        if e and f and f > e:
            self.pins = not self.verified
            self._notify(
                "pinset_expired",
                False,
                "%s: the pinset expired on %04d-%02d-%02d: %s; provision a fresh pinset"
                % (host, e[0], e[1], e[2], "pins still enforced (no cadata)" if self.pins else "CA validation only"),
            )

    def see(self, cert, depth):
        # One certificate of the chain the stack built, top first, leaf last.
        # True lets the handshake go on.
        try:
            if depth == 0:
                self.leaf = True
            if not self.pins:
                return True
            if self.matched is None:
                try:
                    d = spki_sha256(cert)
                    if depth == 0 or self.verified:
                        self.matched = match(self.ps, self.r, cert, d)
                        if self.matched is not None:
                            self.nb = not_before(cert)  # used only once the handshake has passed: finish()
                except Error as e:
                    d = e.args[0]
                self.seen.append((depth, d, ""))
            return depth > 0 or self.matched is not None or self.report
        except Exception as e:  # MemoryError or a bug: refuse, never unwind through C
            self.error = e
            return False

    def _notify(self, reason, enforced, message):
        if self.on_failure:
            self.on_failure({"host": self.host, "reason": reason, "enforced": enforced, "message": message})

    def _fail(self, reason, message):
        self._notify(reason, not self.report, message)
        if not self.report:
            raise PinError(message)

    def finish(self):
        # After the handshake, before the socket reaches the caller.
        if self.error is not None:
            self._fail("internal_error", "%s: the pin check failed: %r" % (self.host, self.error))
        elif not self.pins or self.matched is not None:
            # Passed. Only now, with the handshake complete (the server proved
            # it holds the pinned key), may the matched certificate's notBefore
            # move the time floor; never from inside the callback.
            n = self.nb
            f = self.ps.floor
            if n and (f is None or n > f[0] * 10000 + f[1] * 100 + f[2]):
                _use("_floor", "advance", self.ps, (n // 10000, n // 100 % 100, n % 100))
            return
        elif not self.leaf:
            self._fail("not_checked", "%s: the handshake completed but the pin check never ran on the leaf" % self.host)
        else:
            why = "no configured pin matched"
            for depth, d, _ in self.seen:
                if depth == 0 and not isinstance(d, bytes):
                    why = "the leaf certificate cannot be checked"
            self._fail("pin_mismatch", _use("_report", "describe", self.ps, self.host, self.seen, self.verified, why))

    def refused(self, exc):
        # The stack refused the handshake. Ours: say why as a PinError. A CA
        # validation failure is a PinError too. Network errors pass through.
        if self.error is not None or (self.leaf and self.matched is None and self.pins and not self.report):
            self.finish()
        if isinstance(exc, ValueError) or "X509" in str(exc):
            self.report = False
            self._fail("tls_refused", "%s: TLS certificate validation failed: %s" % (self.host, exc))


def context_args(pinset, cadata, on_failure):
    if not isinstance(pinset, Pinset):
        raise PinsetError("expected a Pinset from certpin.load() or certpin.loads()")
    if cadata is not None:
        cadata = list(cadata) if isinstance(cadata, (list, tuple)) else [cadata]
        for i, c in enumerate(cadata):
            if not isinstance(c, (bytes, bytearray)):
                raise Error("cadata: expected DER certificate bytes or a list of them")
            cadata[i] = bytes(c)  # MicroPython's TLS takes no bytearray (TypeError); bytes(bytes) is no copy
    if on_failure is not None and not callable(on_failure):
        raise Error("on_failure must be callable")
    return pinset, cadata or None, on_failure


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
        try:
            return self._wrap(sock, server_hostname, do_handshake_on_connect)
        except BaseException as e:
            try:
                sock.close()  # refused: the TCP connection too, so nothing else is sent on it
            except Exception:  # a stream without close(): the refusal still stands
                pass
            raise e

    def _wrap(self, sock, server_hostname, do_handshake_on_connect):
        # One mbedTLS context per connection: callback state is per connection
        # and deferred handshakes may interleave. (st is bound below, before
        # the handshake can call the callback.)
        c = None
        try:
            c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            c.verify_callback = lambda cert, depth: 0 if st.see(cert, depth) else _REJECT
        except AttributeError:  # MicroPython < 1.23: no SSLContext (c None) or no verify_callback
            from certpin._old import wrap_socket

            return wrap_socket(self, c, sock, server_hostname)
        st = Conn(self, server_hostname)
        for der in self.cadata or ():
            try:
                c.load_verify_locations(der)  # one positional argument, no keywords (1.22 differs: _old.py)
            except ValueError:
                raise Error("cadata: a certificate this firmware cannot load (DER expected)")
        if self._cert:
            c.load_cert_chain(*self._cert)
        # CERT_NONE would skip the callback; CERT_OPTIONAL runs it and ignores
        # chain errors, which is why Conn then lets only the leaf match.
        c.verify_mode = tls.CERT_REQUIRED if self.cadata else tls.CERT_OPTIONAL
        try:
            s = c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake_on_connect)
        except (OSError, ValueError) as e:
            st.refused(e)
            raise
        if not do_handshake_on_connect:
            from certpin._deferred import Deferred  # only asyncio-style users pay for it

            return Deferred(s, st)
        try:
            st.finish()
        except BaseException:
            s.close()
            raise
        return s


def open_socket(ctx_class, host, port, pinset, cadata, timeout):
    import socket

    from certpin import load

    ctx = ctx_class(load() if pinset is None else pinset, cadata)
    Conn(ctx, host)  # refuse an unpinned host before any network traffic
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
    try:
        if timeout is not None:
            s.settimeout(timeout)
        s.connect(ai[-1])
        return ctx.wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise


def connect(host, port=443, pinset=None, cadata=None, timeout=None):
    """A connected TLS socket to host:port whose certificate matched the pinset."""
    return open_socket(SSLContext, host, port, pinset, cadata, timeout)
