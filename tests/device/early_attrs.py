# Imported by install_client.py BEFORE certpin.install(): references to the
# firmware's TLS module, its SSLContext class and its wrap_socket held as
# attributes of a class and of objects (one and two levels below a module
# global), not as module globals. install() must rebind them too.
try:
    import tls
except ImportError:  # v1.19-v1.22: the C module ssl (ussl on v1.20)
    import ssl as tls


class Holder:
    tls_module = tls
    ctx_class = getattr(tls, "SSLContext", None)  # v1.19-v1.21 have none
    wrap = getattr(tls, "wrap_socket", None)  # the C function of v1.19-v1.22


class _Obj:
    pass


OBJ = _Obj()
OBJ.inner = _Obj()
OBJ.inner.tls_module = tls  # two levels down
