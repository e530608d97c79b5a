# certpin.install()'s refusals (_install.py), by number: loaded only when
# install() refuses something, and dropped again on a device.
from certpin import _use
from certpin._report import unknown

_INSTALL = (
    "certpin.install() pins TLS clients only: SSLContext(%r) (a DTLS client?) would not be pinned",
    "certpin.install() checks certificates itself: a verify_callback of the application's would not run, so setting one is refused",
    "certpin.install(): server_side=True needs an SSLContext(PROTOCOL_TLS_SERVER); on a client context mbedTLS runs an unpinned client handshake",
    "certpin.uninstall() was called: this SSLContext was made while certpin.install() was active",
    "certpin.install() failed, so every TLS client connection is refused: %s",
    "certpin.install(): a TLS client connection without server_hostname cannot be pinned (pins are looked up by host name); "
    "pass server_hostname= (umqtt.simple: ssl_params={'server_hostname': host})",
    "%s; add it to the pinset, or let hosts outside the pinset through with CA validation: certpin.install(others=\"ca\", cadata=CA_DER)",
    "%s: not in the pinset, and CA validation (others=\"ca\") failed: %s",
)


def install(code, *a):
    _use("_journal", "install", code, a)  # the refusals that reach the journal: codes 6 and 7
    if code == 4:  # a, the exception install() failed with
        a = (a[0].args[0] if a[0].args else type(a[0]).__name__,)
    elif code == 6:  # a = (pinset, host)
        a = (unknown(*a),)
    return _INSTALL[code] % a if a else _INSTALL[code]
