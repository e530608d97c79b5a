# The transport of fetch_update() (certpin/_fetch.py, the driver): one HTTP/1.0
# GET of a signed pinset bundle over http or https, loaded for the request and
# dropped again on a device before the bundle is checked (the rules' code and
# this module are never in RAM together). The signature, not the transport,
# carries the trust (docs/updates.md), so the transport only has to be
# bounded: at most 16 KiB of body and 4 KiB of headers are read, the whole
# call (DNS aside: getaddrinfo has no timeout on MicroPython) ends by its
# deadline however slowly the server trickles, redirects are not followed,
# and every failure is an UpdateError with reason "fetch".
#
# https: if the update host is in the pinset, its pins apply (certpin's own
# pinned SSLContext); otherwise TLS without pins, validated against cadata
# when given (CERT_REQUIRED), else not validated at all. Both use the TLS
# module certpin captured at import, not whatever sys.modules["tls"] or
# "ssl" is now (certpin.install() replaces those so every connection is pinned).
# CPython's TLS (over memory BIOs, so that the handshake too is bounded by the
# deadline) is in certpin/_cpy.py, which never reaches a device.
import socket
import sys
import time

from certpin import Error, UpdateError

MAX_BODY = 16384
MAX_HEAD = 4096
_CPY = sys.implementation.name != "micropython"

if hasattr(time, "ticks_ms"):  # MicroPython (attributes, as certpin/_journal.py: a stand-in time module works on every version)
    ticks_ms, ticks_diff, ticks_add = time.ticks_ms, time.ticks_diff, time.ticks_add
else:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


def _err(n, *a):
    # An UpdateError (reason fetch): text n of certpin/_utext.py, or "%s: %s"
    # for n None (the texts are loaded only when a request fails; the
    # driver, certpin/_fetch.py, is loaded: an update is running).
    from certpin._fetch import _text

    e = UpdateError("pinset update not fetched: " + ("%s: %s" % a if n is None else _text(n, a)))
    e.reason = "fetch"
    raise e


def _split(url):
    # (tls, host, port, path of the request line), else an UpdateError (reason fetch).
    r = parts(url)
    if type(r) is int:
        _err(r, url)
    return r


def parts(url):
    # (tls, host, port, path of the request line) of an http:// or https://
    # URL of printable ASCII (at most 512 bytes), else the number of the text
    # in certpin/_utext.py that says what is wrong (certpin._send words its own).
    # Checked on the bytes: iterating a str on MicroPython interns each character met as a qstr, for good.
    try:
        b = url.encode()
    except Exception:  # not a str, or (CPython) a lone surrogate
        b = b""
    if not b or len(b) > 512 or min(b) < 33 or max(b) > 126:
        return 29  # not printable ASCII
    if url[:7] == "http://":
        tls, rest = False, url[7:]
    elif url[:8] == "https://":
        tls, rest = True, url[8:]
    else:
        return 30  # not http or https
    rest = rest.split("#", 1)[0]
    i = rest.find("/")
    hp, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    j = hp.rfind(":")
    port = 443 if tls else 80
    if j >= 0 and "]" not in hp[j:]:
        p = hp[j + 1 :]
        if not p or p.strip("0123456789") or not 0 < int(p) < 65536:
            return 31  # bad port
        hp, port = hp[:j], int(p)
    host = hp[1:-1] if hp[:1] == "[" and hp[-1:] == "]" else hp
    if not host or "@" in host or "[" in host or "]" in host:
        return 32  # no host
    return tls, host, port, path


class _Deadline(object if _CPY else __import__("io").IOBase):  # IOBase: a stream MicroPython's TLS can wrap
    # The raw socket, every read and write bounded by what is left of the
    # deadline: a server that trickles one byte a second still ends it.
    def __init__(self, s, end):
        self.s, self.end = s, end

    def left(self):
        ms = ticks_diff(self.end, ticks_ms())
        if ms <= 0:
            raise OSError(110, "ETIMEDOUT")  # ends the attempt; becomes an UpdateError below
        self.s.settimeout(ms / 1000)

    def readinto(self, b):
        # One recv: a stream's readinto would wait until b is full, each wait
        # bounded anew, so a trickling server could outlast the deadline.
        self.left()
        if _CPY:
            return self.s.recv_into(b)
        data = self.s.recv(min(len(b), 1024))  # recv allocates what it returns: small pieces
        b[: len(data)] = data
        return len(data)

    def write(self, b):
        self.left()
        return self.s.send(b)

    def close(self):  # certpin's SSLContext closes the socket it was given on a refusal
        self.s.close()

    def ioctl(self, req, arg):  # the stream protocol mbedTLS uses on MicroPython
        if req == 4:  # MP_STREAM_CLOSE
            self.s.close()
            return 0
        return -1


