# Matching certificates against a host's pins, and the failure messages.
from binascii import b2a_base64

from certpin import Error, PinError, PinsetError
from certpin._der import cert_sha256, spki_sha256
from certpin._pinset import Pinset


def match(ps, r, der, d):
    # The pin text of record r matched by certificate `der` (SPKI digest d), or None.
    b = ps._b
    o = r + 2
    c = None
    for j in range(b[r + 1]):
        x = d
        if b[o] == 2:  # whole-certificate pin: hash only when such a pin exists
            if c is None:
                c = cert_sha256(der)
            x = c
        if b.find(x, o + 3, o + 35) == o + 3:
            return ps._text(r, j)
        o += 35
    return None


def pin_text(d, kind=1):
    return ("sha256/", "cert-sha256/")[kind - 1] + b2a_base64(d)[:44].decode()


def _subject(der):
    # "Where known": CPython with `cryptography` installed; never on a device.
    try:
        from cryptography import x509

        return x509.load_der_x509_certificate(bytes(der)).subject.rfc4514_string()
    except Exception:
        return None


def describe(ps, r, host, seen, verified, why):
    # seen: [(depth, digest or error text, subject or None)] as presented.
    lines = ["%s: %s" % (host, why)]
    if not seen:
        lines.append("  the server presented no certificate")
    for depth, d, subj in seen:
        what = pin_text(d) if isinstance(d, bytes) else "unusable (%s)" % d
        note = "" if depth == 0 or verified else " (not counted: no CA validation)"
        lines.append("  presented depth %d: %s%s%s" % (depth, what, " " + subj if subj else "", note))
    lines.append("  configured for %s: %s" % (host, ", ".join(ps.pins(host)) or "(none)"))
    if not verified:
        lines.append("  (without cadata only the leaf, depth 0, can match)")
    return "\n".join(lines)


def unknown_host(ps, host):
    return "%r is not in the pinset (hosts: %s); connections to unpinned hosts are refused" % (
        host,
        ", ".join(ps.hosts()[:8]) + (", ..." if len(ps.hosts()) > 8 else ""),
    )


def check(pinset, host, chain, verified=False):
    """Return the pin of ``pinset`` for ``host`` that ``chain`` matches, or raise PinError.

    ``chain`` is a list of DER certificates, leaf first. With verified=False
    (nobody validated the chain) only the leaf may match; with verified=True
    (the chain was validated against a CA) any certificate of it may.
    """
    if not isinstance(pinset, Pinset):
        raise PinsetError("expected a Pinset from certpin.load() or certpin.loads()")
    r = pinset._find(host)
    if r < 0:
        raise PinError(unknown_host(pinset, host))
    n = len(chain)
    i = 0
    while i < n and (i == 0 or verified):
        try:
            d = spki_sha256(chain[i])
        except Error as e:
            if i == 0:
                raise PinError("%s: the leaf certificate cannot be checked: %s" % (host, e.args[0]))
            i += 1
            continue
        m = match(pinset, r, chain[i], d)
        if m is not None:
            return m
        i += 1
    seen = []
    for i in range(n):
        try:
            d = spki_sha256(chain[i])
        except Error as e:
            d = e.args[0]
        seen.append((i, d, _subject(chain[i])))
    raise PinError(describe(pinset, r, host, seen, verified, "no configured pin matched"))
