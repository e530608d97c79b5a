# A library copied in part, or a flash that can no longer read some of certpin's
# modules: what the application sees. argv: LIBDIR (certpin/ without some
# modules) PINSET ROGUE_PORT GENUINE_PORT ROGUE_LEAF_DER. Prints one JSON line:
# {"check": [type, message], "rogue": [type, message], "genuine": "ok" or [type, message]}
import json
import socket
import sys

sys.path.insert(0, sys.argv[1])
import certpin  # noqa: E402


def outcome(f):
    try:
        f()
        return "ok"
    except Exception as e:
        return [type(e).__name__, str(e.args[0]) if e.args else ""]


ps = certpin.load(sys.argv[2])
leaf = open(sys.argv[5], "rb").read()


def conn(port):
    raw = socket.socket()
    raw.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    try:
        c = certpin.SSLContext(ps).wrap_socket(raw, server_hostname="localhost")
        c.write(b"GET / HTTP/1.0\r\n\r\n")
        c.read(1)
        c.close()
    finally:
        raw.close()


out = {
    "check": outcome(lambda: certpin.check(ps, "localhost", [leaf])),
    "rogue": outcome(lambda: conn(int(sys.argv[3]))),
    "genuine": outcome(lambda: conn(int(sys.argv[4]))),
}
print(json.dumps(out))
