# The loaded pinset (validation is in _load.py) and check().
#
# RAM layout, ~125 bytes per pin for a 50-host pinset with 2 pins per host:
#   _n  tuple  the host names, sorted (a tuple costs less than a dict's table)
#   _b  bytes  [record offset: 2] per host, then per host a record:
#              [flags][n][text offset: 2], n x [kind][digest: 32]
#   _t  str    every pin's text back to back: check() returns a slice of it
import sys

from certpin import Error, PinError, PinsetError
from certpin._der import cert_sha256, spki_sha256


class Pinset:
    """A validated pinset: serial (int or None), expires ((Y, M, D) or None)."""

    def __init__(self, n, b, t, serial, expires):
        self._n, self._b, self._t, self.serial, self.expires = n, b, t, serial, expires

    def hosts(self):
        return list(self._n)

    def pins(self, host):
        """The pins of the entry covering ``host`` ([] when none does)."""
        r = self._find(host)
        return [] if r < 0 else [self._text(r, j) for j in range(self._b[r + 1])]

    def _text(self, r, j):
        b = self._b
        k = b[r + 2] << 8 | b[r + 3]
        o = r + 4
        while j >= 0:
            n = 51 if b[o] == 1 else 56  # len("sha256/") or len("cert-sha256/"), + 44
            if not j:
                return self._t[k : k + n]
            k += n
            o += 33
            j -= 1

    def _rec(self, name):
        # Record offset of exactly `name`, or -1 (binary search; no allocation).
        a = self._n
        lo = 0
        hi = len(a)
        while lo < hi:
            m = (lo + hi) >> 1
            if a[m] < name:
                lo = m + 1
            else:
                hi = m
        if lo < len(a) and a[lo] == name:
            return self._b[2 * lo] << 8 | self._b[2 * lo + 1]
        return -1

    def _find(self, host):
        # Offset of the record covering host, or -1. Exact and case-insensitive
        # with one trailing dot ignored; else the nearest parent entry with
        # subdomains (never a sibling such as xapi.example.com). IP literals
        # match exactly.
        if not isinstance(host, str):
            return -1
        r = self._rec(host)  # the common case allocates nothing
        if r < 0:
            host = host.lower()
            if host[-1:] == ".":
                host = host[:-1]
            r = self._rec(host)
            i = -1 if r >= 0 or _ip(host) else host.find(".")
            while i >= 0:
                r = self._rec(host[i + 1 :])
                if r >= 0 and self._b[r] & 1:
                    return r
                r = -1
                i = host.find(".", i + 1)
        return r


def _ip(name):
    return ":" in name or name.replace(".", "").isdigit()


def _once(name):
    # Import certpin.<name> for one use. On a device the module is then dropped
    # (see _drop): validation runs once at boot and failure text only when
    # something is refused, so neither needs to stay resident in a heap that
    # the TLS stack shares.
    __import__("certpin." + name)
    return sys.modules["certpin." + name]


def _drop(name):
    if sys.implementation.name == "micropython":
        sys.modules.pop("certpin." + name, None)
        import certpin

        if hasattr(certpin, name):
            delattr(certpin, name)


def loads(text):
    """Parse and validate pinset JSON (str or UTF-8 bytes) into a Pinset."""
    try:
        return _once("_load").loads(text)
    finally:
        _drop("_load")


def load(path="/certpin.json"):
    """Read and validate the pinset file at ``path``."""
    try:
        return _once("_load").load(path)
    finally:
        _drop("_load")


def match(ps, r, der, d):
    # The pin text of record r that certificate `der` (SPKI digest d) matches, or None.
    b = ps._b
    o = r + 4
    c = None
    for j in range(b[r + 1]):
        x = d
        if b[o] == 2:  # a whole-certificate pin: hash only when the host has one
            if c is None:
                c = cert_sha256(der)
            x = c
        if b.find(x, o + 1, o + 33) == o + 1:
            return ps._text(r, j)
        o += 33
    return None


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
        try:
            raise PinError(_once("_report").unknown(pinset, host))
        finally:
            _drop("_report")
    n = len(chain)
    i = 0
    while i < n and (i == 0 or verified):
        try:
            d = spki_sha256(chain[i])
        except Error as e:
            if i == 0:
                raise PinError("%s: the leaf certificate cannot be checked: %s" % (host, e.args[0]))
            d = None
        m = None if d is None else match(pinset, r, chain[i], d)
        if m is not None:
            return m
        i += 1
    try:
        raise PinError(_once("_report").mismatch(pinset, host, chain, verified))
    finally:
        _drop("_report")
