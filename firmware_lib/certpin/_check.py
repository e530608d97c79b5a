# check(): the pure pin check of a DER chain, for code that has the
# certificates in hand (host tools, tests, a custom TLS layer). Connections use
# the same match() from the TLS layer instead. Loaded on first use.
from certpin import Error, Pinset, PinError, PinsetError, _use, match, spki_sha256


def check(pinset, host, chain, verified=False):
    """The pin of ``pinset`` for ``host`` that ``chain`` matches; else PinError.

    ``chain``: DER certificates, leaf first. verified=False (nobody validated
    the chain): only the leaf may match. verified=True (validated against a
    CA): any certificate of the chain may.
    """
    if not isinstance(pinset, Pinset):
        raise PinsetError("expected a Pinset from certpin.load() or certpin.loads()")
    r = pinset._find(host)
    if r < 0:
        raise PinError(_use("_report", "unknown", pinset, host))
    n = len(chain)
    i = 0
    while i < n and (i == 0 or verified):
        try:
            d = spki_sha256(chain[i])
        except Error as e:
            if i == 0:
                raise PinError("%s: the leaf certificate cannot be checked: %s" % (host, e.args[0]))
            d = None
        m = -1 if d is None else match(pinset, r, chain[i], d)
        if m >= 0:
            return _pin(pinset, r, m)
        i += 1
    raise PinError(_use("_report", "mismatch", pinset, host, chain, verified))


def _pin(ps, r, j):
    # The text of pin j of record r (a slice of ps._t). certpin._report.pin
    # is the same for failure messages: this module stays resident once used
    # (a check allocates no module load), _report is dropped after each use.
    b = ps._b
    k = b[r + 2] << 8 | b[r + 3]
    o = r + 4
    while j:
        k += 51 if b[o] == 1 else 56  # len("sha256/") or len("cert-sha256/"), + 44
        o += 33
        j -= 1
    return ps._t[k : k + (51 if b[o] == 1 else 56)]
