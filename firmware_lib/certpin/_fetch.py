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

from certpin import Error, UpdateError
from certpin._update import MISSED, _fail, expired, installed, run, step

MAX_BODY = 16384
MAX_HEAD = 4096
_CPY = sys.implementation.name != "micropython"

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


def _err(msg, *a):
    e = UpdateError("pinset update not fetched: " + (msg % a if a else msg))
    e.reason = "fetch"
    raise e


def _split(url):
    # (tls, host, port, path of the request line)
    # Checked on the bytes: iterating a str on MicroPython interns each character met as a qstr, for good.
    try:
        b = url.encode()
    except Exception:  # not a str, or (CPython) a lone surrogate
        b = b""
    if not b or len(b) > 512 or min(b) < 33 or max(b) > 126:
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


def _get(url, ps, end, cadata, c):
    # The response body (bytes), None for HTTP 404, or UpdateError. end: the
    # call's deadline (ticks_ms), shared by every request. c: [address, host,
    # port, installed serial] kept between requests: the catch-up URLs name
    # the same host, resolved once (getaddrinfo has no timeout).
    tls, host, port, path = _split(url)
    pinned = None
    if tls:
        try:
            pinned = ps if ps._find(host) >= 0 else None
        except Error:
            _err("%r: %s", url, "not a usable host name")
    if c[0] is None or c[1] != host or c[2] != port:
        c[0], c[1], c[2] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0], host, port
    ai = c[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        d = _Deadline(s, end)
        d.left()
        s.connect(ai[-1])
        if tls:
            if cadata is not None and not isinstance(cadata, (list, tuple)):
                cadata = [cadata]
            t = (_tls_cpython if _CPY else _tls_micropython)(d, host, pinned, cadata)
        else:
            t = d
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
    # included); then the body: exactly Content-Length bytes when given (a
    # byte beyond it that arrives is refused, never used), else up to EOF;
    # never over MAX_BODY. The buffer grows with what arrives (a typical
    # bundle is 1-3 KB). None for a 404.
    buf = bytearray(1024)
    n = 0
    h = -1  # where the headers end
    length = None
    want = MAX_HEAD  # bytes to read at most, for now
    while n <= want:
        if n == len(buf):
            b = bytearray(min(2 * len(buf), want + 1))
            b[:n] = buf
            buf = b
        k = c.readinto(memoryview(buf)[n : min(len(buf), want + 1)])
        if not k:
            break
        n += k
        if h < 0:
            h = bytes(memoryview(buf)[max(0, n - k - 3) : min(n, MAX_HEAD)]).find(b"\r\n\r\n")
            if h >= 0:
                h += max(0, n - k - 3)
                length, loc, status = _head(bytes(memoryview(buf)[:h]), url)
                if status == b"404":
                    return None
                if status != b"200":
                    if status[:1] == b"3" and loc is not None:
                        _err("%s: HTTP %s, a redirect to %r: not followed; point update.url (or the url argument) "
                             "at the bundle itself", url, _text(status[:12]), _text(loc[:200]))
                    _err("%s: HTTP %s", url, _text(status[:12]))
                want = h + 4 + (MAX_BODY if length is None else length)
            elif n >= MAX_HEAD:
                _err("%s: the response headers are longer than %d bytes", url, MAX_HEAD)
        if h >= 0 and n > want:
            if length is None:
                _err("%s: the response is larger than %d bytes (a bundle is at most that)", url, MAX_BODY)
            _err("%s: more bytes than its Content-Length of %d: refused, not cut short", url, length)
        if h >= 0 and n == want and length is not None:
            break  # the body is complete: no need to wait for the connection to close
    if h < 0:
        _err("%s: the connection closed before the response headers ended (%d bytes)", url, n)
    if length is not None and n < want:
        _err("%s: truncated: %d of the %d bytes of Content-Length", url, n - h - 4, length)
    return bytes(memoryview(buf)[h + 4 : n])


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
        _err("%s: not an HTTP response: %r", url, _text(lines[0][:80]))
    length = loc = None
    for line in lines[1:]:
        i = line.find(b":")
        if i < 0:
            continue  # not a header field (obsolete line folding included): nothing certpin reads
        k = line[:i].strip().lower()
        v = line[i + 1 :].strip()
        if k == b"content-length":
            if not v or v.strip(b"0123456789") or len(v) > 9 or length is not None:
                _err("%s: bad Content-Length %r", url, _text(v[:40]))
            length = int(v)
            if length > MAX_BODY:
                _err("%s: Content-Length %d is larger than %d bytes (a bundle is at most that)", url, length, MAX_BODY)
        elif k == b"transfer-encoding" and v.lower() != b"identity":
            _err("%s: Transfer-Encoding %r: not supported (the request is HTTP/1.0); serve the bundle as a "
                 "plain file", url, _text(v[:40]))
        elif k == b"location":
            loc = v
    return length, loc, st[1]


def fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None):
    return run(_fetch, url, path, timeout, cadata)


