# certpin: X.509 public-key and certificate pinning for MicroPython and CPython.
#
#   spki_sha256(der), cert_sha256(der)   the digests inside pins
#   load(path), loads(text) -> Pinset    read and validate a pinset
#   check(pinset, host, chain)           pure check of a DER chain (leaf first)
#   SSLContext(pinset, cadata, on_failure), connect(host, port, ...)
#                                        pinned TLS (loaded on first use)
#
# Every refusal is a certpin.Error: PinError (the peer did not match, or its
# pins could not be checked) or PinsetError (the pinset is unusable).
__version__ = "0.1.0"


class Error(Exception):
    pass


class PinError(Error):
    pass


class PinsetError(Error):
    pass


from certpin._der import cert_sha256, spki_sha256  # noqa: E402
from certpin._pinset import Pinset, check, load, loads  # noqa: E402


def __getattr__(name):
    # The TLS layer is imported on first use: code that only checks pins, or
    # the host tools, never pay for it.
    if name in ("SSLContext", "connect"):
        import sys

        m = "certpin._cpy" if sys.implementation.name == "cpython" else "certpin._tls"
        __import__(m)
        return getattr(sys.modules[m], name)
    raise AttributeError(name)
