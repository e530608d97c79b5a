"""TLS servers on 127.0.0.1 for tests: real handshakes, real chains.

A server answers every connection with a one-line HTTP/1.0 response naming
itself, and records every application byte a client sent it, so tests can
assert that a refused client never sent its request to an attacker.
"""
import socket
import ssl
import threading


def read_until(sock, marker, limit=65536):
    """The bytes a peer sends up to and including ``marker`` (or EOF, or ``limit``)."""
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class Listener:
    """A TCP listener on loopback that hands each connection to ``_handle`` on a
    thread of its own; ``stop()`` closes the listener and every connection."""

    def __init__(self, host="127.0.0.1", port=0, backlog=64):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self._conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self._thread.join(5)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        raise NotImplementedError


class TLSServer(Listener):
    """Serves the chain in chain_path with key_path (or a ready server ``ctx``)."""

    def __init__(self, chain_path=None, key_path=None, name="server", host="127.0.0.1", port=0,
                 reply=None, handshake_only=False, ctx=None):
        super().__init__(host, port)
        self.name = name
        self.reply = reply if reply is not None else (
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from %s\n" % name
        ).encode()
        self.handshake_only = handshake_only
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(chain_path, key_path)
        self.ctx = ctx
        self.received = []  # application bytes from each completed handshake
        self.handshakes = 0

    @property
    def app_bytes(self):
        return b"".join(self.received)

    def _read_request(self, tls):
        # The client's bytes up to the first newline (or EOF), recorded.
        data = read_until(tls, b"\n")
        self.received.append(data)
        return data

    def _handle(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                if self.handshake_only:
                    return
                if self._read_request(tls):
                    tls.sendall(self.reply)
        except (OSError, ssl.SSLError):
            pass  # clients that abort the handshake are the point of many tests
        finally:
            try:
                conn.close()
            except OSError:
                pass


class HTTPSServer(TLSServer):
    """An HTTPS file server: ``files`` maps a request path to the body served
    (404 otherwise). It reads the whole request head before answering, as
    clients that write their headers one by one (micropython-lib's requests)
    need. ``tcp_bytes`` counts connections on which the client sent anything
    at all (a ClientHello included); ``paths`` lists the paths requested."""

    def __init__(self, chain_path, key_path, files=None, **kw):
        super().__init__(chain_path, key_path, **kw)
        self.files = dict(files or {})
        self.paths = []
        self.connections = 0
        self.tcp_bytes = 0

    def _handle(self, conn):
        conn.settimeout(10)
        self.connections += 1
        try:
            if conn.recv(1, socket.MSG_PEEK):
                self.tcp_bytes += 1
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                data = read_until(tls, b"\r\n\r\n")
                self.received.append(data)
                if not data:
                    return
                path = data.split(b" ", 2)[1].decode() if data.count(b" ") >= 2 else ""
                self.paths.append(path)
                body = self.files.get(path)
                head = "HTTP/1.0 %s\r\nContent-Length: %d\r\n\r\n" % (
                    "200 OK" if body is not None else "404 Not Found", len(body or b""))
                tls.sendall(head.encode() + (body or b""))
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
