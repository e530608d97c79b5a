# Pinned TLS on CPython (host-side use and tests). CPython has no in-handshake
# callback, so the check runs right after the handshake and before the socket
# is returned or any byte is read or written through it; a deferred handshake
# (do_handshake_on_connect=False) is checked the moment it completes, before
# the first application byte goes either way. Also fetch_update's TLS on
# CPython (tls_bio, for certpin/_http.py).
import ssl

from certpin import Error, PinError, _use
from certpin import Conn, context_args


class SSLContext:
    """An SSLContext whose connections must match ``pinset`` (see certpin/__init__.py)."""

    def __init__(self, pinset, cadata=None, on_failure=None):
        self.pinset, self.cadata, self.on_failure = context_args(pinset, cadata, on_failure)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.cadata:
            for der in self.cadata:
                try:
                    c.load_verify_locations(cadata=bytes(der))
                except (ssl.SSLError, ValueError) as e:
                    raise Error("cadata: not a DER certificate (%s)" % e)
            c.check_hostname = True
            c.verify_mode = ssl.CERT_REQUIRED
            # Every cadata certificate is a trust anchor, as mbedTLS makes it
            # (OpenSSL otherwise wants a self-signed root: an intermediate as
            # cadata would pass on a device and be refused here).
            c.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        else:
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE  # the pin check below is the authentication
        c.sslsocket_class = _PinnedSocket
        c.sslobject_class = _PinnedObject
        self._ctx = c

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        try:
            st = Conn(self, server_hostname)
        except BaseException as e:
            try:
                sock.close()  # refused: the TCP connection too, so nothing else is sent on it
            except Exception:  # a stream without close(): the refusal still stands
                pass
            raise e
        s = self._ctx.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        s._certpin = st
        if do_handshake_on_connect:
            try:
                s.do_handshake()
            except BaseException:
                s.close()
                raise
        return s

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
        # For asyncio: the same check when the memory-BIO handshake completes.
        st = Conn(self, server_hostname)  # an unpinned or unusable name is refused first
        o = self._ctx.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        o._certpin = st
        return o


def _der_chain(s, verified):
    if verified:
        try:
            chain = s.get_verified_chain()  # 3.13+
        except AttributeError:
            chain = s._sslobj.get_verified_chain()
        if not chain:  # e.g. a resumed session: nothing was validated in this handshake
            return None
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]
    leaf = s.getpeercert(True)
    return [leaf] if leaf else []


# The state of a connection's pin check, in obj._certpin: a Conn while the
# handshake has not been checked, _CHECKED once the check passed, or the
# exception that refused it. Nothing but _CHECKED lets a byte through, and a
# refused connection stays refused: every later read or write raises again.
_CHECKED = True


def _handshake(obj, do_handshake, *args):
    st = obj._certpin
    if st is _CHECKED:
        return do_handshake(*args)  # checked already (a second call is harmless)
    if not isinstance(st, Conn):
        _refuse_again(st)
    try:
        do_handshake(*args)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise  # non-blocking: the handshake is still in progress, not refused
    except BaseException as e:
        _refused(obj, e)
        try:
            if isinstance(e, ssl.SSLCertVerificationError):
                st.refused(ValueError(e.verify_message or str(e)))
        except BaseException as f:
            _refused(obj, f)
            raise
        raise
    try:
        chain = _der_chain(obj, st.verified)
        if chain is None:
            _use("_refuse", "fail", st, "not_checked", "%s: the TLS stack gave no verified chain (a resumed "
                 "session?): the pins cannot be checked" % st.host)
        else:
            # Same order as mbedTLS's callback: top of the chain first, leaf last.
            for depth in range(len(chain) - 1, -1, -1):
                st.see(chain[depth], depth)
            st.finish()
    except BaseException as e:  # a mismatch, an on_failure that raised, a bug: refused for good
        _refused(obj, e)
        raise
    obj._certpin = _CHECKED


def _refused(obj, e):
    obj._certpin = e if isinstance(e, Error) else PinError("the pin check did not complete: %r" % (e,))
    try:
        obj.close()  # an SSLSocket; asyncio closes its transport on the SSLObject's error
    except (AttributeError, OSError):
        pass


def _refuse_again(e):
    raise PinError("this connection was refused and closed: %s" % (e.args[0] if e.args else e)) from None


class _AsyncPinError(PinError, ssl.SSLError):
    # asyncio's SSL protocol handles only SSLError cleanly; this is both.
    pass


class _Checked:
    # Mixed into SSLSocket and SSLObject: no byte is read or written before the
    # handshake has completed and been checked, nor after a refusal.
    _certpin = PinError("not made by certpin.SSLContext")  # fail closed by default

    def _checked(self):
        if self._certpin is not _CHECKED:
            self.do_handshake()

    def read(self, *a, **k):
        self._checked()
        return super().read(*a, **k)

    def write(self, *a, **k):
        self._checked()
        return super().write(*a, **k)


class _PinnedObject(_Checked, ssl.SSLObject):
    def do_handshake(self):
        try:
            _handshake(self, super().do_handshake)
        except PinError as e:
            raise _AsyncPinError(*e.args) from None


class _PinnedSocket(_Checked, ssl.SSLSocket):
    def do_handshake(self, block=False):
        _handshake(self, super().do_handshake, block)

    def recv(self, *a, **k):
        self._checked()
        return super().recv(*a, **k)

    def recv_into(self, *a, **k):
        self._checked()
        return super().recv_into(*a, **k)

    def send(self, *a, **k):
        self._checked()
        return super().send(*a, **k)

    def sendall(self, *a, **k):
        self._checked()
        return super().sendall(*a, **k)


class _BIO:
    # fetch_update's TLS on CPython: over memory BIOs, so the handshake too
    # runs through certpin/_http.py's _Deadline (an SSLSocket's handshake
    # would wait on each read anew).
    def __init__(self, d, ctx, host):
        self.d = d
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.o = ctx.wrap_bio(self.inc, self.outg, server_hostname=host)
        self._pump(self._handshake)

    def _handshake(self):
        self.o.do_handshake()
        return True  # done (do_handshake itself returns None)

    def _pump(self, f, *a):
        buf = bytearray(4096)
        while True:
            try:
                r = f(*a)
            except ssl.SSLWantReadError:
                r = None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # The end (with or without close_notify: a cut-short bundle
                # fails Content-Length or its signature, never passes).
                r = b""
            data = self.outg.read()
            while data:
                data = data[self.d.write(data) :]
            if r is not None:
                return r
            n = self.d.readinto(buf)
            if n:
                self.inc.write(bytes(buf[:n]))
            else:
                self.inc.write_eof()

    def readinto(self, b):
        data = self._pump(self.o.read, len(b))
        b[: len(data)] = data
        return len(data)

    def write(self, b):
        return self._pump(self.o.write, b)


def tls_bio(d, host, ps, cadata, port):
    # certpin/_http.py's TLS on CPython (the host tool and the tests): over
    # the deadline-bounded stream d; ps: the host's pins, or None.
    if ps is not None:
        ctx = SSLContext(ps, cadata)
        ctx.port = port  # for the failure journal, should this connection be refused
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cadata:
            for der in cadata:
                ctx.load_verify_locations(cadata=bytes(der))
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the signature is the protection
    return _BIO(d, ctx, host)


__all__ = ["SSLContext", "PinError"]
