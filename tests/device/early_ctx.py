# Imported by install_client.py BEFORE certpin.install(): TLS contexts made
# before it, one in a global and one an attribute down (as a client object
# holding its context). install() cannot pin those and must say so.
import ssl
import tls

CTX = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)


class Client:
    def __init__(self):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


CLIENT = Client()
