"""Test-side P-256 helpers: reference arithmetic to CRAFT cases, never the oracle.

The oracle for every verification test is `cryptography`; this module only
builds inputs `cryptography` cannot make on request: signatures with chosen
nonces and chosen u1/u2 (so that u1*G + u2*Q hits infinity, doubles inside an
addition, or has x(R) >= n), points with chosen x, raw SPKI encodings.
Plain affine arithmetic, written for clarity, CPython only.
"""
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
INF = None

# DER prefix of every P-256 uncompressed named-curve SubjectPublicKeyInfo.
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def on_curve(pt):
    x, y = pt
    return (y * y - x * x * x + 3 * x - B) % P == 0


def add(a, b):
    if a is INF:
        return b
    if b is INF:
        return a
    (x1, y1), (x2, y2) = a, b
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return INF
        lam = (3 * x1 * x1 - 3) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def neg(a):
    return INF if a is INF else (a[0], (-a[1]) % P)


def mul(k, pt):
    k %= N
    acc = INF
    while k:
        if k & 1:
            acc = add(acc, pt)
        pt = add(pt, pt)
        k >>= 1
    return acc


def point_with_x(x):
    """A curve point with this x coordinate (reduced mod p), or None."""
    rhs = (x * x * x - 3 * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)  # p = 3 mod 4
    return (x, y) if y * y % P == rhs else None


def spki(x, y, form=4):
    """Raw uncompressed SPKI of (x, y) (x, y need not be a valid point)."""
    return SPKI_PREFIX + bytes([form]) + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def public_key_of(d):
    """d*G (None for infinity), computed by cryptography: fast, and not this module's arithmetic."""
    d %= N
    if d == 0:
        return INF
    n = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return n.x, n.y


def crypto_key(pt):
    """cryptography's public key object for an affine point (refuses off-curve)."""
    return ec.EllipticCurvePublicNumbers(pt[0], pt[1], ec.SECP256R1()).public_key()


def crypto_spki(private):
    return private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sig_bytes(r, s):
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign(d, e, k):
    """ECDSA signature (r, s) of digest integer e with private d and nonce k."""
    r = public_key_of(k)[0] % N
    s = pow(k, -1, N) * (e + r * d) % N
    return r, s


def with_u(d, u1, u2):
    """(digest, r, s) whose verification under Q = d*G computes R = u1*G + u2*Q.

    u1 = e/s and u2 = r/s mod n (u2 != 0), so pick r = x(R) mod n, s = r/u2,
    e = u1*s. Returns None when R is infinity (no such signature).
    """
    R = public_key_of(u1 + u2 * d)
    if R is INF:
        return None
    r = R[0] % N
    s = r * pow(u2, -1, N) % N
    e = u1 * s % N
    return e.to_bytes(32, "big"), r, s


def g_table_source(w):
    """Source text of certpin._p256's _GT for window w: x || y of G, 3G, ..., (2**(w-1) - 1)G.

    Regenerate with: python -c "import sys; sys.path.insert(0, 'tests');
    from support.es256 import g_table_source; print(g_table_source(6))"
    """
    out = b"".join(
        x.to_bytes(32, "big") + y.to_bytes(32, "big") for x, y in (public_key_of(2 * i + 1) for i in range(2 ** (w - 2)))
    )
    lines = ['    b"' + "".join("\\x%02x" % c for c in out[j : j + 32]) + '"' for j in range(0, len(out), 32)]
    return "_GT = const(\n" + "\n".join(lines) + "\n)"
