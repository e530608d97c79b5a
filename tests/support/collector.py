"""A report collector on 127.0.0.1: what receives certpin.send_reports() POSTs.

Collector(mode, tls=None, log=None): every POST gets, by mode:
  ok        200 (and the body is kept: ``bodies``, and appended as one line to ``log``)
  created   201, kept the same way
  error     500 (nothing kept)
  stall     reads the request, never answers (until stopped)
  slowread  reads the request one byte a second (never answers)
  garbage   random bytes, no HTTP
  close     closes the connection without a byte
mode may be a list: the n-th request gets mode[n] (the last one from then on).
With tls=(chain_path, key_path) it speaks HTTPS. ``requests`` holds each
request's head (bytes), ``paths`` the request paths.

A collector this simple is what a fleet needs: append each body to a file of
JSON lines, and `certpin reports FILE` reads it (docs/reports.md).
"""
import json
import os
import socket
import ssl
import threading
import time

from support.servers import Listener, read_until


class Collector(Listener):
    def __init__(self, mode="ok", tls=None, log=None):
        super().__init__()
        self.mode, self.log = mode, log
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
        self.requests, self.paths, self.bodies = [], [], []
        self._lock = threading.Lock()

    def url(self, path="/reports"):
        return "%s://%s:%d%s" % ("https" if self.ctx else "http", "localhost" if self.ctx else "127.0.0.1",
                                 self.port, path)

    def records(self):
        """Every record received, in order."""
        return [r for b in self.bodies for r in json.loads(b)]

    def _mode(self, n):
        m = self.mode
        return m if isinstance(m, str) else m[min(n, len(m) - 1)]

    def _handle(self, conn):
        conn.settimeout(30)
        try:
            c = self.ctx.wrap_socket(conn, server_side=True) if self.ctx else conn
            with self._lock:
                n = len(self.requests)
                self.requests.append(b"")
            mode = self._mode(n)
            if mode == "slowread":
                while not self._stop.is_set() and c.recv(1):
                    time.sleep(1)
                return
            head = read_until(c, b"\r\n\r\n", 8192)
            self.requests[n] = head
            self.paths.append(head.split(b" ")[1].decode() if head.count(b" ") >= 2 else "")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            while len(body) < length:
                chunk = c.recv(65536)
                if not chunk:
                    break
                body += chunk
            if mode in ("ok", "created"):
                with self._lock:
                    self.bodies.append(body)
                    if self.log:
                        with open(self.log, "ab") as f:
                            f.write(body.replace(b"\n", b" ") + b"\n")
                c.sendall(b"HTTP/1.0 %s\r\nContent-Length: 0\r\n\r\n" % (b"200 OK" if mode == "ok" else b"201 Created"))
            elif mode == "error":
                c.sendall(b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            elif mode == "stall":
                while not self._stop.is_set():
                    time.sleep(0.1)
            elif mode == "garbage":
                c.sendall(os.urandom(300).replace(b"\r\n", b"xx"))
            # "close": nothing
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
