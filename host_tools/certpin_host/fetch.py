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
    def __init__(self, host, port, servername, address, connect_port=None):
        self.host = host  # as given (for messages)
        self.port = port
        self.servername = servername  # SNI and the name the certificate must carry
        self.address = address  # where we connected
        self.connect_port = connect_port or port
        self.served = []  # DER certificates as the server sent them, leaf first
        self.verified_chain = None  # DER chain OpenSSL built (leaf .. trust anchor) when verified
        self.verify_error = None  # why verification failed, when it did
        self.cafile = None

    @property
    def verified(self):
        return self.verified_chain is not None

    def where(self):
        if self.address != self.servername or self.connect_port != self.port:
            return "%s:%d (at %s)" % (self.servername, self.port, hostport(self.address, self.connect_port))
        return "%s:%d" % (self.servername, self.port)


def hostport(host, port):
    """'host:port', '[v6]:port'."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


# ---------------------------------------------------------------- --connect-to


CONNECT_TO_HELP = ("connect to ADDR:PORT2 when the target is HOST:PORT (curl's --connect-to); SNI, the name "
                   "check and the pinset entry stay HOST. Empty parts match anything (HOST, PORT) or keep the "
                   "target's (ADDR, PORT2): ::127.0.0.1:8443 sends every host there. Repeatable: the first rule "
                   "that matches is used")


class ConnectTo:
    """One --connect-to HOST:PORT:ADDR:PORT2 rule; None in a field means empty (any / unchanged)."""

    def __init__(self, text):
        self.text = text
        parts = _split_fields(text)
        if len(parts) != 4:
            raise ValueError("--connect-to %r: expected HOST:PORT:ADDR:PORT (4 fields separated by ':', IPv6 "
                             "addresses in brackets; empty fields allowed, as in ::127.0.0.1:8443)" % text)
        h1, p1, h2, p2 = parts
        self.host = h1.rstrip(".").lower() or None
        self.port = _port(p1, text) if p1 else None
        self.address = h2 or None
        self.to_port = _port(p2, text) if p2 else None

    def matches(self, host, port):
        return (self.host is None or self.host == host.rstrip(".").lower()) and (self.port is None or self.port == port)

    def __repr__(self):
        return "ConnectTo(%r)" % self.text


def _split_fields(text):
    out, cur, i = [], "", 0
    while i < len(text):
        c = text[i]
        if c == "[":
            end = text.find("]", i)
            if end < 0:
                raise ValueError("--connect-to %r: missing ']'" % text)
            cur += text[i + 1:end]
            i = end + 1
            continue
        if c == ":":
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def _port(text, whole):
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("--connect-to %r: %r is not a port number from 1 to 65535" % (whole, text))
    return int(text)


def parse_connect_to(values):
    """[ConnectTo] from the --connect-to values; ValueError saying what is wrong."""
    return [ConnectTo(v) for v in values or ()]


def route(rules, host, port):
    """(address, port) to connect to for the target host:port: the first matching rule, else itself."""
    for r in rules or ():
        if r.matches(host, port):
            return r.address or host, r.to_port or port
    return host, port


def replaced_flag(old, new):
    """The UserError message for a flag that --connect-to replaced."""
    return ("%s %s replaced by --connect-to HOST:PORT:ADDR:PORT (curl's form, per host, repeatable): %s"
            % (old, "were" if "/" in old else "was", new))


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


def _der_context(der):
    ctx = ssl.create_default_context(cadata=der)  # only these CA certificates, as a device given cadata
    return ctx


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


def connect(address, port, timeout):
    """A TCP connection to address:port (every address it resolves to, in turn); FetchError saying who
    refused, e.g. "connection refused by 127.0.0.1:8443", never a bare OSError."""
    try:
        infos = socket.getaddrinfo(address, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise FetchError("cannot resolve %s: %s" % (address, e.strerror or e))
    except (OSError, UnicodeError) as e:  # a name the resolver cannot take
        raise FetchError("cannot resolve %s: %s" % (address, getattr(e, "strerror", None) or e))
    refused, other = [], []
    for family, kind, proto, _, sa in infos:
        where = hostport(sa[0], sa[1])
        s = socket.socket(family, kind, proto)
        s.settimeout(timeout)
        try:
            s.connect(sa)
            return s
        except ConnectionRefusedError:
            refused.append(where)
        except socket.timeout:
            other.append("%s timed out after %gs" % (where, timeout))
        except OSError as e:
            other.append("%s: %s" % (where, e.strerror or e))
        s.close()
    why = []
    if refused:
        why.append("connection refused by %s (nothing listening there?)" % " and ".join(refused))
    why += other
    raise FetchError("cannot connect to %s: %s" % (hostport(address, port), "; ".join(why) or "no address"))


def _handshake(address, port, servername, ctx, timeout):
    raw = connect(address, port, timeout)
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
          allow_unverified=False, connect_port=None, cadata=None):
    """Connect to address:connect_port (default host:port), send SNI servername (default host).

    Verification is against cafile (a PEM file), or cadata (DER bytes), or the system trust store.
    Returns a Fetched. When verification fails: raises FetchError unless
    allow_unverified, in which case the chain comes from a second, unverified
    connection and ``verify_error`` says why verification failed.
    """
    servername = (servername or host).rstrip(".").lower()
    address = address or host
    cport = connect_port or port
    result = Fetched(host, port, servername, address, cport)
    result.cafile = cafile
    port = cport
    ctx = _context(cafile, True) if cadata is None else _der_context(cadata)
    try:
        served, verified = _handshake(address, port, servername, ctx, timeout)
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
