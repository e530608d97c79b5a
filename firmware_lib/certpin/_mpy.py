# Pinned TLS on MicroPython: the pins are checked inside the handshake by
# tls.SSLContext.verify_callback (MicroPython >= 1.23), hashing mbedTLS's
# buffer in place; a mismatch aborts the handshake before any application byte
# is sent. Older firmware with getpeercert(True) is checked right after the
# handshake; firmware with neither is refused.
import io

from certpin import Error
from certpin._conn import Conn, connect as _connect, context_args

try:
    import tls
except ImportError:  # v1.22: the C module is called ssl
    import ssl as tls

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# Rejects from the callback must be negative mbedTLS codes. Not
# X509_CERT_VERIFY_FAILED (-0x2700): CERT_OPTIONAL forgives that one.
_REJECT = const(-0x3000)  # MBEDTLS_ERR_X509_FATAL_ERROR
_POLL = const(3)  # MP_STREAM_POLL
_CLOSE = const(4)  # MP_STREAM_CLOSE


class SSLContext:
    """An SSLContext whose connections must match ``pinset``.

    Use it wherever code takes an SSLContext (umqtt.simple's ssl=,
    asyncio.open_connection(..., ssl=ctx)). ``cadata``: one DER CA certificate
    or a list; with it the chain and hostname are validated by mbedTLS and a pin
    may match any certificate of the validated chain; without it only the leaf
    may match. ``on_failure(record)`` is called for each failure (a dict with
    host, reason, enforced, message).
    """

    def __init__(self, pinset, cadata=None, on_failure=None):
        self.pinset, self.cadata, self.on_failure = context_args(pinset, cadata, on_failure)
        if not hasattr(tls, "SSLContext"):
            raise Error("this firmware has no SSLContext (MicroPython < 1.22): pins cannot be checked; upgrade")

    def _context(self, st):
        # One mbedTLS context per connection: the callback's state is per
        # connection, and deferred handshakes may interleave.
        c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        if self.cadata:
            for der in self.cadata:
                try:
                    c.load_verify_locations(der)
                except ValueError:
                    raise Error("cadata: a certificate this firmware cannot load (DER expected)")
            c.verify_mode = tls.CERT_REQUIRED
        else:
            # CERT_NONE would skip the callback; CERT_OPTIONAL runs it and
            # ignores chain errors, so only a leaf match counts (see Conn).
            c.verify_mode = tls.CERT_OPTIONAL
        try:
            c.verify_callback = lambda cert, depth: 0 if st.see(cert, depth) else _REJECT
            return c, True
        except AttributeError:  # no verify_callback before v1.23
            if not self.cadata:
                c.verify_mode = tls.CERT_NONE
            return c, False

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        st = Conn(self, server_hostname)
        c, in_handshake = self._context(st)
        if not in_handshake:
            do_handshake_on_connect = True  # the check needs the finished handshake
        try:
            s = c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake_on_connect)
        except (OSError, ValueError) as e:
            st.refused(e)
            raise
        if not do_handshake_on_connect:
            return _Deferred(s, st)
        try:
            if not in_handshake:
                if not hasattr(s, "getpeercert"):
                    raise Error(
                        "this firmware has neither verify_callback (MicroPython >= 1.23) nor "
                        "getpeercert: pins cannot be checked; upgrade the firmware"
                    )
                st.see(s.getpeercert(True), 0)
            st.finish()
        except BaseException:
            s.close()
            raise
        return s


class _Deferred(io.IOBase):
    # A socket whose handshake happens on first use (asyncio). The callback
    # still aborts a mismatching handshake; this wrapper turns that abort into
    # the PinError that explains it, runs the post-handshake checks before any
    # byte is returned to the caller, and calls on_failure outside the handshake.
    def __init__(self, s, st):
        self._s = s
        self._st = st
        self._p = None

    def _done(self, r):
        st = self._st
        if st is not None and r is not None:
            self._st = None
            try:
                st.finish()
            except BaseException:
                self._s.close()
                raise
        return r

    def _err(self, e):
        st = self._st
        if st is not None:
            self._st = None
            try:
                st.refused(e)
            finally:
                self._s.close()
        raise e

    def read(self, n=-1):
        try:
            return self._done(self._s.read(n) if n >= 0 else self._s.read())
        except OSError as e:
            self._err(e)

    def readinto(self, buf, n=-1):
        try:
            return self._done(self._s.readinto(buf) if n < 0 else self._s.readinto(buf, n))
        except OSError as e:
            self._err(e)

    def readline(self):
        try:
            return self._done(self._s.readline())
        except OSError as e:
            self._err(e)

    def write(self, buf):
        try:
            return self._done(self._s.write(buf))
        except OSError as e:
            self._err(e)

    def setblocking(self, flag):
        return self._s.setblocking(flag)

    def close(self):
        self._s.close()

    def ioctl(self, req, arg):
        # Stream protocol for select.poll/asyncio: ask the real socket.
        if req == _POLL:
            import select

            if self._p is None:
                self._p = select.poll()
                self._p.register(self._s, arg)
            else:
                self._p.modify(self._s, arg)
            for _, ev in self._p.ipoll(0):
                return ev
            return 0
        if req == _CLOSE:
            self.close()
            return 0
        return -1


def connect(host, port=443, pinset=None, cadata=None, timeout=None):
    """A connected TLS socket to host:port whose certificate matched the pinset."""
    return _connect(SSLContext, host, port, pinset, cadata, timeout)
