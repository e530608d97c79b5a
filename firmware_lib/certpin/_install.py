# certpin.install(): every TLS client connection of the application pinned,
# through the libraries it already uses (requests, mip, asyncio, MQTT clients).
#
# This module is also what install() puts where those libraries find the
# firmware's TLS module: sys.modules["tls"] and ["ussl"] from v1.23 (old
# libraries such as urequests and umqtt.simple 1.3.4 import ussl, which v1.23+
# firmware has not), ["ssl"] and ["ussl"] on v1.19-v1.22, whose C module has
# those names (_patch.py). Its SSLContext gives each client connection to
# certpin's pinned SSLContext whatever verify_mode the library set (requests
# sets CERT_NONE); hosts outside the pinset are refused or, with others="ca",
# CA-validated. Server contexts are the firmware's own, untouched. Firmware
# without SSLContext (v1.19-v1.21) has only wrap_socket, and so has this.
#
# What stays resident is only this stand-in and the policy; install() and
# uninstall() do their work in _patch.py, loaded for the call and dropped on a
# device (measured: `make bench`).
import sys

from certpin import Error, PinError, _use

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

# Refusals, by number: their text is in _installmsg.py, loaded only on failure
# (each message kept here would be resident for as long as install() is).
_DTLS = const(0)
_CALLBACK = const(1)
_SERVER_SIDE = const(2)
_GONE = const(3)
_FAILED = const(4)
_NO_HOST = const(5)
_UNPINNED = const(6)
_CA_FAILED = const(7)
_SUBCLASS = const(8)

_tls = sys.modules["certpin"]  # certpin's TLS layer: its `tls` is the firmware's module, bound before any install()

_policy = None  # (pinset, cadata, others, old firmware) | the exception install() failed with | None
# While installed: [(sys.modules key, previous entry or None)], and for each
# class install() made refuse (_sub): (the class, "__init__" or "wrap_socket",
# its own one or None).
_saved = None


class SSLContext:
    # Servers get the firmware's context (passes through untouched); TLS
    # clients get this pinned one; anything else (a DTLS client) is refused.
    # A class derived from this one (after install()) makes pinned clients
    # only: its __init__ may take other arguments, and passes the protocol on.
    def __new__(cls, *a, **k):
        t = _tls.tls
        p = a[0] if a else None
        if cls is not SSLContext or p == t.PROTOCOL_TLS_CLIENT:
            return object.__new__(cls)
        if p == t.PROTOCOL_TLS_SERVER or p == getattr(t, "PROTOCOL_DTLS_SERVER", None):
            return t.SSLContext(p)
        raise Error(_why(_DTLS, p))

    def __init__(self, protocol):
        if protocol != _tls.tls.PROTOCOL_TLS_CLIENT:  # from a derived class: a server or DTLS context
            raise Error(_why(_DTLS, protocol))
        self.verify_mode = _tls.tls.CERT_REQUIRED  # kept for callers that read it; never used
        self._cert = None

    def load_cert_chain(self, certfile, keyfile):
        self._cert = (certfile, keyfile)  # a client certificate (mutual TLS) is still sent

    def load_verify_locations(self, *a, **k):
        pass  # the pinset and install()'s cadata decide, not the library's CAs

    @property
    def verify_callback(self):
        return None

    @verify_callback.setter
    def verify_callback(self, f):
        if f is not None:
            raise Error(_why(_CALLBACK))

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        try:
            if server_side:  # mbedTLS would run a client handshake without pins
                raise Error(_why(_SERVER_SIDE))
            return _client(self._cert, sock, server_hostname, do_handshake_on_connect)
        except Error:
            sock.close()  # a refused socket is never used again (requests closes only on OSError)
            raise


