# Pinned TLS. Conn is the pin check of one connection (shared with the
# CPython layer in _cpy.py); SSLContext is the MicroPython layer.
#
# On MicroPython (>= 1.23) the pins are checked inside the handshake by
# tls.SSLContext.verify_callback, hashing mbedTLS's buffer in place: a mismatch
# aborts the handshake before any application byte is sent. Older firmware
# (no verify_callback, or no SSLContext at all) is handled by certpin/_old.py,
# which only such firmware ever loads.
#
# Only the path every connection takes is here: it stays resident once an
# application connects. Everything that runs when a check fails or a pinset
# has expired (the messages, on_failure, the refusal) is in _refuse.py,
# loaded for that and dropped again (measured: `make bench`).
from certpin import Error, PinError, PinsetError, Pinset, _use, match, not_before, spki_sha256

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


class Conn:
    # see() runs inside mbedTLS's verify callback: it never raises (that would
    # unwind through C), never calls user code and allocates only the digest
    # of a certificate it has to check. on_failure is called from _report,
    # outside the handshake.
    def __init__(self, ctx, host):
        ps = ctx.pinset
        if not host:
            raise PinError("server_hostname is required: pins are looked up by it")
        r = ps._find(host)  # a PinError for a name the stack would read differently
        if r < 0:
            raise PinError(_use("_report", "unknown", ps, host))
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
        # 0 lets the handshake go on, _REJECT aborts it. Without cadata only
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
            return 0 if depth or self.matched >= 0 or self.report or not self.pins else _REJECT
        except Exception as e:  # MemoryError or a bug: refuse, never unwind through C
            self.error = e
            return _REJECT

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
        raise PinsetError("expected a Pinset from certpin.load() or certpin.loads()")
    if on_failure is not None and not callable(on_failure):
        raise Error("on_failure must be callable")
    if cadata is None:
        return pinset, None, on_failure
    cadata = list(cadata) if isinstance(cadata, (list, tuple)) else [cadata]
    for i, c in enumerate(cadata):
        if not isinstance(c, (bytes, bytearray)):
            raise Error("cadata: expected DER certificate bytes or a list of them")
        cadata[i] = bytes(c)  # MicroPython's TLS takes no bytearray (TypeError); bytes(bytes) is no copy
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
        st = Conn(self, server_hostname)  # an unpinned or unusable name is refused before any TLS
        # One mbedTLS context per connection: callback state is per connection
        # and deferred handshakes may interleave.
        c = None
        try:
            c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            c.verify_callback = st.see
        except AttributeError:  # MicroPython < 1.23: no SSLContext (c None) or no verify_callback
            from certpin._old import wrap_socket

            return wrap_socket(st, c, sock, server_hostname)
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
