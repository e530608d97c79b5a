# Firmware older than v1.23 (no verify_callback), simulated on the unix port:
# a stand-in `tls` module wraps the real one, refuses `verify_callback` like a
# v1.22 SSLContext does, and (optionally) gives sockets the getpeercert(True)
# that ESP32 builds have, returning the leaf the test's server really serves.
# argv: CONFIG.json {"port", "pins", "peercert": path or null}. Prints JSON.
import json
import socket
import sys

import tls as real

cfg = json.load(open(sys.argv[1]))


class Sock:
    def __init__(self, s):
        self.s = s

    def getpeercert(self, binary_form):
        with open(cfg["peercert"], "rb") as f:
            return f.read()

    def write(self, b):
        return self.s.write(b)

    def read(self, n=-1):
        return self.s.read(n)

    def close(self):
        self.s.close()


class Ctx:
    verify_callback = property(lambda self: None)  # read-only: setting it raises AttributeError

    def __init__(self, proto):
        self.c = real.SSLContext(proto)

    @property
    def verify_mode(self):
        return self.c.verify_mode

    @verify_mode.setter
    def verify_mode(self, v):
        self.c.verify_mode = v

    def load_verify_locations(self, d):
        self.c.load_verify_locations(d)

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        s = self.c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake_on_connect)
        return Sock(s) if cfg.get("peercert") else s


class Fake:
    SSLContext = Ctx
    PROTOCOL_TLS_CLIENT = real.PROTOCOL_TLS_CLIENT
    CERT_NONE = real.CERT_NONE
    CERT_OPTIONAL = real.CERT_OPTIONAL
    CERT_REQUIRED = real.CERT_REQUIRED


sys.modules["tls"] = Fake
import certpin  # noqa: E402

ps = certpin.loads(json.dumps({"format": 1, "hosts": {"localhost": {"pins": cfg["pins"]}}}))
raw = socket.socket()
raw.connect(socket.getaddrinfo("127.0.0.1", cfg["port"])[0][-1])
try:
    s = certpin.SSLContext(ps).wrap_socket(raw, server_hostname="localhost")
    s.write(b"GET / HTTP/1.0\r\n\r\n")
    out = {"ok": True, "reply": s.read(200).decode()}
except certpin.Error as e:
    out = {"ok": False, "type": type(e).__name__, "message": e.args[0]}
finally:
    raw.close()
print(json.dumps(out))
