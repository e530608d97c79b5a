# A TLS server on mbedTLS (the MicroPython unix port), for tests that need a server to send a certificate
# OpenSSL refuses to load (an invalid UTF-8 subject, a non-minimal serial, ...). Unix port only: CPython's
# ssl takes no certificate bytes. Runs until killed.
# Usage: tls_server.py CERT.der KEY.der PORT   prints "ready" once listening, then one line per connection.
import socket
import sys

import tls

ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read())
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(socket.getaddrinfo("127.0.0.1", int(sys.argv[3]))[0][-1])
s.listen(4)
print("ready")
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.write(b"HTTP/1.0 200 OK\r\n\r\nhello from mbedtls\n")
        t.close()
        print("handshake ok")
    except Exception as e:  # a client that aborts the handshake is what the tests do
        print("handshake failed:", repr(e))
        c.close()