def _fetch(url, path, timeout, cadata):
    # The trusted state of the pinset file (small: no pinset text is kept),
    # the Pinset for a pinned update host, one deadline for the whole call,
    # then the walk: the newest release, and the catch-up files when the
    # device missed a signing-key rotation.
    t, ps = installed(path)
    if url is None:
        url = t.url
        if url is None:
            _err("no url given, and the pinset at %s has no update.url", path)
    _split(url)  # a bad URL is refused before anything else
    end = ticks_add(ticks_ms(), int(timeout * 1000))
    c = [None, None, None, t.serial]

    def get(u):
        try:
            return _get(u, ps, end, cadata, c)
        except (UpdateError, MemoryError):  # out of RAM: run() says so (reason memory)
            raise
        except Error as e:  # the update host is pinned and did not match, a cadata it cannot load
            _err("%s: %s", u, e.args[0] if e.args else e)
        except Exception as e:  # OSError (refused, reset, timeout), TLS failures
            x = isinstance(e, OSError) and (e.args[:1] in ((11,), (110,)) or "timed out" in str(e))
            _err("%s: %s", u, "no complete answer within %s s" % timeout if x else repr(e)[:200])

    def keep(data, new, nt, final):
        from certpin._floor import save

        save(path, data, new, nt.floor)
        c[3] = new.serial

    new = walk(t, get, url, None, keep)[0]
    return (ps, False) if new is None else (new, True)


# ---- The walk (docs/updates.md, "Catching up") ----
# From what a device trusts to the newest release, through the catch-up file
# of each key set it passes, so a device that slept through signing-key
# rotations reaches the newest release in one fetch_update() call. Pure over
# get(url) -> bytes, None (no such file: HTTP 404), or an UpdateError (reason
# "fetch"): fetch_update() passes its HTTP getter, the host tool a getter over
# a site directory (certpin pinset publish, check-update --site), so the host
# simulates devices with this very code. One bundle is in RAM at a time, and
# what is trusted between steps is small (a certpin._update.Trust). The
# catch-up steps are certpin._catchup's, loaded only when a device missed a
# rotation (measured: 5.6 KB less peak heap for every other fetch_update).

MAX_STEPS = 32  # catch-up requests per call, after the newest release's


def catchup_url(url, kid):
    """url cut at its first "?" or "#", + ".d/" + kid + ".jws"."""
    for c in "?#":
        i = url.find(c)
        if i >= 0:
            url = url[:i]
    return url + ".d/" + kid + ".jws"


def walk(t, get, url, today=None, save=None):
    """Bring the Trust t (certpin._update.trust()) to the newest release at url.

    1. get(url), the newest release, is checked as the final step (every
       rule). Accepted: saved, the end. Its payload is the trusted file:
       nothing changes. Refused as signed by keys t does not hold (MISSED:
       the device slept through a rotation): the catch-up steps
       (certpin._catchup.steps). Any other refusal: raised.
    2. At most MAX_STEPS times: get(catchup_url(url, t.id)), the newest
       release the key set t trusts signed, checked against t. A release that
       keeps the key set is the end: final (rule 8), saved. One that changes
       it is an intermediate step (expiry not checked, as TUF treats
       intermediate roots): saved only when in force, then trusted. The
       trusted release again ends the walk on the last intermediate step
       (which must then be in force); right away, it means the site offers no
       path. No catch-up file (None): the newest release's refusal, naming
       the URL. Each step must raise the serial (rule 7), so a site cannot
       make the walk loop; more than MAX_STEPS: reason "catchup". The walk
       must end on the release first refused (the newest), else "catchup".

    save(data, pinset, trust, final) installs a step; None: nothing is
    written (the host's simulation). today: as for certpin._update.step.
    Returns (the Pinset reached, or None when nothing changed, stats) where
    stats = [requests, body bytes, P-256 verifications, [serials accepted]].
    """
    n = [0]
    st = [0, 0, n, []]
    b = [_req(get, url, st)]  # step() takes the bundle out of the list: one bundle in RAM at a time
    if b[0] is None:
        _err("%s: not found (HTTP 404)", url)
    try:
        r = step(t, b, True, today, n)
    except UpdateError as e:
        if e.reason not in MISSED:
            raise
        first = (e.reason, e.digest, e.args[0])  # kept small: the exception and its traceback go
        e = None
    else:
        if r is None:
            return None, st
        st[3].append(r[1].serial)
        if save:
            save(r[0], r[1], r[2], True)
        return r[1], st
    from certpin._catchup import steps

    try:
        return steps(t, get, url, today, save, first, b, st)
    finally:
        if not _CPY:  # dropped again, as certpin._use drops this module
            sys.modules.pop("certpin._catchup", None)
            try:
                delattr(sys.modules["certpin"], "_catchup")  # the import bound it there too
            except AttributeError:
                pass


def _req(get, u, st):
    st[0] += 1
    b = get(u)
    if b is not None:
        st[1] += len(b)
    return b