def connect(ai, host, port, tls, pinned, cadata, end):
    # (the raw socket, the stream to talk through) of a connection to the
    # address ai (getaddrinfo's) bounded by the deadline end (ticks_ms): TLS
    # when tls, pinned (a Pinset: the host is in it, its pins apply) or not
    # (validated against cadata, a list of DER, when given: see _tls).
    # certpin._send's POST uses it too. The caller closes the raw socket.
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        d = _Deadline(s, end)
        d.left()
        s.connect(ai[-1])
        if not tls:
            return s, d
        if _CPY:  # the host tool and the tests: TLS over memory BIOs, through the deadline too
            from certpin._cpy import tls_bio as wrap
        else:
            wrap = _tls
        return s, wrap(d, host, pinned, cadata, port)
    except BaseException:
        s.close()
        raise


def _tls(raw, host, ps, cadata, port):
    # certpin's contexts use the real tls module, captured before any install().
    from certpin import SSLContext, _context, tls

    if ps is not None:  # the host is pinned: its pins apply (certpin/_old.py on firmware < 1.23)
        x = SSLContext(ps, cadata)
        x.port = port  # for the failure journal, should this connection be refused
        return x.wrap_socket(raw, server_hostname=host)
    # Without cadata CERT_NONE: the signature is the protection. Firmware
    # without verify_callback (< 1.23: no SSLContext, or 1.22's, whose
    # load_verify_locations reads a positional argument as a file path)
    # validates against cadata through certpin/_old.py.
    if hasattr(tls, "SSLContext") and hasattr(tls.SSLContext(tls.PROTOCOL_TLS_CLIENT), "verify_callback"):
        return _context(cadata).wrap_socket(raw, server_hostname=host)
    from certpin._old import wrap

    return wrap(raw, host, cadata, None, _Plain)


class _Plain:
    # What certpin/_old.py's wrap() needs of a connection without pins: a
    # refused handshake stays the firmware's error (it becomes reason fetch).
    def refused(e):
        pass


def get(url, ps, cadata, c):
    # The body at url (a bytearray), None for HTTP 404, or UpdateError(reason
    # "fetch") saying what failed. ps: the installed Pinset (its pins apply
    # when the update host is in it). c: what the driver keeps between the
    # requests of one call: [address, host, port, the installed serial (the
    # check-in), timeout (s), deadline (ticks_ms, set by the first request:
    # one deadline for every request of the call)]. The catch-up URLs name
    # the same host: it is resolved once (getaddrinfo has no timeout).
    if c[5] is None:
        c[5] = ticks_add(ticks_ms(), int(c[4] * 1000))
    try:
        return _get(url, ps, cadata, c)
    except (UpdateError, MemoryError):  # out of RAM: the driver's run() says so (reason memory)
        raise
    except Error as e:  # the update host is pinned and did not match, a cadata it cannot load
        _err(None, url, e.args[0] if e.args else e)
    except Exception as e:  # OSError (refused, reset, timeout), TLS failures
        n = e.args[:1] if isinstance(e, OSError) else ()
        if n in ((11,), (110,)) or "timed out" in str(e):
            _err(33, url, c[4])  # no complete answer in time
        if n == (111,):  # ECONNREFUSED (also lwIP's number on ESP32 and Pico W)
            _err(34, url, c[1], c[2])
        _err(None, url, repr(e)[:200])


