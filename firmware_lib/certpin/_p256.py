# certpin._p256: ECDSA P-256 (ES256) signature verification in pure Python.
#
#   public_key(spki) -> (x, y)    DER SubjectPublicKeyInfo -> the public point
#   verify(key, digest, sig)      True only for a valid signature
#
# Why P-256: signed pinset updates (issue 8) must be signable with openssl,
# `cryptography`, HSMs and every cloud KMS, and verifiable on a device that has
# hashlib.sha256 but no SHA-512 (which rules out Ed25519). ES256 (RFC 7518
# section 3.4) is ECDSA over P-256 with SHA-256, signature = raw r || s.
#
# public_key() accepts exactly one thing: id-ecPublicKey (1.2.840.10045.2.1)
# with the named curve prime256v1 (1.2.840.10045.3.1.7) and an uncompressed
# point 04 || X || Y (65 bytes) with 0 <= X, Y < p on the curve, in strict DER
# (minimal lengths, nothing after the key). It refuses RSA, Ed25519 and other
# curves, explicit curve parameters, compressed points (re-export such a key
# uncompressed: `openssl ec -pubin -conv_form uncompressed`) and any other
# encoding, with ValueError("not a P-256 public key: ..."). The curve has
# cofactor 1, so a point on it is in the group of order n.
#
# verify() takes the key from public_key(), the 32-byte SHA-256 digest of the
# signed bytes and the 64-byte r || s. It follows ECDSA verification as
# OpenSSL does: r and s must be in [1, n-1]; high-S signatures (s > n/2) are
# valid, as they are for OpenSSL and `cryptography`. Anything malformed (wrong
# length, r or s out of range) returns False; it never raises for bytes,
# bytearray or memoryview input.
#
# Constant time is NOT a goal: verification handles only public data (the
# key, the signed message, the signature), so timing reveals nothing secret.
# The code branches on scalar bits freely. This module must never sign.
#
# Memory: imported for one update and dropped afterwards (certpin loads it on
# first use); nothing is cached outside the module.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
_GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
_GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


# ---- public_key ----


def _bad(msg, *a):
    return ValueError("not a P-256 public key: " + (msg % a if a else msg))


def _tlv(b, i, end, tag, what):
    # Strict DER header of the element at b[i] (which must end by `end`):
    # returns (content start, content end).
    if i + 2 > end:
        raise _bad("truncated before the %s at offset %d", what, i)
    if b[i] != tag:
        raise _bad("expected the %s (tag 0x%02x) at offset %d, found tag 0x%02x", what, tag, i, b[i])
    n = b[i + 1]
    i += 2
    if n > 0x80 and n < 0x83 and i + n - 0x80 <= end:
        k = n - 0x80
        n = b[i] if k == 1 else b[i] << 8 | b[i + 1]
        i += k
        if n < 0x80 or (k == 2 and n < 0x100):
            raise _bad("non-minimal DER length of the %s", what)
    elif n >= 0x80:
        raise _bad("bad DER length of the %s (indefinite, over-long or truncated)", what)
    if i + n > end:
        raise _bad("the %s is truncated (needs %d bytes, %d left)", what, n, end - i)
    return i, i + n


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
_NAMES = (
    ("1.2.840.113549.1.1.1", " (an RSA key)"),
    ("1.3.101.112", " (an Ed25519 key)"),
    ("1.3.132.0.34", " (secp384r1)"),
    ("1.3.132.0.35", " (secp521r1)"),
    ("1.3.132.0.10", " (secp256k1)"),
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
        raise _bad("the subjectPublicKey BIT STRING has unused bits")
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


# ---- verify ----


def _inv(a, m):
    # a^-1 mod m (m prime, 0 < a < m) by the extended Euclidean algorithm.
    x0, x1, b = 1, 0, m
    while b:
        q, r = divmod(a, b)
        a, b, x0, x1 = b, r, x1, x0 - q * x1
    return x0 % m


def _dbl(X, Y, Z):
    # 2(X, Y, Z) in Jacobian coordinates for a = -3 (dbl-2001-b).
    if Z == 0 or Y == 0:
        return 0, 1, 0
    zz = Z * Z % _P
    yy = Y * Y % _P
    m = 3 * (X - zz) * (X + zz) % _P
    s = 4 * X * yy % _P
    x3 = (m * m - 2 * s) % _P
    return x3, (m * (s - x3) - 8 * yy * yy) % _P, 2 * Y * Z % _P


def _add(X1, Y1, Z1, X2, Y2, Z2):
    # (X1, Y1, Z1) + (X2, Y2, Z2), Jacobian, any inputs (add-2007-bl shape).
    if Z1 == 0:
        return X2, Y2, Z2
    if Z2 == 0:
        return X1, Y1, Z1
    z1z1 = Z1 * Z1 % _P
    z2z2 = Z2 * Z2 % _P
    u1 = X1 * z2z2 % _P
    u2 = X2 * z1z1 % _P
    s1 = Y1 * Z2 * z2z2 % _P
    s2 = Y2 * Z1 * z1z1 % _P
    h = (u2 - u1) % _P
    r = (s2 - s1) % _P
    if h == 0:
        return _dbl(X1, Y1, Z1) if r == 0 else (0, 1, 0)
    hh = h * h % _P
    hhh = h * hh % _P
    v = u1 * hh % _P
    x3 = (r * r - hhh - 2 * v) % _P
    return x3, (r * (v - x3) - s1 * hhh) % _P, Z1 * Z2 * h % _P


def verify(key, digest, sig):
    """True iff ``sig`` (64 bytes r || s) is a valid ES256 signature of the
    32-byte SHA-256 ``digest`` under ``key`` (from public_key()); else False."""
    if len(digest) != 32 or len(sig) != 64:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0 or r >= _N or s >= _N:
        return False
    w = _inv(s, _N)
    u1 = int.from_bytes(digest, "big") * w % _N
    u2 = r * w % _N
    qx, qy = key
    t = ((_GX, _GY, 1), (qx, qy, 1), _add(_GX, _GY, 1, qx, qy, 1))
    X, Y, Z = 0, 1, 0
    i = 255
    while i >= 0:
        X, Y, Z = _dbl(X, Y, Z)
        j = (u1 >> i & 1) | (u2 >> i & 1) << 1
        if j:
            X, Y, Z = _add(X, Y, Z, *t[j - 1])
        i -= 1
    if Z == 0:
        return False
    # x(R) = X / Z^2; accept if x(R) mod n == r, without inverting Z.
    zz = Z * Z % _P
    return (r * zz - X) % _P == 0 or (r + _N < _P and ((r + _N) * zz - X) % _P == 0)
