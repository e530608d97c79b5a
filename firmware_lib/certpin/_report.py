# Failure messages, loaded only when something is refused and dropped again
# on a device. They name the host, every certificate the server presented
# (depth, pin, subject where known) and the pins configured, so a person can
# fix the pinset by reading them. Also Pinset.pins().
from binascii import b2a_base64

from certpin import Error, _usable, spki_sha256


def pin(ps, r, j):
    # The text of pin j of record r (a slice of ps._t).
    b = ps._b
    k = b[r + 2] << 8 | b[r + 3]
    o = r + 4
    while j:
        k += 51 if b[o] == 1 else 56  # len("sha256/") or len("cert-sha256/"), + 44
        o += 33
        j -= 1
    return ps._t[k : k + (51 if b[o] == 1 else 56)]


def pins(ps, host):
    r = ps._find(host) if _usable(host) else -1
    return [] if r < 0 else [pin(ps, r, j) for j in range(ps._b[r + 1])]


# The refusals of certpin/__init__.py that are made outside a TLS handshake,
# by number (certpin._use("_report", "text", i, ...)): kept there they were
# resident (measured: `make bench`). 0 a host not in the pinset, 1 a name that
# is no host name, then _TEXT from 2.
_TEXT = (
    "server_hostname is required: pins are looked up by it",
    "expected a Pinset from certpin.load() or certpin.loads()",
    "on_failure must be callable",
    "cadata: expected DER certificate bytes or a list of them",
    "cadata: a certificate this firmware cannot load (DER expected)",
)


def text(i, *a):
    if i > 1:
        return _TEXT[i - 2]
    return bad_name(*a) if i else unknown(*a)


def bad_name(host):
    # Why certpin._usable() refused host, for the PinError.
    if not isinstance(host, str):
        why = "expected a str, not " + type(host).__name__
    else:
        b = host.encode("utf-8", "surrogatepass")  # CPython: a lone surrogate shows as its bytes (ED ..)
        why = "a label longer than 63 characters"
        if not 0 < len(b) < 254 + (b[-1:] == b"."):
            why = "%d characters (1 to 253 allowed)" % len(host)
        for c in b:
            if c < 32 or c > 126:
                why = "a control or non-ASCII character (byte 0x%02x; write IDNs in their xn-- form)" % c
                break
        host = host[:80]
    return "%r is not a usable host name: %s" % (host, why)


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
    out.append("  configured for %s: %s" % (host, ", ".join(pins(ps, host))))
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
