"""A lenient DER reader for the host tools: where things are, never a re-encoding.

The device library (``certpin.spki_sha256``, a strict walk) decides what a
device hashes. This module only finds elements in certificates the strict walk
refuses, so the host can still show the key's pin (with a warning that a
device cannot check that certificate), and finds the certificates inside a
PKCS#7 bundle as the bytes they are. It accepts what BER allows and DER does
not (long-form and non-minimal lengths, indefinite lengths on constructed
elements) and ignores trailing data; it refuses what it cannot delimit, with
``DERError`` saying what and where.

    locate_spki(cert) -> (start, end)     the SubjectPublicKeyInfo element
    spki_parts(spki)  -> (oid, params, key bits)
    pkcs7_certificates(data) -> [bytes]   the certificates of a SignedData
    first_element(data) -> bytes
    canonical_spki(spki) -> bytes         DER lengths, RSA as OpenSSL writes it
"""

MAX_DEPTH = 32  # nesting of indefinite lengths; real certificates need 2 or 3


class DERError(ValueError):
    pass


def read(b, i, end, depth=0):
    """(tag, content start, content end, element end) of the element at b[i]; it must end by ``end``."""
    if i + 2 > end:
        raise DERError("truncated at offset %d" % i)
    tag = b[i]
    j = i + 1
    if tag & 0x1F == 0x1F:  # a tag number over 30: continuation octets (none in X.509, but skippable)
        while j < end and b[j] & 0x80:
            j += 1
        j += 1
    if j >= end:
        raise DERError("truncated at offset %d" % i)
    n = b[j]
    j += 1
    if n == 0x80:
        if not tag & 0x20:
            raise DERError("indefinite length on a primitive element at offset %d" % i)
        if depth >= MAX_DEPTH:
            raise DERError("indefinite lengths nested too deep at offset %d" % i)
        k = j
        while True:
            if k + 2 > end:
                raise DERError("no end-of-contents for the indefinite length at offset %d" % i)
            if b[k] == 0 and b[k + 1] == 0:
                return tag, j, k, k + 2
            k = read(b, k, end, depth + 1)[3]
    if n & 0x80:
        m = n & 0x7F
        if m > 8 or j + m > end:
            raise DERError("bad length octets at offset %d" % i)
        n = int.from_bytes(b[j:j + m], "big")
        j += m
    if j + n > end:
        raise DERError("the element at offset %d runs past the end of its container" % i)
    return tag, j, j + n, j + n


def _expect(b, i, end, tag, what):
    t, s, e, nxt = read(b, i, end)
    if t != tag:
        raise DERError("expected %s (tag 0x%02x) at offset %d, found tag 0x%02x" % (what, tag, i, t))
    return s, e, nxt


def locate_spki(cert):
    """(start, end) of the SubjectPublicKeyInfo element in a certificate. DERError if it is not one."""
    cs, ce, _ = _expect(cert, 0, len(cert), 0x30, "a certificate SEQUENCE")
    ts, te, _ = _expect(cert, cs, ce, 0x30, "TBSCertificate")
    i = ts
    if i < te and cert[i] == 0xA0:  # [0] version
        i = read(cert, i, te)[3]
    i = _expect(cert, i, te, 0x02, "the serial number")[2]
    for what in ("the signature algorithm", "the issuer", "the validity", "the subject"):
        i = _expect(cert, i, te, 0x30, what)[2]
    start = i
    end = _expect(cert, i, te, 0x30, "the SubjectPublicKeyInfo")[2]
    spki_parts(cert[start:end])  # an AlgorithmIdentifier and a BIT STRING, or this is not a key
    return start, end


def spki_parts(spki):
    """(algorithm OID as bytes, parameters element or b"", BIT STRING content) of a SubjectPublicKeyInfo."""
    s, e, _ = _expect(spki, 0, len(spki), 0x30, "a SubjectPublicKeyInfo SEQUENCE")
    a, ae, k = _expect(spki, s, e, 0x30, "the key's AlgorithmIdentifier")
    os_, oe, p = _expect(spki, a, ae, 0x06, "the key algorithm OID")
    ks, ke, _ = _expect(spki, k, e, 0x03, "the key BIT STRING")
    return bytes(spki[os_:oe]), bytes(spki[p:ae]), bytes(spki[ks:ke])


