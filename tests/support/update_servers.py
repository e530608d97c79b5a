"""HTTP(S) servers on 127.0.0.1 that serve update bundles, well or badly.

UpdateServer(mode, body): every GET gets, by mode:
  ok        200 with Content-Length and the body
  nolength  200 without Content-Length, the body, then close
  stall     accepts, reads the request, never answers (until stopped)
  trickle   200 headers, then the body one byte every `delay` seconds
  huge      200 without Content-Length, then 1 MiB
  biglength 200 with Content-Length: 1048576 (and the body)
  short     200 with Content-Length larger than what is sent, then close
  redirect  302 with a Location
  notfound  404
  garbage   random bytes, no HTTP
  longhead  200 then 64 KiB of headers
  head:N    200 with a header block (status line to the blank line) of exactly N bytes, then the body
  longbody  200 with Content-Length: 10, then the whole body, in one send
  latebody  200 with Content-Length: 10 and 10 bytes of the body, then (after `delay`) the rest
  chunked   200 with Transfer-Encoding: chunked, the body as one chunk
  slow      waits `delay`, then as ok
mode may be a list: the n-th request gets mode[n] (the last one from then on).
With tls=(chain_path, key_path) it speaks HTTPS. `requests` counts the GETs.

SiteServer(root): the files of a site directory (tests/support/catchup_site.py)
by path, 404 for a missing one; `overrides` answers chosen paths by a mode above
(with the file's bytes, or given bytes); `log` records (path, User-Agent, bytes sent).
"""
import os
import socket
import ssl
import threading

from support.servers import Listener, read_until


class UpdateServer(Listener):
    def __init__(self, mode, body=b"", tls=None, delay=0.5, location="http://127.0.0.1:1/elsewhere.jws"):
        super().__init__()
        self.mode, self.body, self.delay, self.location = mode, body, delay, location
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
        self.requests = []

    def url(self, path="/fleet/certpin.jws"):
        return "%s://127.0.0.1:%d%s" % ("https" if self.ctx else "http", self.port, path)

    def _handle(self, conn):
        conn.settimeout(30)
        try:
            c = self.ctx.wrap_socket(conn, server_side=True) if self.ctx else conn
            data = read_until(c, b"\r\n\r\n", 8192)
            self.requests.append(data)
            self._answer(c, data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, c, data):
        m, body = self.mode, self.body
        if isinstance(m, list):
            m = m[min(len(self.requests), len(m)) - 1]
        self._send(c, m, body)

    def _send(self, c, m, body):
        if m == "slow":
            if self._stop.wait(self.delay):
                return
            m = "ok"
        if m == "ok":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/jose+json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif m == "nolength":
            c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)
        elif m == "stall":
            self._stop.wait(60)
        elif m == "trickle":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(len(body)):
                if self._stop.wait(self.delay):
                    return
                c.sendall(body[i : i + 1])
        elif m == "huge":
            c.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            for _ in range(256):
                c.sendall(b"x" * 4096)
        elif m == "biglength":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1048576\r\n\r\n" + body)
        elif m == "short":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) + 100) + body)
        elif m == "redirect":
            c.sendall(b"HTTP/1.0 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % self.location.encode())
        elif m == "notfound":
            c.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
        elif m == "garbage":
            c.sendall(os.urandom(3000))
        elif m == "longhead":
            c.sendall(b"HTTP/1.0 200 OK\r\n" + b"X-Filler: " + b"a" * 65536 + b"\r\n\r\n" + body)
        elif m.startswith("head:"):
            head = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nX-Pad: " % len(body)
            head += b"a" * (int(m[5:]) - len(head) - 4) + b"\r\n\r\n"
            assert len(head) == int(m[5:])
            c.sendall(head + body)
        elif m == "longbody":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n" + body)
        elif m == "latebody":
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n" + body[:10])
            if not self._stop.wait(self.delay):
                c.sendall(body[10:])
        elif m == "chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        else:
            raise ValueError(m)


class SiteServer(UpdateServer):
    def __init__(self, root, tls=None, delay=0.5):
        super().__init__("ok", b"", tls=tls, delay=delay)
        self.root = str(root)
        self.overrides = {}
        self.log = []
        self._lock = threading.Lock()

    def url(self, path="fleet.jws"):
        return "%s://127.0.0.1:%d/%s" % ("https" if self.ctx else "http", self.port, path)

    def paths(self):
        return [p for p, _, _ in self.log]

    def _answer(self, c, req):
        lines = req.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode().lstrip("/") if len(lines[0].split(b" ")) > 1 else ""
        ua = [l[12:].decode() for l in lines if l.lower().startswith(b"user-agent: ")]
        full = os.path.realpath(os.path.join(self.root, path))
        body = None
        if full.startswith(os.path.realpath(self.root) + os.sep) and os.path.isfile(full):
            with open(full, "rb") as f:
                body = f.read()
        o = self.overrides.get(path)
        if isinstance(o, tuple):
            m, body = o
        elif o is not None:
            m = o
        else:
            m = "ok" if body is not None else "notfound"
        with self._lock:
            self.log.append((path, ua[0] if ua else None, len(body or b"")))
        self._send(c, m, body or b"")
