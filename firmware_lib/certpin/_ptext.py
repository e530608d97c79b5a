# The texts of refused pinsets and update keys, loaded only for a refusal and
# dropped again on a device: kept in certpin/_load.py, they took the heap of
# every load() and of every update (a .mpy module's strings are copied into
# the heap when it is imported). Also the whole parser of a P-256 key's DER
# SubjectPublicKeyInfo, which certpin._load.public_key() runs on a key that
# is not in the one encoding certpin reads, to say what is wrong with it.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


def text(n, a):
    # certpin/_load.py's refusal n, formatted with the arguments a: "<field>: <text>"
    return _T[n] % a if a else _T[n]


_T = (
    "expected a JSON object",  # 0
    "unknown key %r (allowed: %s)",
    "expected true or false, found %r",
    "larger than 65535 bytes",
    "not valid UTF-8 JSON text (not strict UTF-8 at offset %d)",  # 4
    "not valid UTF-8 JSON text (a number that is not an integer of at most 16 digits at offset %d)",
    "not valid UTF-8 JSON text (syntax error at offset %d)",
    "not valid UTF-8 JSON text (%s)",
    "cannot be read (%s: %s)",  # 8
    "expected a calendar date YYYY-MM-DD, found %r",
    "expected a list of 1 to 16 keys (base64 DER SubjectPublicKeyInfo of P-256 keys)",
    "not standard base64 (with padding) of a DER SubjectPublicKeyInfo",
    "the same key as update.keys[%d]: a duplicate would count twice or never",  # 12
    "expected a whole number from 1 to %d (the number of keys), found %r",
    "expected an http:// or https:// URL of printable ASCII, at most 512 characters, found %r",
    "required in a host's report section",
    "expected 1 to 64 printable ASCII characters, found %r",  # 16
    "expected 1, found %r",
    "expected a whole number from 0 to 2**53-1, found %r",
    "%04d-%02d-%02d is after expires",
    "expected a JSON object of one or more host entries",  # 20
    "not a host name",
    "not a lowercase host name or IP literal without a trailing dot",
    "expected a list of 1 to 255 pins",
    "an IP literal has no subdomains",  # 24
    "expected a list of 1 to 16 distinct port numbers from 1 to 65535, found %r",
    "%r is not sha256/ (SPKI) or cert-sha256/ (certificate) + base64 of a SHA-256 digest",
    "cannot read the pinset file (%s)",
)


# ---- a P-256 public key's SubjectPublicKeyInfo, read whole (certpin._p256.public_key) ----

_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)


def _bad(msg, *a):
    return ValueError("not a P-256 public key: " + (msg % a if a else msg))


def _tlv(b, i, end, tag, what):
    # Strict DER header of the element at b[i], which must end by `end`:
    # returns (content start, content end).
    if i + 2 > end:
        raise _bad("the %s at offset %d is truncated", what, i)
    if b[i] != tag:
        raise _bad("expected the %s at offset %d, found tag 0x%02x", what, i, b[i])
    n = b[i + 1]
    j = i + 2
    if n == 0x81 or n == 0x82:
        k = n - 0x80
        if j + k > end:
            raise _bad("the %s at offset %d is truncated", what, i)
        n = b[j] if k == 1 else b[j] << 8 | b[j + 1]
        j += k
        if n < 0x80 or k == 2 and n < 0x100:
            raise _bad("non-minimal DER length of the %s at offset %d", what, i)
    elif n & 0x80:
        raise _bad("bad DER length of the %s at offset %d (indefinite or over-long)", what, i)
    if j + n > end:
        raise _bad("the %s at offset %d is truncated", what, i)
    return j, j + n


def _oid(b, i, e):
    # Dotted text of the OID content b[i:e], for messages.
    out = []
    v = 0
    while i < e:
        v = v << 7 | (b[i] & 0x7F)
        if b[i] < 0x80:
            out.append(str(v) if out else "%d.%d" % ((v // 40, v - 80) if v >= 80 else divmod(v, 40)))
            v = 0
        i += 1
    return ".".join(out)


_EC = const(b"\x2a\x86\x48\xce\x3d\x02\x01")  # 1.2.840.10045.2.1 id-ecPublicKey
_P256 = const(b"\x2a\x86\x48\xce\x3d\x03\x01\x07")  # 1.2.840.10045.3.1.7 prime256v1
_NAMES = (  # the usual mistakes, named
    ("1.2.840.113549.1.1.1", " (an RSA key)"),
    ("1.3.101.112", " (an Ed25519 key)"),
    ("1.3.132.0.34", " (P-384)"),
)


def _named(dotted):
    for o, name in _NAMES:
        if o == dotted:
            return dotted + name
    return dotted


def public_key(spki):
    """(x, y) of the P-256 public key in the DER SubjectPublicKeyInfo ``spki``.

    Raises ValueError("not a P-256 public key: ...") for anything else.
    """
    if not isinstance(spki, (bytes, bytearray, memoryview)):
        raise _bad("expected DER bytes, found %s", type(spki).__name__)
    b = spki
    s, e = _tlv(b, 0, len(b), 0x30, "SubjectPublicKeyInfo SEQUENCE")
    if e != len(b):
        raise _bad("%d bytes after the SubjectPublicKeyInfo", len(b) - e)
    a, ae = _tlv(b, s, e, 0x30, "AlgorithmIdentifier SEQUENCE")
    o, oe = _tlv(b, a, ae, 0x06, "algorithm OID")
    if b[o:oe] != _EC:
        raise _bad("the key algorithm is %s, not id-ecPublicKey (1.2.840.10045.2.1)", _named(_oid(b, o, oe)))
    if oe < ae and b[oe] == 0x30:
        raise _bad("explicit curve parameters; only the named curve prime256v1 (1.2.840.10045.3.1.7) is accepted")
    c, ce = _tlv(b, oe, ae, 0x06, "named curve OID")
    if b[c:ce] != _P256:
        raise _bad("the curve is %s, not prime256v1 (1.2.840.10045.3.1.7)", _named(_oid(b, c, ce)))
    if ce != ae:
        raise _bad("extra bytes in the AlgorithmIdentifier")
    k, ke = _tlv(b, ae, e, 0x03, "subjectPublicKey BIT STRING")
    if ke != e:
        raise _bad("extra bytes after the subjectPublicKey")
    if ke == k or b[k] != 0:
        raise _bad("the subjectPublicKey BIT STRING is empty or has unused bits")
    if ke - k > 1 and b[k + 1] in (2, 3):
        raise _bad("compressed point; export the key uncompressed (openssl ec -pubin -conv_form uncompressed)")
    if ke - k != 66:
        raise _bad("expected an uncompressed point (0x04 || X || Y, 65 bytes), found %d bytes", ke - k - 1)
    if b[k + 1] != 4:
        raise _bad("the point starts with 0x%02x, not 0x04 (an uncompressed point)", b[k + 1])
    x = int.from_bytes(b[k + 2 : k + 34], "big")
    y = int.from_bytes(b[k + 34 : ke], "big")
    if x >= _P or y >= _P:
        raise _bad("a coordinate is not below the field prime p")
    if (y * y - (x * x - 3) * x - _B) % _P:
        raise _bad("the point is not on the curve")
    return x, y