if not hasattr(_tls.tls, "SSLContext"):  # v1.19-v1.21: the firmware has none, so neither has its stand-in
    del SSLContext


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=None, cadata=None, server_hostname=None, do_handshake=True):
    # The module-level wrap_socket of firmware < 1.23 and of the libraries
    # written for it (urequests, umqtt.simple 1.3.4). Clients are pinned; a
    # server is the firmware's own, untouched.
    t = _tls.tls
    if server_side:
        if hasattr(t, "wrap_socket"):  # firmware < 1.23: its own C function (1.19 takes no cert_reqs, cadata)
            kw = {}
            if cert_reqs is not None:
                kw["cert_reqs"] = cert_reqs
            if cadata:
                kw["cadata"] = cadata
            return t.wrap_socket(sock, server_side=True, key=key, cert=cert, do_handshake=do_handshake, **kw)
        c = t.SSLContext(t.PROTOCOL_TLS_SERVER)
        if key or cert:
            c.load_cert_chain(cert, key)
        if cadata:
            c.load_verify_locations(cadata)
        c.verify_mode = t.CERT_NONE if cert_reqs is None else cert_reqs
        return c.wrap_socket(sock, server_side=True, do_handshake_on_connect=do_handshake)
    try:
        return _client((cert, key) if key or cert else None, sock, server_hostname, do_handshake)
    except Error:
        sock.close()  # as SSLContext.wrap_socket above
        raise


def _sub(self, *a, **k):
    # __init__ and wrap_socket of a class derived from the firmware's
    # SSLContext before install() (_patch.py): install() cannot pin its
    # contexts, so it makes none and connects none (and install() names it).
    try:
        a[0].close()  # wrap_socket(sock, ...): a refused socket is closed
    except Exception:
        pass
    raise Error(_why(_SUBCLASS, type(self).__name__))


class _CA:
    # What certpin's Deferred needs of a connection to a host outside the
    # pinset (others="ca"): CA refusals become PinError, like pinned ones.
    def __init__(self, host):
        self.host = host

    def finish(self):
        pass

    def refused(self, e):
        if isinstance(e, ValueError) or "X509" in str(e):
            raise PinError(_why(_CA_FAILED, self.host, e))


def _client(cert, sock, host, hs):
    p = _policy
    if type(p) is not tuple:
        if p is None:
            raise Error(_why(_GONE))
        raise (type(p) if isinstance(p, Error) else Error)(_why(_FAILED, p))
    ps, cadata, others, old = p
    if not isinstance(host, str) or not host:
        raise PinError(_why(_NO_HOST))
    if ps._find(host) >= 0:  # a PinError for a name mbedTLS or getaddrinfo would read differently (a NUL)
        c = _tls.SSLContext(ps, cadata)
        c._cert = cert
        return c.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=hs)
    if others != "ca":
        raise PinError(_why(_UNPINNED, ps, host))
    st = _CA(host)
    if old:  # no verify_callback: the handshake completes in wrap_socket there
        from certpin._old import wrap

        return wrap(sock, host, cadata, cert, st)
    c = _tls._context(cadata)
    if cert:
        c.load_cert_chain(*cert)
    try:
        s = c.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=hs)
    except (OSError, ValueError) as e:
        st.refused(e)
        raise
    if hs:
        return s
    from certpin._deferred import Deferred

    return Deferred(s, st)


def __getattr__(name):
    # Everything else the firmware's module has (CERT_*, PROTOCOL_*,
    # MBEDTLS_VERSION): what `import tls` users and `from tls import ...` expect.
    t = _tls.tls
    if name == "__all__":  # `from tls import *` (micropython-lib's ssl): the firmware's names, ours where we have them
        return [n for n in dir(t) if n[0] != "_"]
    return getattr(t, name)


def _why(code, *a):
    return _use("_installmsg", "install", code, *a)


def install(pinset=None, cadata=None, others="refuse"):
    """Pin every TLS client connection made through the tls and ssl modules.

    pinset: a Pinset, or None to load /certpin.json. cadata: a DER CA
    certificate or a list (CA validation as in certpin.SSLContext). others:
    what happens to a host outside the pinset: "refuse" (PinError) or "ca"
    (allowed after CA validation against cadata). Calling it again replaces
    the policy; if it raises, every TLS client connection is refused until a
    call succeeds or uninstall(). MicroPython only.
    """
    _use("_patch", "install", pinset, cadata, others)


def uninstall():
    """Undo install(): the firmware's TLS module again, everywhere install() put this one."""
    _use("_patch", "uninstall")
