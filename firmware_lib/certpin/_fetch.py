# fetch_update(): GET a signed pinset bundle over HTTP/1.0 (http or https)
# and hand it to certpin._update.update(). The signature, not the transport,
# carries the trust (docs/updates.md), so the transport only has to be
# bounded: at most 16 KiB of body and 4 KiB of headers are read, the whole
# attempt (DNS aside: getaddrinfo has no timeout on MicroPython) ends by its
# deadline however slowly the server trickles, redirects are not followed,
# and every failure is an UpdateError with reason "fetch".
#
# https: if the update host is in the pinset, its pins apply (certpin's own
# pinned SSLContext); otherwise TLS without pins, validated against cadata
# when given (CERT_REQUIRED), else not validated at all. Both use the TLS
# module certpin captured at import, not whatever sys.modules["tls"] or
# "ssl" is now (certpin.install() replaces those so every connection is pinned).
# Loaded for one call and dropped afterwards.
import socket
import sys
import time

from certpin import Error, UpdateError, _use
from certpin._load import parse, read
from certpin._update import apply

MAX_BODY = 16384
MAX_HEAD = 4096
_CPY = sys.implementation.name != "micropython"

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def _err(msg, *a):
    e = UpdateError("pinset update not fetched: " + (msg % a if a else msg))
    e.reason = "fetch"
    raise e


def _split(url):
    # (tls, host, port, path of the request line)
    if not isinstance(url, str) or len(url) > 512 or [c for c in url if c <= " " or c > "~"]:
        _err("%r is not a URL of printable ASCII (at most 512 characters)", url)
    if url[:7] == "http://":
        tls, rest = False, url[7:]
    elif url[:8] == "https://":
        tls, rest = True, url[8:]
    else:
        _err("%r is not an http:// or https:// URL", url)
    rest = rest.split("#", 1)[0]
    i = rest.find("/")
    hp, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    j = hp.rfind(":")
    port = 443 if tls else 80
    if j >= 0 and "]" not in hp[j:]:
        p = hp[j + 1 :]
        if not p or p.strip("0123456789") or not 0 < int(p) < 65536:
            _err("%r: bad port", url)
        hp, port = hp[:j], int(p)
    host = hp[1:-1] if hp[:1] == "[" and hp[-1:] == "]" else hp
    if not host or "@" in host or "[" in host or "]" in host:
        _err("%r: no usable host", url)
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
        data = self.s.recv(len(b))
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


def _tls_micropython(raw, host, ps, cadata):
    # certpin's contexts use the real tls module, captured before any install().
    from certpin import SSLContext, _context

    if ps is not None:  # the update host is pinned: its pins apply
        return SSLContext(ps, cadata).wrap_socket(raw, server_hostname=host)
    # Without cadata CERT_NONE: the signature is the protection.
    return _context(cadata).wrap_socket(raw, server_hostname=host)


class _BIO:
    # CPython: TLS over memory BIOs, so the handshake too runs through
    # _Deadline (an SSLSocket's handshake would wait on each read anew).
    def __init__(self, d, ctx, host):
        import ssl

        self.d, self.ssl = d, ssl
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
            except self.ssl.SSLWantReadError:
                r = None
            except (self.ssl.SSLZeroReturnError, self.ssl.SSLEOFError):
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


def _tls_cpython(d, host, ps, cadata):
    import ssl

    if ps is not None:
        from certpin._cpy import SSLContext

        ctx = SSLContext(ps, cadata)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cadata:
            for der in cadata:
                ctx.load_verify_locations(cadata=bytes(der))
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the signature is the protection
    return _BIO(d, ctx, host)


def _get(url, ps, timeout, cadata):
    # The response body (bytes), or UpdateError.
    tls, host, port, path = _split(url)
    pinned = None
    if tls:
        try:
            pinned = ps if ps._find(host) >= 0 else None
        except Error:
            _err("%r: %s", url, "not a usable host name")
    end = ticks_ms() + int(timeout * 1000)
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        d = _Deadline(s, end)
        d.left()
        s.connect(ai[-1])
        if tls:
            if cadata is not None and not isinstance(cadata, (list, tuple)):
                cadata = [cadata]
            c = (_tls_cpython if _CPY else _tls_micropython)(d, host, pinned, cadata)
        else:
            c = d
        req = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: certpin\r\nConnection: close\r\n\r\n" % (path, host)
        req = req.encode()
        while req:
            req = req[c.write(req) :]
        return _response(c, url)
    finally:
        s.close()


