# install() and uninstall() of certpin/_install.py, loaded for one call and
# dropped again on a device: only the stand-in in _install.py stays resident.
#
# install() puts the stand-in where applications find the firmware's TLS
# module (sys.modules), then walks the globals of every loaded module and of
# __main__: the firmware module, its SSLContext class and (v1.22) its
# wrap_socket become the stand-in's (micropython-lib's ssl holds `tls` that
# way); uninstall() walks back. A TLS context object made before install()
# cannot be converted: the ones found in module globals (or two attributes
# down) make install() raise. docs/install.md lists what no walk can reach.
import sys

from certpin import Error

_i = sys.modules["certpin._install"]  # the stand-in, and the policy it enforces


def install(pinset, cadata, others):
    if sys.implementation.name != "micropython":
        raise Error("certpin.install() is MicroPython-only; on CPython pass certpin.SSLContext(pinset) where code takes an SSLContext")
    tls = _i._tls
    t = tls.tls
    if not hasattr(t, "SSLContext"):
        raise Error("this firmware has no SSLContext (MicroPython < 1.22): pins cannot be checked; upgrade it")
    found = ()
    if _i._saved is None:
        # Patch first, under a policy that refuses: a pinset that fails to
        # load below must not leave the application connecting unpinned (on a
        # board main.py runs even when boot.py raised).
        _i._policy = Error("install() was interrupted")
        found = _patch(t)
    try:
        if others != "refuse" and others != "ca":
            raise Error('others: expected "refuse" or "ca", not %r' % (others,))
        if pinset is None:
            from certpin import load

            pinset = load()
        pinset, cadata, _ = tls.context_args(pinset, cadata, None)
        if others == "ca" and not cadata:
            raise Error('others="ca" needs cadata: the CA certificates that hosts outside the pinset are validated against')
        if cadata:
            tls._context(cadata)  # a certificate the firmware cannot load fails now, not at the first connection
    except Exception as e:
        _i._policy = e
        raise
    _i._policy = (pinset, cadata, others)
    if found:
        raise Error(
            "certpin.install() is active, but TLS contexts made before it are not pinned: %s; "
            "call certpin.install() before they are made (in boot.py)" % ", ".join(found)
        )


def _patch(t):
    g = _i.__dict__
    for k in dir(t):  # CERT_*, PROTOCOL_*, MBEDTLS_VERSION: what `from tls import ...` expects
        if k[0] != "_" and k not in g:
            g[k] = getattr(t, k)
    saved = _i._saved = []
    for n in (t.__name__, "ussl"):  # "tls" ("ssl" on v1.22); ussl for old libraries
        saved.append((n, sys.modules.get(n)))
        sys.modules[n] = _i
    pairs = [(t, _i), (t.SSLContext, _i.SSLContext)]
    if hasattr(t, "wrap_socket"):  # v1.22's C ssl
        pairs.append((t.wrap_socket, _i.wrap_socket))
    return _rebind(pairs, t.SSLContext)


def uninstall():
    if _i._saved is None:
        return
    _i._policy = None
    for n, prev in _i._saved:
        if sys.modules.get(n) is _i:
            if prev is None:
                del sys.modules[n]
            else:
                sys.modules[n] = prev
    _i._saved = None
    t = _i._tls.tls
    _rebind(((_i, t), (_i.SSLContext, t.SSLContext)), None)


def _rebind(pairs, ctx):
    # In the globals of __main__ and of every module but certpin's, each
    # pair's first object becomes its second. With ctx (the firmware's
    # SSLContext type): returns where a context made earlier is held.
    import __main__  # the script running (main.py, the REPL): not in sys.modules

    found = []
    for name in ["__main__"] + list(sys.modules):
        m = sys.modules[name] if name in sys.modules else __main__
        if m is _i or name == "certpin" or name.startswith("certpin."):
            continue
        d = getattr(m, "__dict__", None)
        if type(d) is not dict:
            continue
        for k in d:
            v = d[k]
            for a, b in pairs:
                if v is a:
                    d[k] = b
            if ctx is not None and _made(v, ctx, 2):
                found.append(name + "." + k)
    return found


def _made(v, ctx, depth):
    # v is a context of the firmware's, or holds one up to `depth` attributes
    # down (ssl.SSLContext holds one in _context; a client object its context).
    if type(v) is ctx:
        return True
    d = getattr(v, "__dict__", None)
    if depth and type(d) is dict and type(v) is not type(sys):  # not a module's globals
        for k in d:
            if _made(d[k], ctx, depth - 1):
                return True
    return False
