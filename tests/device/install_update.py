# certpin.install(), then a signed update of the pinset file it loaded:
# the application's connections follow the new pinset at once (not only
# after the next boot). Usage: install_update.py DIR BUNDLE PORT_OLD PORT_NEW
# (servers for localhost: the old pinset pins the first, the new one the
# second); prints ["ok"|"refused", x4] before and after the update. MicroPython.
import json
import socket
import sys

import certpin

d, bundle, pa, pb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
path = d + "/certpin.json"
certpin.install(certpin.load(path))
import tls  # noqa: E402  (after install(): certpin's stand-in)


def conn(port):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE  # what requests sets: install() pins all the same
    try:
        ctx.wrap_socket(s, server_hostname="localhost").close()
        return "ok"
    except certpin.PinError:
        return "refused"


out = [conn(pa), conn(pb)]
with open(bundle, "rb") as f:
    certpin.update(f.read(), path)
out += [conn(pa), conn(pb)]
print(json.dumps(out))
