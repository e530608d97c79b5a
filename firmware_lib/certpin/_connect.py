# certpin.connect(): a connected, pinned TLS socket, on both runtimes (the
# SSLContext is certpin's: MicroPython's from certpin/__init__.py, CPython's
# from _cpy.py). Loaded for the call and dropped again on a device: most
# devices pin through install() or SSLContext and never pay for it resident;
# one that calls connect() loads it (a few hundred bytes, ~1 ms) per call,
# against a TLS handshake's tens of milliseconds.
import socket

from certpin import _lookup


def open_socket(ctx_class, host, port, pinset, cadata, timeout):
    from certpin import load

    ctx = ctx_class(load() if pinset is None else pinset, cadata)
    ctx.port = port  # for the journal, should the connection be refused
    _lookup(ctx.pinset, host)  # refuse an unpinned host before any network traffic
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
    try:
        if timeout is not None:
            s.settimeout(timeout)
        s.connect(ai[-1])
        return ctx.wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise


def connect(host, port=443, pinset=None, cadata=None, timeout=None):
    """A connected TLS socket to host:port whose certificate matched the pinset."""
    from certpin import SSLContext

    return open_socket(SSLContext, host, port, pinset, cadata, timeout)
