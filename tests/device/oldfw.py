# Stand-ins for the TLS modules of MicroPython 1.19-1.22, built around the REAL
# TLS of the unix port these tests run on (tls, mbedTLS): every handshake is a
# real one against the test servers; only the Python API is made to look like
# the old firmware's. install() must run before `import certpin`. Real builds
# of v1.20 and v1.22 (../shared/runtimes) run the same tests without stand-ins
# (tests/test_old_firmware.py); the stand-ins cover what has no build there
# (1.19, 1.21, a port without error strings) and were checked against them.
#
# Sources for each behaviour (MicroPython repository):
#   1.22       extmod/modssl_mbedtls.c at v1.22.x: C module `ssl` (no `tls`) with
#              SSLContext(protocol); verify_mode; no verify_callback (storing an
#              attribute the C type does not know raises AttributeError);
#              load_verify_locations(cafile=None, cadata=None), where a positional
#              argument is a file path (measured on a v1.22.2 build: DER passed
#              positionally fails with OSError(2), ENOENT);
#              wrap_socket(sock, *, server_side, do_handshake_on_connect,
#              server_hostname); a failed CA validation is a ValueError with
#              mbedTLS's verify text, as in the real module under test.
#   1.20-1.21  extmod/modussl_mbedtls.c at v1.20.0 (1.21 renamed it
#              modssl_mbedtls.c, same API): no SSLContext; module ussl (1.20, with
#              `ssl` a weak link to it) or ssl (1.21, `ussl` an alias);
#              wrap_socket(sock, *, key, cert, server_side, server_hostname,
#              cert_reqs=CERT_NONE, cadata=None, do_handshake=True); CERT_NONE,
#              CERT_OPTIONAL, CERT_REQUIRED; cadata is parsed by
#              mbedtls_x509_crt_parse (one DER certificate; garbage:
#              ValueError("invalid cert") from wrap_socket); every handshake error
#              goes through mbedtls_raise_error: OSError(errno) for socket errors,
#              else OSError(mbedTLS code, mbedTLS text), or OSError(code) alone on
#              a port built without MBEDTLS_ERROR_C. A failed CA validation is
#              OSError(-0x2700, "X509 - Certificate verification failed, ...").
#   1.19       the same wrap_socket without cert_reqs, cadata and the CERT_*
#              constants (they came in after v1.19.1: micropython PR #8252), so
#              passing them is a TypeError. The unix port of 1.19 used axTLS, which
#              has no getpeercert (extmod/modussl_axtls.c).
#   getpeercert(True): the leaf's DER where mbedTLS keeps the peer certificate.
#              1.20 bundles mbedTLS 2.16, which always keeps it: the leaf on every
#              port (measured on the real v1.20 unix build). 1.21 and 1.22 bundle
#              mbedTLS 2.28, which keeps it only with MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
#              (ESP-IDF's default, so ESP32; not rp2 or unix): without it 1.21
#              returns None (mbedtls_ssl_get_peer_cert gives NULL; the NULL check is
#              in mod_ssl_getpeercert) and 1.22 does not compile the method in at
#              all (measured on the real v1.22.2 builds with and without the
#              option). getpeercert(False) raises NotImplementedError.
#   Sockets: read, readinto, readline, write, setblocking, close, and the stream
#              protocol (select.poll works on them); no recv/send.
#
# How getpeercert gets the leaf here: the unix port's mbedTLS does not keep the
# peer certificate, so the stand-ins run the real SSLContext with a
# verify_callback of their own (hidden from certpin) that copies the depth-0
# certificate, the one the server sent first, which is what
# mbedtls_ssl_get_peer_cert returns. The real tls calls no callback with
# CERT_NONE, so a CERT_NONE request runs as CERT_OPTIONAL: both end the
# handshake the same way (chain and hostname errors ignored).
import io
import sys

import tls as real

_CERT_NONE = real.CERT_NONE
_CERT_OPTIONAL = real.CERT_OPTIONAL
_CERT_REQUIRED = real.CERT_REQUIRED
_X509_VERIFY_FAILED = -0x2700

cfg = {"peercert": "leaf", "error_strings": True}


def _context(cert_reqs):
    # A real context that records the leaf in a per-connection holder.
    c = real.SSLContext(real.PROTOCOL_TLS_CLIENT)
    c.verify_mode = _CERT_OPTIONAL if cert_reqs == _CERT_NONE else cert_reqs
    leaf = []

    def seen(cert, depth):
        if depth == 0:
            leaf.append(bytes(cert))
        return 0  # mbedTLS's own verdict stands

    c.verify_callback = seen
    return c, leaf


