# Pinned TLS on CPython (host-side use and tests). CPython has no in-handshake
# callback, so the check runs right after the handshake and before the socket
# is returned or any byte is read or written through it; a deferred handshake
# (do_handshake_on_connect=False) is checked the moment it completes, before
# the first application byte goes either way.
import ssl

from certpin import Error, PinError
from certpin._tls import Conn, context_args, open_socket


class SSLContext:
    """An SSLContext whose connections must match ``pinset`` (see certpin/_tls.py)."""

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
        else:
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE  # the pin check below is the authentication
        c.sslsocket_class = _PinnedSocket
        c.sslobject_class = _PinnedObject
        self._ctx = c

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        st = Conn(self, server_hostname)
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
        o = self._ctx.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        o._certpin = Conn(self, server_hostname)
        return o


def _der_chain(s, verified):
    if verified:
        try:
            chain = s.get_verified_chain()  # 3.13+
        except AttributeError:
            chain = s._sslobj.get_verified_chain()
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]
    leaf = s.getpeercert(True)
    return [leaf] if leaf else []


def _handshake(obj, do_handshake, *args):
    st = obj._certpin
    try:
        do_handshake(*args)
    except ssl.SSLCertVerificationError as e:
        if st is not None:
            obj._certpin = None
            st.refused(ValueError(e.verify_message or str(e)))
        raise
    if st is not None:
        obj._certpin = None
        chain = _der_chain(obj, st.verified)
        # Same order as mbedTLS's callback: top of the chain first, leaf last.
        for depth in range(len(chain) - 1, -1, -1):
            st.see(chain[depth], depth)
        st.finish()


class _AsyncPinError(PinError, ssl.SSLError):
    # asyncio's SSL protocol handles only SSLError cleanly; this is both.
    pass


class _Checked:
    # Mixed into SSLSocket and SSLObject: no byte is read or written before the
    # handshake has completed and been checked.
    _certpin = None

    def _checked(self):
        if self._certpin is not None:
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


def connect(host, port=443, pinset=None, cadata=None, timeout=None):
    """A connected TLS socket to host:port whose certificate matched the pinset."""
    return open_socket(SSLContext, host, port, pinset, cadata, timeout)


__all__ = ["SSLContext", "connect", "PinError"]