def oid_text(oid):
    """Dotted text of an OID's content octets."""
    if not oid:
        return "(empty OID)"
    arcs = []
    n = 0
    for c in oid:
        n = n << 7 | (c & 0x7F)
        if not c & 0x80:
            arcs.append(n)
            n = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(x) for x in [first, arcs[0] - 40 * first] + arcs[1:])


def first_element(data):
    """The bytes of the first element of data (OpenSSL's TRUSTED CERTIFICATE: a certificate, then trust)."""
    return bytes(data[:read(data, 0, len(data))[3]])


OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")


def pkcs7_certificates(data):
    """The certificates of a PKCS#7 / CMS SignedData, each exactly as it is in data. DERError if not one."""
    s, e, _ = _expect(data, 0, len(data), 0x30, "a PKCS#7 ContentInfo SEQUENCE")
    os_, oe, i = _expect(data, s, e, 0x06, "the content type OID")
    if bytes(data[os_:oe]) != OID_SIGNED_DATA:
        raise DERError("PKCS#7 content type %s, not signedData" % oid_text(bytes(data[os_:oe])))
    ws, we, _ = _expect(data, i, e, 0xA0, "the [0] content")
    ss, se, _ = _expect(data, ws, we, 0x30, "SignedData")
    i = _expect(data, ss, se, 0x02, "the SignedData version")[2]
    i = _expect(data, i, se, 0x31, "the digest algorithms")[2]
    i = _expect(data, i, se, 0x30, "the encapsulated content")[2]
    if i >= se or data[i] != 0xA0:
        return []  # no certificates field
    cs, ce, _ = _expect(data, i, se, 0xA0, "the certificates")
    out = []
    while cs < ce:
        t, _, _, nxt = read(data, cs, ce)
        if t == 0x30:  # other CertificateChoices (attribute certificates, ...) carry no server key
            out.append(bytes(data[cs:nxt]))
        cs = nxt
    return out


# ---------------------------------------------------------------- canonical form


OID_RSA = bytes.fromhex("2a864886f70d010101")


def _len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, content):
    return bytes([tag]) + _len(len(content)) + content


def _minimal(b, i, end):
    """The element at b[i] with every length minimal, recursively through constructed elements."""
    t, s, e, nxt = read(b, i, end)
    if t & 0x1F == 0x1F:
        raise DERError("tag number over 30 at offset %d" % i)
    if t & 0x20:
        parts = []
        j = s
        while j < e:
            parts.append(_minimal(b, j, e)[0])
            j = read(b, j, e)[3]
        return _tlv(t, b"".join(parts)), nxt
    return _tlv(t, bytes(b[s:e])), nxt


def _integer(content):
    while len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
        content = content[1:]
    return _tlv(0x02, content)


def canonical_spki(spki):
    """spki re-encoded the way OpenSSL writes keys back: minimal lengths everywhere; an rsaEncryption
    key with the NULL parameter and minimal INTEGERs. Other algorithms keep their parameters and key
    bytes (OpenSSL keeps explicit EC parameters and compressed points). DERError if unreadable."""
    oid, params, bits = spki_parts(spki)
    if oid == OID_RSA:
        if not bits or bits[0] != 0:
            raise DERError("RSA key BIT STRING with unused bits")
        ks, ke, _ = _expect(bits, 1, len(bits), 0x30, "RSAPublicKey")
        ns, ne, j = _expect(bits, ks, ke, 0x02, "the RSA modulus")
        es, ee, _ = _expect(bits, j, ke, 0x02, "the RSA exponent")
        key = _tlv(0x30, _integer(bits[ns:ne]) + _integer(bits[es:ee]))
        return _tlv(0x30, _tlv(0x30, _tlv(0x06, oid) + b"\x05\x00") + _tlv(0x03, b"\x00" + key))
    return _minimal(spki, 0, len(spki))[0]
