# A pinned socket whose handshake happens on first use
# (do_handshake_on_connect=False, what asyncio does). The verify callback still
# aborts a mismatching handshake; this wrapper turns the abort into the
# PinError that explains it, runs Conn.finish() before any byte reaches the
# caller, and calls on_failure outside the handshake. It speaks the stream
# protocol (ioctl) so select.poll and asyncio can wait on it.
import io


class Deferred(io.IOBase):
    def __init__(self, s, st):
        self._s, self._st, self._p = s, st, None

    def _io(self, f, *a):
        st = self._st
        try:
            r = f(*a)
        except (OSError, ValueError) as e:  # mbedTLS reports a CA failure as ValueError
            if st is not None:
                self._st = None
                try:
                    st.refused(e)
                finally:
                    self._s.close()
            raise
        if st is not None and r is not None:  # None: non-blocking, handshake not done
            self._st = None
            try:
                st.finish()
            except BaseException:
                self._s.close()
                raise
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
