# Pinned TLS on firmware without verify_callback (MicroPython < 1.23). Only
# such firmware loads this module (certpin.SSLContext hands over when tls.SSLContext
# or its verify_callback is missing), so it costs nothing on 1.23 and later.
#
# This firmware cannot show certpin the chain during the handshake. Where
# mbedTLS keeps the peer certificate (ESP32: ESP-IDF's default),
# getpeercert(True) gives the leaf once the handshake is over: it is checked
# then, before the socket reaches the caller and before any application byte
# is written. Only the leaf can be checked this way, with or without cadata.
# Where getpeercert is missing or returns nothing (Pico W and unix builds,
# whose mbedTLS does not keep the certificate), the connection is refused.
#
# What each firmware offers (extmod/modssl_mbedtls.c, extmod/modussl_mbedtls.c):
#   1.22       ssl.SSLContext without verify_callback; load_verify_locations
#              (cafile=None, cadata=None): a positional argument is a file path
#   1.20-1.21  no SSLContext; ussl.wrap_socket(sock, server_side=False, key=None,
#              cert=None, server_hostname=None, cert_reqs=CERT_NONE, cadata=None,
#              do_handshake=True), all keywords after sock; cadata is one
#              certificate; a failed CA validation is an OSError carrying
#              mbedTLS's X509 code (with its text where the port keeps error strings)
#   1.19       the same without cert_reqs, cadata and the CERT_* constants (they
#              came with 1.20): no CA validation at all
#
# The handshake always completes inside wrap_socket here: do_handshake_on_connect
# =False is ignored. Without verify_callback the leaf can only be checked after
# the handshake, and a deferred handshake would be finished by the first write,
# which sends the application's bytes in the same call. (On a non-blocking
# socket these firmwares retry the handshake until it is done.)
from certpin import Error, _use
from certpin import tls


def wrap_socket(st, sock, host):
    # st: the connection's Conn (an unpinned host was refused when it was
    # made, before any traffic). c: a tls.SSLContext without verify_callback
    # (1.22), or None (no SSLContext: 1.19-1.21).
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT) if hasattr(tls, "SSLContext") else None
    st.late = True  # a mismatch message says that only the leaf can be checked here (certpin._report.fail)
    ctx = st.ctx
    ca = ctx.cadata
    if c is None:
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
    else:
        for der in ca or ():
            try:
                try:
                    c.load_verify_locations(cadata=der)  # 1.22: a positional argument is a FILE PATH
                except TypeError:  # a firmware taking one positional argument and no keywords, as 1.23+
                    c.load_verify_locations(der)
            except ValueError:
                raise Error("cadata: a certificate this firmware cannot load (DER expected)")
        # CERT_NONE: no callback to run, and mbedTLS still keeps the leaf for getpeercert.
        c.verify_mode = tls.CERT_REQUIRED if ca else tls.CERT_NONE
    try:
        if c is None:
            s = tls.wrap_socket(sock, server_hostname=host, **kw)
        else:
            s = c.wrap_socket(sock, server_hostname=host)
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
        st.finish()
    except BaseException:
        s.close()
        raise
    return s
