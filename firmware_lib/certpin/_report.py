# Failure messages, loaded only when something is refused. They name the
# host, every certificate the server presented (depth, pin, subject where
# known) and the pins configured, so a person can fix the pinset by reading it.
from binascii import b2a_base64

from certpin import Error, spki_sha256


def _subject(der):
    # Known on CPython with `cryptography`; never on a device.
    try:
        from cryptography import x509

        return " " + x509.load_der_x509_certificate(bytes(der)).subject.rfc4514_string()
    except Exception:
        return ""


def unknown(ps, host):
    names = ps.hosts()
    return "%r is not in the pinset (it has: %s); connections to unpinned hosts are refused" % (
        host,
        ", ".join(names[:6]) + (", ..." if len(names) > 6 else ""),
    )


def describe(ps, host, seen, verified, why):
    # seen: [(depth, SPKI digest or error text, subject)].
    out = [host + ": " + why]
    if not seen:
        out.append("  the server presented no certificate")
    for depth, d, subj in sorted(seen):
        pin = "sha256/" + b2a_base64(d)[:44].decode() if isinstance(d, bytes) else "unusable: " + d
        out.append(
            "  presented depth %d: %s%s%s" % (depth, pin, subj or "", "" if depth == 0 or verified else " (not counted)")
        )
    out.append("  configured for %s: %s" % (host, ", ".join(ps.pins(host))))
    if not verified:
        out.append("  without cadata (CA validation) only the leaf, depth 0, can match")
    return "\n".join(out)


def mismatch(ps, host, chain, verified):
    seen = []
    for i, der in enumerate(chain):
        try:
            d = spki_sha256(der)
        except Error as e:
            d = e.args[0]
        seen.append((i, d, _subject(der)))
    return describe(ps, host, seen, verified, "no configured pin matched")


# certpin.install()'s refusals (_install.py), by number.
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
    if code == 4:  # a, the exception install() failed with
        a = (a[0].args[0] if a[0].args else type(a[0]).__name__,)
    elif code == 6:  # a = (pinset, host)
        a = (unknown(*a),)
    return _INSTALL[code] % a if a else _INSTALL[code]
