# A pinned socket whose handshake happens on first use
# (do_handshake_on_connect=False, what asyncio does). The verify callback still
# aborts a mismatching handshake; this wrapper turns the abort into the
# PinError that explains it, runs Conn.finish() before any byte reaches the
# caller, and calls on_failure outside the handshake. It speaks the stream
# protocol (ioctl) so select.poll and asyncio can wait on it.
import io

from certpin import PinError


class Deferred(io.IOBase):
    # _st: the check (a Conn, or install()'s CA-only check) while the
    # handshake is unchecked, None once the check passed, or the exception
    # that refused the connection. A refused
    # connection is closed and stays refused: every later call raises again.
    def __init__(self, s, st):
        self._s, self._st, self._p = s, st, None

    def _io(self, f, *a):
        st = self._st
        if st is None:
            return f(*a)
        if isinstance(st, BaseException):
            raise PinError("this connection was refused and closed: %s" % (st.args[0] if st.args else st))
        try:
            r = f(*a)
            if r is None:  # non-blocking and the handshake is not done yet
                return r
            st.finish()  # before any byte reaches the caller
        except BaseException as e:
            self._st = e
            self._s.close()
            if isinstance(e, (OSError, ValueError)):  # mbedTLS refused: say why (a CA failure is a ValueError)
                try:
                    st.refused(e)
                except BaseException as e2:
                    self._st = e2
                    raise
            raise
        self._st = None
        return r

    def read(self, *a):
        return self._io(self._s.read, *a)

    def readinto(self, *a):
        return self._io(self._s.readinto, *a)

    def readline(self):
        return self._io(self._s.readline)

    def write(self, buf):
        return self._io(self._s.write, buf)

    def setblocking(self, flag):
        return self._s.setblocking(flag)

    def close(self):
        self._s.close()

    def ioctl(self, req, arg):
        # The stream protocol for select.poll/asyncio: ask the real socket.
        if req == 3:  # MP_STREAM_POLL
            import select

            if self._p is None:
                self._p = select.poll()
                self._p.register(self._s, arg)
            else:
                self._p.modify(self._s, arg)
            for _, ev in self._p.ipoll(0):
                return ev
            return 0
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return -1
