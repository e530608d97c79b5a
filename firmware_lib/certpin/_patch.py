# install() and uninstall() of certpin/_install.py, loaded for one call and
# dropped again on a device: only the stand-in in _install.py stays resident.
#
# install() puts the stand-in where applications find the firmware's TLS
# module (sys.modules), then, on every call, walks the globals of every loaded
# module and of __main__, and the attributes of the classes and objects they
# hold, two levels down: the firmware module, its SSLContext class and its
# wrap_socket (v1.19-v1.22) become the stand-in's (micropython-lib's ssl holds
# `tls` that way). What no rebinding can pin is made to refuse, or named:
# a class derived from the firmware's SSLContext (its instances are the
# firmware's contexts) refuses every connection from then on, and a context
# made before install() (an object, which cannot be converted) is named;
# install() raises naming both. uninstall() walks back. docs/install.md lists
# what no walk can reach.
import sys

from certpin import Error

_i = sys.modules["certpin._install"]  # the stand-in, and the policy it enforces
_NAMES = 8  # at most this many places named in install()'s error


def install(pinset, cadata, others):
    why = _i._why
    if sys.implementation.name != "micropython":
        raise Error(why(9))
    tls = _i._tls
    t = tls.tls
    if _i._saved is None:
        # Patch first, under a policy that refuses: a pinset that fails to
        # load below must not leave the application connecting unpinned (on a
        # board main.py runs even when boot.py raised).
        _i._policy = Error("install() was interrupted")
        _patch(t)
    # On every call, not only the first: what was imported or made since.
    found = _rebind(_pairs(t, _i), t.SSLContext if hasattr(t, "SSLContext") else None)
    try:
        if others != "refuse" and others != "ca":
            raise Error(why(10, others))
        if pinset is None:
            from certpin import load

            pinset = load()
        pinset, cadata, _ = tls.context_args(pinset, cadata, None)
        if others == "ca" and not cadata:
            raise Error(why(11))
        # Firmware without verify_callback (< 1.23): certpin/_old.py does its TLS.
        old = not hasattr(t, "SSLContext") or not hasattr(t.SSLContext(t.PROTOCOL_TLS_CLIENT), "verify_callback")
        if old:
            from certpin._old import check

            check(cadata)  # what this firmware cannot do with cadata fails now, not at the first connection
        elif cadata:
            tls._context(cadata)  # a certificate the firmware cannot load fails now
    except Exception as e:
        _i._policy = e
        raise
    _i._policy = (pinset, cadata, others, old)
    if found:
        if len(found) > _NAMES:
            found[_NAMES:] = ["and %d more" % (len(found) - _NAMES)]
        raise Error(why(12, ", ".join(found)))


def _pairs(t, s):
    # (the firmware's object, the stand-in's) for module t and stand-in s, or
    # the other way round (uninstall).
    p = [(t, s)]
    for k in ("SSLContext", "wrap_socket"):  # wrap_socket: the C function of v1.19-v1.22
        if hasattr(t, k) and hasattr(s, k) and getattr(t, k) is not getattr(s, k):
            p.append((getattr(t, k), getattr(s, k)))
    return p


def _patch(t):
    g = _i.__dict__
    for k in dir(t):  # CERT_*, PROTOCOL_*, MBEDTLS_VERSION: what `from tls import ...` expects
        if k[0] != "_" and k not in g:
            g[k] = getattr(t, k)
    saved = _i._saved = []
    n = t.__name__  # "tls"; the C module "ssl" of v1.21-v1.22, "ussl" of v1.19-v1.20
    for n in (n, "ssl" if n == "ussl" else "ussl"):  # old libraries import ussl; v1.20 code imports ssl too
        saved.append((n, sys.modules.get(n)))
        sys.modules[n] = _i


def uninstall():
    if _i._saved is None:
        return
    _i._policy = None
    for e in _i._saved:
        if len(e) == 3:  # a class install() made refuse: its own __init__ and wrap_socket again
            c, k, prev = e
            try:
                if prev is None:
                    delattr(c, k)
                else:
                    setattr(c, k, prev)
            except Exception:
                pass
            continue
        n, prev = e
        if sys.modules.get(n) is _i:
            if prev is None:
                del sys.modules[n]
            else:
                sys.modules[n] = prev
    _i._saved = None
    t = _i._tls.tls
    _rebind(_pairs(_i, t), None)


def _rebind(pairs, ctx):
    # In the globals of __main__ and of every module but certpin's, and in the
    # attributes of the classes and objects they hold, two levels down: each
    # pair's first object becomes its second. With ctx (the firmware's
    # SSLContext type): returns where a context made earlier, or a class
    # derived from ctx, is held; such classes now refuse (_refuse).
    import __main__  # the script running (main.py, the REPL): not in sys.modules

    found = []
    for name in ["__main__"] + list(sys.modules):
        m = sys.modules[name] if name in sys.modules else __main__
        if m is _i or name == "certpin" or name.startswith("certpin."):
            continue
        d = getattr(m, "__dict__", None)
        if type(d) is dict:
            _walk(None, d, pairs, ctx, 2, name, found)
    return found


def _walk(o, d, pairs, ctx, depth, where, found):
    # d: the globals of a module (o None) or the __dict__ of object or class o.
    mod = type(sys)
    for k in list(d):  # a copy: setattr on a class may change its dict
        v = d[k]
        for a, b in pairs:
            if v is a:
                try:
                    if o is None:
                        d[k] = b
                    else:
                        setattr(o, k, b)
                except Exception:  # a class or object that takes no new attributes: it keeps a, and is named
                    found.append("%s.%s" % (where, k))
        if type(v) is mod or v is ctx:
            continue
        try:
            if ctx is not None:
                c = type(v)
                if c is ctx:  # a context made before install(): it stays the firmware's
                    found.append("%s.%s" % (where, k))
                    continue
                if isinstance(v, type):
                    c = v
                if c is not ctx and issubclass(c, ctx):
                    found.append("%s.%s (%s derived from SSLContext)" % (where, k, "a class" if c is v else "an instance of " + c.__name__))
                    _refuse(c, ctx)  # may raise (a class that takes no attributes): it is named all the same
                    continue
            if depth:
                e = getattr(v, "__dict__", None)
                if type(e) is dict:
                    _walk(v, e, pairs, ctx, depth - 1, where + "." + k, found)
        except Exception:  # an object whose attributes cannot be read: nothing to rebind there
            pass


def _refuse(c, ctx):
    # Class c and every class between it and ctx make no context and connect
    # none (__init__ and wrap_socket refuse): their instances are the
    # firmware's contexts, which install() cannot pin (mbedTLS would run their
    # handshakes unchecked). __init__ too, so that no method reaching the
    # firmware's wrap_socket through super() under another name runs either.
    s = _i._sub
    for b in getattr(c, "__bases__", ()):
        if b is not ctx and issubclass(b, ctx):
            _refuse(b, ctx)
    d = getattr(c, "__dict__", None)
    for k in ("__init__", "wrap_socket"):
        own = d.get(k) if type(d) is dict else None
        if own is not s:
            setattr(c, k, s)  # raises for a class that takes no attributes: it is named all the same
            _i._saved.append((c, k, own))
