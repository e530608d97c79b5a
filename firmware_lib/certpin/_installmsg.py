# certpin.install()'s refusals (_install.py, _patch.py), by number: loaded only
# when install() or a connection under it refuses something, and dropped again
# on a device. Every refusal of install()'s goes through _install._why().
from certpin._report import unknown

_INSTALL = (
    "certpin.install() pins TLS clients only: SSLContext(%r) would not be pinned (a DTLS client?); a class derived"
    " from SSLContext under install() makes client contexts only (a server: SSLContext(PROTOCOL_TLS_SERVER) itself)",
    "certpin.install() checks certificates itself: a verify_callback of the application's would not run, so setting one is refused",
    "certpin.install(): server_side=True needs an SSLContext(PROTOCOL_TLS_SERVER); on a client context mbedTLS runs an unpinned client handshake",
    "certpin.uninstall() was called: this SSLContext was made while certpin.install() was active",
    "certpin.install() failed, so every TLS client connection is refused: %s",
    "certpin.install(): a TLS client connection without server_hostname cannot be pinned (pins are looked up by host name); "
    "pass server_hostname= (umqtt.simple: ssl_params={'server_hostname': host})",
    "%s; add it to the pinset, or let hosts outside the pinset through with CA validation: certpin.install(others=\"ca\", cadata=CA_DER)",
    "%s: not in the pinset, and CA validation (others=\"ca\") failed: %s",
    "certpin.install(): %s derives from the firmware's SSLContext and was defined before certpin.install(), which cannot pin the firmware's contexts:"
    " every connection through it is refused; import its module after certpin.install() (in boot.py)",
    "certpin.install() is MicroPython-only; on CPython pass certpin.SSLContext(pinset) where code takes an SSLContext",
    'others: expected "refuse" or "ca", not %r',
    'others="ca" needs cadata: the CA certificates that hosts outside the pinset are validated against',
    "certpin.install() is active, but cannot pin what was made before it: %s. A TLS context made earlier connects"
    " unpinned; a class derived from SSLContext refuses every connection from now on. Call certpin.install() before"
    " they are made (in boot.py, before importing the modules that make them)",
)


def install(code, *a):
    if code == 4:  # a, the exception install() failed with
        a = (a[0].args[0] if a[0].args else type(a[0]).__name__,)
    elif code == 6:  # a = (pinset, host)
        a = (unknown(*a),)
    return _INSTALL[code] % a if a else _INSTALL[code]