class Sock(io.IOBase):
    # The socket 1.19-1.22 return: no getpeercert (see WithPeercert).
    def __init__(self, s, leaf):
        self._s, self._leaf, self._p = s, leaf, None

    def read(self, *a):
        return self._s.read(*a)

    def readinto(self, *a):
        return self._s.readinto(*a)

    def readline(self):
        return self._s.readline()

    def write(self, b):
        return self._s.write(b)

    def setblocking(self, flag):
        return self._s.setblocking(flag)

    def close(self):
        self._s.close()

    def ioctl(self, req, arg):
        # The C socket's stream protocol, so select.poll and asyncio can wait on it.
        if req == 3:  # MP_STREAM_POLL
            import select

            if self._p is None:
                self._p = select.poll()
                self._p.register(self._s, arg)
            else:
                self._p.modify(self._s, arg)
            for _, ev in self._p.ipoll(0):
                return ev
            return 0
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return -1


class WithPeercert(Sock):
    def getpeercert(self, binary_form):
        if not binary_form:
            raise NotImplementedError
        if cfg["peercert"] == "none":
            return None
        return self._leaf[0] if self._leaf else None


def _sock(s, leaf):
    return (Sock if cfg["peercert"] == "absent" else WithPeercert)(s, leaf)


def _no_verify_callback(self):
    raise AttributeError("verify_callback")


class SSLContext122:
    # ssl.SSLContext of 1.22.
    verify_callback = property(_no_verify_callback)  # neither readable nor settable

    def __init__(self, protocol):
        self._protocol = protocol
        self._cadata = []
        self.verify_mode = _CERT_REQUIRED  # a client context starts at CERT_REQUIRED

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile is not None:  # read as a path: DER bytes given positionally -> OSError(2)
            with open(cafile, "rb") as f:
                cadata = f.read()
        real.SSLContext(real.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata)  # ValueError('invalid cert') now
        self._cadata.append(cadata)

    def wrap_socket(self, sock, *, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        c, leaf = _context(self.verify_mode)
        for d in self._cadata:
            c.load_verify_locations(d)
        s = c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake_on_connect)
        return _sock(s, leaf)


def _wrap_socket_120(sock, *, key=None, cert=None, server_side=False, server_hostname=None,
                     cert_reqs=_CERT_NONE, cadata=None, do_handshake=True):
    c, leaf = _context(cert_reqs)
    if cadata is not None:
        c.load_verify_locations(cadata)  # ValueError('invalid cert'), as 1.20's socket_new raises it
    try:
        s = c.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=do_handshake)
    except ValueError:
        # The real module reports a failed CA validation as ValueError(verify
        # text); 1.20-1.21 pass MBEDTLS_ERR_X509_CERT_VERIFY_FAILED to
        # mbedtls_raise_error.
        if cfg["error_strings"]:
            raise OSError(_X509_VERIFY_FAILED, "X509 - Certificate verification failed, e.g. CRL, CA or signature check failed")
        raise OSError(_X509_VERIFY_FAILED)
    return _sock(s, leaf)


def _wrap_socket_119(sock, *, key=None, cert=None, server_side=False, server_hostname=None, do_handshake=True):
    return _wrap_socket_120(sock, server_hostname=server_hostname, do_handshake=do_handshake)


class _Module:
    pass


def install(version, peercert="leaf", error_strings=True, ssl_alias=True):
    """Make `import tls` fail and `ssl`/`ussl` be the given firmware's module.

    peercert: "leaf" (ESP32; every 1.20), "none" (1.21 without the kept
    certificate), "absent" (no getpeercert method: 1.22 without it). ssl_alias: False for a port where only
    `ussl` imports (1.19/1.20 without the weak link).
    """
    cfg["peercert"] = peercert
    cfg["error_strings"] = error_strings
    m = _Module()
    m.__name__ = "ussl" if version in ("1.19", "1.20") else "ssl"  # the C module's own name (1.21 renamed it)
    if version == "1.22":
        m.SSLContext = SSLContext122
        m.PROTOCOL_TLS_CLIENT = real.PROTOCOL_TLS_CLIENT
        m.PROTOCOL_TLS_SERVER = real.PROTOCOL_TLS_SERVER
    elif version in ("1.20", "1.21"):
        m.wrap_socket = _wrap_socket_120
    elif version == "1.19":
        m.wrap_socket = _wrap_socket_119
    else:
        raise ValueError(version)
    if version != "1.19":
        m.CERT_NONE, m.CERT_OPTIONAL, m.CERT_REQUIRED = _CERT_NONE, _CERT_OPTIONAL, _CERT_REQUIRED
    hidden = ["tls"] if ssl_alias else ["tls", "ssl"]
    for name in ("ssl", "ussl"):
        if name not in hidden:
            sys.modules[name] = m
    import builtins

    imp = builtins.__import__

    def no_tls(name, *a):
        # The unix port has tls built in; old firmware has no such module.
        if name in hidden:
            raise ImportError("no module named '%s'" % name)
        return imp(name, *a)

    builtins.__import__ = no_tls
    return m