def _response(c, url):
    # Status line and headers within MAX_HEAD bytes, then the body: exactly
    # Content-Length bytes when given, else up to EOF; never over MAX_BODY.
    # The buffer grows with what arrives (a typical bundle is 1-3 KB).
    buf = bytearray(1024)
    n = 0
    h = -1  # where the headers end
    length = None
    want = MAX_HEAD + MAX_BODY + 1  # bytes to read at most
    while n < want:
        if n == len(buf):
            b = bytearray(min(2 * len(buf), want))
            b[:n] = buf
            buf = b
        k = c.readinto(memoryview(buf)[n : min(len(buf), want)])
        if not k:
            break
        n += k
        if h < 0:
            h = bytes(memoryview(buf)[max(0, n - k - 3) : n]).find(b"\r\n\r\n")
            if h >= 0:
                h += max(0, n - k - 3)
                length, loc, status = _head(bytes(memoryview(buf)[:h]), url)
                if status != "200":
                    if status[:1] == "3" and loc is not None:
                        _err("%s: HTTP %s, a redirect to %r: not followed; point update.url (or the url argument) "
                             "at the bundle itself", url, status, loc[:200])
                    _err("%s: HTTP %s", url, status)
                want = h + 4 + (MAX_BODY + 1 if length is None else length)
            elif n > MAX_HEAD:
                _err("%s: the response headers are longer than %d bytes", url, MAX_HEAD)
        if h >= 0 and n - h - 4 > MAX_BODY:
            _err("%s: the response is larger than %d bytes (a bundle is at most that)", url, MAX_BODY)
    if h < 0:
        _err("%s: the connection closed before the response headers ended (%d bytes)", url, n)
    if length is not None and n < want:
        _err("%s: truncated: %d of the %d bytes of Content-Length", url, n - h - 4, length)
    return bytes(memoryview(buf)[h + 4 : n])


def _head(head, url):
    # (Content-Length or None, Location or None, status code) from the header bytes.
    try:
        lines = str(head, "utf-8").split("\r\n")
    except Exception:
        _err("%s: the response headers are not text", url)
    st = lines[0].split(" ")
    if len(st) < 2 or st[0][:5] != "HTTP/":
        _err("%s: not an HTTP response: %r", url, lines[0][:80])
    length = loc = None
    for line in lines[1:]:
        i = line.find(":")
        k = line[:i].strip().lower()
        v = line[i + 1 :].strip()
        if k == "content-length":
            if not v or v.strip("0123456789") or length is not None:
                _err("%s: bad Content-Length %r", url, v[:40])
            length = int(v)
            if length > MAX_BODY:
                _err("%s: Content-Length %d is larger than %d bytes (a bundle is at most that)", url, length, MAX_BODY)
        elif k == "location":
            loc = v
    return length, loc, st[1]


def fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None):
    try:
        return _fetch_update(url, path, timeout, cadata)
    except UpdateError as e:  # the refusal goes to the journal (certpin/_journal.py), then to the caller
        _use("_journal", "update", path, e, url)
        raise


def _fetch_update(url, path, timeout, cadata):
    try:
        d, ps = parse(read(path))  # the pinset: its pins for a pinned update host, its update.url
    except (OSError, ValueError) as e:
        from certpin import PinsetError

        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    if url is None:
        u = d.get("update") or {}
        url = u.get("url")
        if url is None:
            _err("no url given, and the pinset at %s has no update.url", path)
    try:
        body = _get(url, ps, timeout, cadata)
    except UpdateError:
        raise
    except Error as e:  # the update host is pinned and did not match, a cadata it cannot load
        _err("%s: %s", url, e.args[0] if e.args else e)
    except Exception as e:  # OSError (refused, reset, timeout), TLS failures, MemoryError
        t = isinstance(e, OSError) and (e.args[:1] in ((11,), (110,)) or "timed out" in str(e))
        _err("%s: %s", url, "no complete answer within %s s" % timeout if t else repr(e)[:200])
    return apply(body, path)