def _get(url, ps, cadata, c):
    tls, host, port, path = _split(url)
    pinned = None
    if tls:
        try:
            pinned = ps if ps._find(host) >= 0 else None
        except Error:
            _err(35, url)  # not a usable host name
    if c[0] is None or c[1] != host or c[2] != port:
        c[0], c[1], c[2] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0], host, port
    if cadata is not None and not isinstance(cadata, (list, tuple)):
        cadata = [cadata]
    s, t = connect(c[0], host, port, tls, pinned, cadata, c[5])
    try:
        # The check-in: a static server's access log shows which serial each device holds.
        from certpin import __version__

        req = ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: certpin/%s serial/%s\r\nConnection: close\r\n\r\n"
               % (path, host, __version__, "-" if c[3] is None else c[3])).encode()
        while req:
            req = req[t.write(req) :]
        return _response(t, url)
    finally:
        s.close()


def _response(c, url):
    # The status line and headers end within MAX_HEAD bytes (the blank line
    # included), read into a buffer that starts small (they are some hundred
    # bytes); then the body into a buffer of its own: exactly Content-Length
    # bytes when given (the buffer sized for them and one byte more: a byte
    # beyond them that arrives is refused, never used), else up to EOF, the
    # buffer growing; never over MAX_BODY. None for a 404.
    buf = bytearray(512)
    n = 0
    h = -1  # where the headers end
    while h < 0:
        if n == len(buf):
            b = bytearray(min(2 * n, MAX_HEAD + 1))
            b[:n] = buf
            buf = b
        k = c.readinto(memoryview(buf)[n:])
        if not k:
            _err(41, url, n)  # closed within the headers
        n += k
        h = bytes(memoryview(buf)[max(0, n - k - 3) : min(n, MAX_HEAD)]).find(b"\r\n\r\n")
        if h >= 0:
            h += max(0, n - k - 3)
        elif n >= MAX_HEAD:
            _err(38, url, MAX_HEAD)  # headers too long
    length, loc, status = _head(bytes(memoryview(buf)[:h]), url)
    if status == b"404":
        return None
    if status != b"200":
        if status[:1] == b"3" and loc is not None:
            _err(36, url, _text(status[:12]), _text(loc[:200]))  # a redirect
        _err(37, url, _text(status[:12]))  # another status
    want = MAX_BODY if length is None else length
    n -= h + 4  # body bytes that came with the headers
    if n > want:
        _beyond(url, length)
    body = bytearray(want + 1 if length is not None else max(n, 1024))
    body[:n] = memoryview(buf)[h + 4 : h + 4 + n]
    buf = None
    while n != length:  # complete: no need to wait for the connection to close
        if n == len(body):  # only without Content-Length
            b = bytearray(min(2 * n, MAX_BODY + 1))
            b[:n] = body
            body = b
        k = c.readinto(memoryview(body)[n:])
        if not k:
            break
        n += k
        if n > want:
            _beyond(url, length)
    if length is not None and n < length:
        _err(42, url, n, length)  # truncated
    body[n:] = b""  # the body itself, no copy: certpin._update reads a bytearray as it is
    return body


def _beyond(url, length):
    if length is None:
        _err(39, url, MAX_BODY)  # too large
    _err(40, url, length)  # beyond Content-Length


def _text(b):
    # Header bytes for a message: a str when printable ASCII, else their repr.
    return b.decode() if b and min(b) > 31 and max(b) < 127 else b


def _head(head, url):
    # (Content-Length or None, Location or None, status code as bytes) from
    # the header bytes, read as bytes: the runtimes decode non-UTF-8 text
    # differently, and nothing here needs more than ASCII.
    lines = head.split(b"\r\n")
    st = lines[0].split(b" ")
    if len(st) < 2 or st[0][:5] != b"HTTP/":
        _err(43, url, _text(lines[0][:80]))  # not HTTP
    length = loc = None
    for line in lines[1:]:
        i = line.find(b":")
        if i < 0:
            continue  # not a header field (obsolete line folding included): nothing certpin reads
        k = line[:i].strip().lower()
        v = line[i + 1 :].strip()
        if k == b"content-length":
            if not v or v.strip(b"0123456789") or len(v) > 9 or length is not None:
                _err(44, url, _text(v[:40]))  # bad Content-Length
            length = int(v)
            if length > MAX_BODY:
                _err(45, url, length, MAX_BODY)  # Content-Length too large
        elif k == b"transfer-encoding" and v.lower() != b"identity":
            _err(46, url, _text(v[:40]))  # chunked
        elif k == b"location":
            loc = v
    return length, loc, st[1]


