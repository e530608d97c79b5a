"""Fetch the certificate chain a TLS server presents.

``fetch(...)`` first connects with full verification (the system trust store,
or only ``cafile`` when given) and hostname checking. If that fails on the
certificate and the caller allows it, it connects again without verification to
see what the server sends. The result says which happened; callers decide
whether an unverified chain may be used (``certpin pin`` refuses unless
``--insecure``).

Connection problems raise FetchError with a message a person can act on.
"""
import socket
import ssl

DEFAULT_PORT = 443


class FetchError(Exception):
    """Could not connect or complete a TLS handshake."""


class Fetched:
    def __init__(self, host, port, servername, address):
        self.host = host  # as given (for messages)
        self.port = port
        self.servername = servername  # SNI and the name the certificate must carry
        self.address = address  # where we connected
        self.served = []  # DER certificates as the server sent them, leaf first
        self.verified_chain = None  # DER chain OpenSSL built (leaf .. trust anchor) when verified
        self.verify_error = None  # why verification failed, when it did
        self.cafile = None

    @property
    def verified(self):
        return self.verified_chain is not None

    def where(self):
        if self.address != self.servername:
            return "%s:%d (at %s)" % (self.servername, self.port, self.address)
        return "%s:%d" % (self.servername, self.port)


def split_hostport(text, default_port=DEFAULT_PORT):
    """'host', 'host:port', '[v6]:port', 'v6' -> (host, port). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty host")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("%r: missing ']'" % text)
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("%r: expected ':PORT' after ']'" % text)
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None  # a name, or a bare IPv6 literal
    if port is None or port == "":
        if port == "":
            raise ValueError("%r: empty port" % text)
        return host, default_port
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%r: port must be a number from 1 to 65535" % text)
    return host, int(port)


def _context(cafile, verify):
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        if cafile:
            # Only this CA file: the same trust a device given cadata has.
            return ssl.create_default_context(cafile=cafile)
        return ssl.create_default_context()
    except FileNotFoundError:
        raise FetchError("--cafile %s: no such file" % cafile)
    except (ssl.SSLError, OSError) as e:
        raise FetchError("--cafile %s: not a PEM CA certificate file (%s)" % (cafile, e))


def check_cafile(cafile):
    """Raise FetchError now if --cafile is unusable (not once per host later)."""
    if cafile:
        _context(cafile, True)


def _der_list(items):
    import _ssl

    out = []
    for c in items or ():
        out.append(bytes(c) if isinstance(c, (bytes, bytearray)) else c.public_bytes(_ssl.ENCODING_DER))
    return out


def _chains(tls):
    obj = getattr(tls, "_sslobj", None)
    served = verified = None
    for src in (tls, obj):
        if src is None:
            continue
        if served is None and hasattr(src, "get_unverified_chain"):
            served = _der_list(src.get_unverified_chain())
        if verified is None and hasattr(src, "get_verified_chain"):
            verified = _der_list(src.get_verified_chain())
    if not served:
        leaf = tls.getpeercert(True)
        served = [leaf] if leaf else []
    return served, verified


def _handshake(address, port, servername, ctx, timeout):
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except socket.gaierror as e:
        raise FetchError("cannot resolve %s: %s" % (address, e.strerror or e))
    except ConnectionRefusedError:
        raise FetchError("cannot connect to %s port %d: connection refused (nothing listening there?)" % (address, port))
    except socket.timeout:
        raise FetchError("cannot connect to %s port %d: timed out after %gs" % (address, port, timeout))
    except OSError as e:
        raise FetchError("cannot connect to %s port %d: %s" % (address, port, e.strerror or e))
    try:
        tls = ctx.wrap_socket(raw, server_hostname=servername)
    except ssl.SSLCertVerificationError:
        raw.close()
        raise
    except socket.timeout:
        raw.close()
        raise FetchError("TLS handshake with %s port %d timed out after %gs" % (address, port, timeout))
    except (ssl.SSLError, OSError) as e:
        raw.close()
        if "ASN1" in _reason(e):  # OpenSSL refused to parse a certificate the server sent
            raise FetchError(
                "TLS handshake with %s port %d failed: OpenSSL (the host's TLS library) cannot parse a certificate "
                "the server sent (%s). A device's TLS stack may still read it: get the certificate file (from the "
                "server's configuration or operator) and run `certpin pin FILE`" % (address, port, _reason(e)))
        raise FetchError("TLS handshake with %s port %d failed: %s (is it a TLS server?)" % (address, port, _reason(e)))
    try:
        return _chains(tls)
    finally:
        tls.close()


def _reason(e):
    r = getattr(e, "verify_message", None) or getattr(e, "reason", None) or getattr(e, "strerror", None)
    return str(r or e)


def fetch(host, port=DEFAULT_PORT, servername=None, address=None, cafile=None, timeout=10.0,
          allow_unverified=False):
    """Connect to address (default host), send SNI servername (default host).

    Returns a Fetched. When verification fails: raises FetchError unless
    allow_unverified, in which case the chain comes from a second, unverified
    connection and ``verify_error`` says why verification failed.
    """
    servername = (servername or host).rstrip(".").lower()
    address = address or host
    result = Fetched(host, port, servername, address)
    result.cafile = cafile
    try:
        served, verified = _handshake(address, port, servername, _context(cafile, True), timeout)
        result.served = served
        result.verified_chain = verified or served
        return result
    except ssl.SSLCertVerificationError as e:
        result.verify_error = _reason(e)
    if not allow_unverified:
        raise FetchError(
            "%s: the certificate did not verify against %s: %s"
            % (result.where(), ("--cafile " + cafile) if cafile else "the system trust store", result.verify_error)
        )
    result.served, _ = _handshake(address, port, servername, _context(None, False), timeout)
    return result
