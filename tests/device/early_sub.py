# Imported by install_client.py BEFORE certpin.install(): classes derived from
# the firmware's SSLContext, reachable in the ways a library may hold them.
# Their instances are the firmware's own contexts, which install() cannot pin:
# it must make every one of them refuse, and name them. Each trusts the CA the
# test names (CONFIG "sub_ca": a DER path), as a library loading its own CAs
# would: without certpin such a context accepts any server of that CA.
import json
import sys

try:
    import tls
except ImportError:  # v1.22: the C module ssl
    import ssl as tls


def trust(ctx):
    p = json.load(open(sys.argv[1])).get("sub_ca")
    if p:
        with open(p, "rb") as f:
            der = f.read()
        try:
            ctx.load_verify_locations(cadata=der)  # v1.22: a positional argument is a file path
        except TypeError:
            ctx.load_verify_locations(der)
    return ctx


class Ctx(tls.SSLContext):  # a library's own client context, in a module global
    def __init__(self):
        super().__init__(tls.PROTOCOL_TLS_CLIENT)
        trust(self)


def _hidden():
    class Hidden(tls.SSLContext):  # no module global holds this class itself
        pass

    return Hidden


class Deeper(_hidden()):  # derived from a class only this base tuple holds
    pass


class Holder:
    ctx_class = _hidden()  # a class held as a class attribute


class _Box:
    pass


BOX = _Box()
BOX.ctx_class = _hidden()  # ... and as an object's attribute

class Sneaky(tls.SSLContext):
    def open(self, sock, server_hostname):  # the firmware's wrap_socket under another name
        return super().wrap_socket(sock, server_hostname=server_hostname)


EARLY = Ctx()  # an instance made before install()
SERVER = Deeper(tls.PROTOCOL_TLS_SERVER)  # a server context of such a class: refused too (install() cannot tell)
