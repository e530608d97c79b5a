# Pinned TLS on firmware without verify_callback (MicroPython < 1.23). Only
# such firmware loads this module (certpin.SSLContext hands over when tls.SSLContext
# or its verify_callback is missing; install() when the firmware has none),
# so it costs nothing on 1.23 and later.
#
# This firmware cannot show certpin the chain during the handshake. Where
# mbedTLS keeps the peer certificate, getpeercert(True) gives the leaf once
# the handshake is over: it is checked then, before the socket reaches the
# caller and before any application byte is written. With cadata, a pin above
# the leaf counts only when every certificate in cadata is pinned for the
# host: mbedTLS validated the chain (CERT_REQUIRED) up to one of them, so a
# pinned key is in it. Where getpeercert is missing or returns nothing, the
# connection is refused.
#
# What each firmware offers (extmod/modssl_mbedtls.c, extmod/modussl_mbedtls.c;
# measured on real unix builds of v1.20.0 and v1.22.2):
#   1.22       ssl.SSLContext without verify_callback; load_verify_locations
#              (cafile=None, cadata=None): a positional argument is a file path;
#              getpeercert only where mbedTLS keeps the peer certificate
#              (MBEDTLS_SSL_KEEP_PEER_CERTIFICATE: ESP-IDF, not rp2 or unix)
#   1.21       no SSLContext, as 1.20; mbedTLS 2.28: getpeercert(True) returns
#              None where mbedTLS does not keep the certificate
#   1.20       ussl.wrap_socket(sock, server_side=False, key=None, cert=None,
#              server_hostname=None, cert_reqs=CERT_NONE, cadata=None,
#              do_handshake=True), all keywords after sock; cadata is one
#              certificate; a failed CA validation is an OSError carrying
#              mbedTLS's X509 code (with its text where the port keeps error
#              strings); mbedTLS 2.16 always keeps the peer certificate, so
#              getpeercert(True) gives the leaf on every port
#   1.19       the same without cert_reqs, cadata and the CERT_* constants (they
#              came with 1.20): no CA validation at all
#
# The handshake always completes inside wrap_socket here: do_handshake_on_connect
# =False is ignored. Without verify_callback the leaf can only be checked after
# the handshake, and a deferred handshake would be finished by the first write,
# which sends the application's bytes in the same call. (On a non-blocking
# socket these firmwares retry the handshake until it is done.)
from certpin import Error, _use, match, spki_sha256
from certpin import tls


def check(ca):
    # install(): an Error now for cadata this firmware cannot use (v1.19-v1.21
    # parse it only when connecting).
    _ctx(ca, None)


def _ctx(ca, cert):
    # (context, None) on 1.22: a client SSLContext with ca loaded, CERT_REQUIRED
    # with ca, else CERT_NONE (no callback to run, and mbedTLS still keeps the
    # leaf for getpeercert); (None, keywords for wrap_socket) on 1.19-1.21.
    # cert: (certificate, key) to present (install(): mutual TLS), or None.
    if not hasattr(tls, "SSLContext"):
        kw = {}
        if ca:
            if not hasattr(tls, "CERT_REQUIRED"):
                raise Error(
                    "cadata: this firmware cannot validate a certificate chain (ussl.wrap_socket takes"
                    " cadata from MicroPython 1.20): drop cadata to check the leaf pin alone, or upgrade"
                )
            if len(ca) > 1:
                raise Error(
                    "cadata: this firmware loads one CA certificate (MicroPython < 1.22): pass the one"
                    " that issued the server's chain, or upgrade"
                )
            kw = {"cert_reqs": tls.CERT_REQUIRED, "cadata": ca[0]}
        if cert:
            kw["cert"], kw["key"] = cert
        return None, kw
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    for der in ca or ():
        try:
            try:
                c.load_verify_locations(cadata=der)  # 1.22: a positional argument is a FILE PATH
            except TypeError:  # a firmware taking one positional argument and no keywords, as 1.23+
                c.load_verify_locations(der)
        except ValueError:
            raise Error("cadata: a certificate this firmware cannot load (DER expected)")
    if cert:
        c.load_cert_chain(*cert)
    c.verify_mode = tls.CERT_REQUIRED if ca else tls.CERT_NONE
    return c, None


def wrap(sock, host, ca, cert, st):
    # The firmware's TLS socket once its handshake is complete (validated
    # against ca if given). st: the connection's Conn, or install()'s CA-only
    # check (others="ca"): a refused handshake becomes its PinError.
    c, kw = _ctx(ca, cert)
    try:
        if c is None:
            return tls.wrap_socket(sock, server_hostname=host, **kw)
        return c.wrap_socket(sock, server_hostname=host)
    except (OSError, ValueError) as e:
        if c is None and isinstance(e, ValueError):  # 1.20-1.21 raise it only for cadata they cannot parse
            raise Error("cadata: a certificate this firmware cannot load (DER expected): %s" % (e,))
        n = e.args[0] if e.args else 0
        if isinstance(e, OSError) and isinstance(n, int) and -0x3000 < n <= -0x2000:
            # 1.19-1.21: an mbedTLS X509 code (-0x2700: verification failed),
            # with its text where the port keeps mbedTLS's error strings.
            e = ValueError("%s (mbedTLS -0x%04X)" % (e.args[1] if len(e.args) > 1 else "X509 error", -n))
        st.refused(e)  # a CA validation failure: PinError; a network error passes through
        raise


def wrap_socket(st, sock, host):
    # st: the connection's Conn (an unpinned host was refused when it was
    # made, before any traffic).
    ctx = st.ctx
    ca = ctx.cadata
    s = wrap(sock, host, ca, ctx._cert, st)
    try:
        f = getattr(s, "getpeercert", None)
        try:
            der = f(True) if f else None
        except Exception as e:  # MemoryError copying the certificate, or a firmware bug
            der = e
        if not isinstance(der, (bytes, bytearray)) or not der:
            m = "%s: this firmware has neither verify_callback (MicroPython >= 1.23) nor a getpeercert(True)" % host
            if isinstance(der, Exception):
                m += " that works (%r)" % (der,)
            elif f:
                m += " that returns the certificate (its mbedTLS does not keep it)"
            m += ": pins cannot be checked; upgrade to MicroPython >= 1.23"
            _use("_refuse", "notify", st, "not_checked", True, m)
            raise Error(m)
        st.see(der, 0)
        if ca and st.matched < 0 and st.pins and st.error is None:
            _anchor(st, ca)
        st.finish()
    except BaseException:
        s.close()
        raise
    return s


def _anchor(st, ca):
    # The leaf matched no pin, but mbedTLS validated the chain (CERT_REQUIRED)
    # up to a certificate of cadata. When every one of them is pinned for the
    # host, that trust anchor is pinned, so the chain holds a pinned key: the
    # connection passes. (The time floor does not move: the anchor's date is
    # not the server's.) Otherwise st.late says why a pin above the leaf could
    # not count (certpin._refuse.fail).
    ps, r = st.ps, st.r
    j = -1
    for i, der in enumerate(ca):
        try:
            j = match(ps, r, der, spki_sha256(der))
        except Error:
            j = -1
        if j < 0:
            st.late = (
                "\n  this firmware shows certpin only the leaf (no verify_callback before MicroPython 1.23):"
                " a pin on an intermediate or root counts only when every certificate in cadata is pinned"
                " for %s (the validated chain then ends at a pinned key), and cadata certificate %d of %d"
                " is not; pin the leaf's key, pin every cadata certificate, or upgrade" % (st.host, i + 1, len(ca))
            )
            return
    st.matched = j
