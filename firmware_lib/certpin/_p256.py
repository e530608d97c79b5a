# certpin._p256: ECDSA P-256 (ES256) signature verification in pure Python.
#
#   public_key(spki) -> (x, y)    DER SubjectPublicKeyInfo -> the public point
#   verify(key, digest, sig)      True only for a valid signature
#   check(line, digest, sig)      verify() for a pinset's update.keys line
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
# cofactor 1, so a point on it is in the group of order n. Strict DER allows
# exactly one byte string for such a key up to its point, so the reading is
# that prefix and the point's checks (certpin/_load.py, which checks update
# keys with it); anything else goes to the whole DER parser, which says what
# is wrong (certpin/_ptext.py, loaded only then).
#
# verify() takes the key from public_key() (it does not check the point
# again), the 32-byte SHA-256 digest of the signed bytes (for JWS: of the
# signing input ASCII(protected) || "." || ASCII(payload), both base64url, not
# of the payload) and the 64-byte r || s. It follows ECDSA verification as
# OpenSSL does: r and s must be in [1, n-1]; high-S signatures (s > n/2) are
# valid, as they are for OpenSSL and `cryptography`. Anything malformed (wrong
# length, r or s out of range) returns False; it never raises for bytes,
# bytearray or memoryview input.
#
# Constant time is NOT a goal: verification handles only public data (the
# key, the signed message, the signature), so timing reveals nothing secret.
# The code branches on scalar bits freely. This module must never sign.
#
# Cost (make bench, 64-bit unix port): about 5.5 ms per verify, 4.2 KB of heap
# at the peak beyond what is in use before it, 7.7 KB of RAM while imported.
# Meant to be imported for an update and dropped afterwards, as certpin drops
# _load; nothing is cached outside the module.

from binascii import a2b_base64

# public_key(spki): (x, y), else ValueError("not a P-256 public key: ...")
from certpin._load import public_key

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)


# ---- public_key ----


def check(key, digest, sig):
    # verify() for an update key line (standard base64 of the DER SPKI, as in
    # a pinset's update.keys): certpin._update's way in, one verification.
    return verify(public_key(a2b_base64(key)), digest, sig)


# ---- verify ----
#
# R = u1*G + u2*Q by interleaved width-w NAF (Moeller): one run of 256
# doublings shared by both scalars, and an addition for each nonzero digit,
# about 256/(w+1) per scalar. Every addition adds an affine point to the
# Jacobian accumulator (mixed addition: 11 multiplications instead of 16):
# the odd multiples G, 3G, ..., 31G are constants (_GT), the odd multiples
# Q, 3Q, 5Q, 7Q are made affine per verify with one inversion. Doubling uses
# the a = -3 formula. The result is compared with r without an inversion.
#
# Cost on MicroPython (unix port, measured): a reduction mod p of a product
# is half the time of a verify, products a quarter, so the count of those two
# is what matters; sums stay unreduced until the next product. A mod p costs
# about 2.5 products, a product about 3 additions. The loop is inline (a call
# per doubling would add 1.3%). Peak heap is the number of live big integers
# (~130 bytes each): dead locals are cleared, helpers return only results.

_WG = const(6)  # window of u1's NAF: _GT holds 2**(_WG-2) odd multiples of G
# x || y (32 bytes each, big-endian) of G, 3G, 5G, ..., 31G; made by
# g_table_source() in tests/support/es256.py, checked by tests/test_p256.py.
_GT = const(
    b"\x6b\x17\xd1\xf2\xe1\x2c\x42\x47\xf8\xbc\xe6\xe5\x63\xa4\x40\xf2\x77\x03\x7d\x81\x2d\xeb\x33\xa0\xf4\xa1\x39\x45\xd8\x98\xc2\x96"
    b"\x4f\xe3\x42\xe2\xfe\x1a\x7f\x9b\x8e\xe7\xeb\x4a\x7c\x0f\x9e\x16\x2b\xce\x33\x57\x6b\x31\x5e\xce\xcb\xb6\x40\x68\x37\xbf\x51\xf5"
    b"\x5e\xcb\xe4\xd1\xa6\x33\x0a\x44\xc8\xf7\xef\x95\x1d\x4b\xf1\x65\xe6\xc6\xb7\x21\xef\xad\xa9\x85\xfb\x41\x66\x1b\xc6\xe7\xfd\x6c"
    b"\x87\x34\x64\x0c\x49\x98\xff\x7e\x37\x4b\x06\xce\x1a\x64\xa2\xec\xd8\x2a\xb0\x36\x38\x4f\xb8\x3d\x9a\x79\xb1\x27\xa2\x7d\x50\x32"
    b"\x51\x59\x0b\x7a\x51\x51\x40\xd2\xd7\x84\xc8\x56\x08\x66\x8f\xdf\xef\x8c\x82\xfd\x1f\x5b\xe5\x24\x21\x55\x4a\x0d\xc3\xd0\x33\xed"
    b"\xe0\xc1\x7d\xa8\x90\x4a\x72\x7d\x8a\xe1\xbf\x36\xbf\x8a\x79\x26\x0d\x01\x2f\x00\xd4\xd8\x08\x88\xd1\xd0\xbb\x44\xfd\xa1\x6d\xa4"
    b"\x8e\x53\x3b\x6f\xa0\xbf\x7b\x46\x25\xbb\x30\x66\x7c\x01\xfb\x60\x7e\xf9\xf8\xb8\xa8\x0f\xef\x5b\x30\x06\x28\x70\x31\x87\xb2\xa3"
    b"\x73\xeb\x1d\xbd\xe0\x33\x18\x36\x6d\x06\x9f\x83\xa6\xf5\x90\x00\x53\xc7\x36\x33\xcb\x04\x1b\x21\xc5\x5e\x1a\x86\xc1\xf4\x00\xb4"
    b"\xea\x68\xd7\xb6\xfe\xdf\x0b\x71\x87\x89\x38\xd5\x1d\x71\xf8\x72\x9e\x0a\xcb\x8c\x2c\x6d\xf8\xb3\xd7\x9e\x8a\x4b\x90\x94\x9e\xe0"
    b"\x2a\x27\x44\xc9\x72\xc9\xfc\xe7\x87\x01\x4a\x96\x4a\x8e\xa0\xc8\x4d\x71\x4f\xea\xa4\xde\x82\x3f\xe8\x5a\x22\x4a\x4d\xd0\x48\xfa"
    b"\x3e\xd1\x13\xb7\x88\x3b\x4c\x59\x06\x38\x37\x9d\xb0\xc2\x1c\xda\x16\x74\x2e\xd0\x25\x50\x48\xbf\x43\x33\x91\xd3\x74\xbc\x21\xd1"
    b"\x90\x99\x20\x9a\xcc\xc4\xc8\xa2\x24\xc8\x43\xaf\xa4\xf4\xc6\x8a\x09\x0d\x04\xda\x5e\x98\x89\xda\xe2\xf8\xee\xfc\xe8\x2a\x37\x40"
    b"\x17\x7c\x83\x7a\xe0\xac\x49\x5a\x61\x80\x5d\xf2\xd8\x5e\xe2\xfc\x79\x2e\x28\x4b\x65\xea\xd5\x8a\x98\xe1\x5d\x9d\x46\x07\x2c\x01"
    b"\x63\xbb\x58\xcd\x4e\xbe\xa5\x58\xa2\x40\x91\xad\xb4\x0f\x4e\x72\x26\xee\x14\xc3\xa1\xfb\x4d\xf3\x9c\x43\xbb\xe2\xef\xc7\xbf\xd8"
    b"\xf0\x45\x4d\xc6\x97\x1a\xba\xe7\xad\xfb\x37\x89\x99\x88\x82\x65\xae\x03\xaf\x92\xde\x3a\x0e\xf1\x63\x66\x8c\x63\xe5\x9b\x9d\x5f"
    b"\xb5\xb9\x3e\xe3\x59\x2e\x2d\x1f\x4e\x65\x94\xe5\x1f\x96\x43\xe6\x2a\x3b\x21\xce\x75\xb5\xfa\x3f\x47\xe5\x9c\xde\x0d\x03\x4f\x36"
    b"\x47\x77\x69\x04\xc0\xf1\xcc\x3a\x9c\x09\x84\xb6\x6f\x75\x30\x1a\x5f\xa6\x86\x78\xf0\xd6\x4a\xf8\xba\x1a\xbc\xe3\x47\x38\xa7\x3e"
    b"\xaa\x00\x5e\xe6\xb5\xb9\x57\x28\x62\x31\x85\x65\x77\x64\x8e\x83\x81\xb2\x80\x44\x28\xd5\x73\x3f\x32\xf7\x87\xff\x71\xf1\xfc\xdc"
    b"\xcb\x6d\x28\x61\x10\x2c\x0c\x25\xce\x39\xb7\xc1\x71\x08\xc5\x07\x78\x2c\x45\x22\x57\x88\x48\x95\xc1\xfc\x7b\x74\xab\x03\xed\x83"
    b"\x58\xd7\x61\x4b\x24\xd9\xef\x51\x5c\x35\xe7\x10\x0d\x6d\x6c\xe4\xa4\x96\x71\x6e\x30\xfa\x3e\x03\xe3\x91\x50\x75\x2b\xce\xcd\xaa"
    b"\x32\x50\xfc\xf6\x86\x63\x7c\x7b\x2e\x4a\xc8\x6e\xb4\x73\xbc\xa5\x3a\x58\x21\x39\xf4\x2b\x15\x23\xfd\x76\x36\x4e\x67\x39\x9e\x83"
    b"\x42\xe7\xc3\x42\x66\x7d\x35\x93\x97\xb3\x09\x0d\x1d\x7e\xb8\x8c\x89\x7c\xd3\xc3\x3b\x56\x6a\x82\x15\xde\x24\xa0\x71\xd4\x8c\x09"
    b"\x0e\x91\xc7\x23\x9c\x26\x40\xd7\xd2\x8a\x3e\x39\xd4\x58\x3f\xa6\x3c\x0b\xc0\xa5\xdf\x64\xa4\xfe\x67\x2e\x57\x30\x45\xca\x78\x96"
    b"\x5d\xf6\x5c\x3b\x55\x0d\xba\x22\x1a\x22\x73\x3b\xb8\xe0\xbd\x6d\x7e\x68\x83\x35\x75\xe7\xa5\xae\x13\x80\x46\x54\x31\x40\xad\x55"
    b"\x3a\x67\xe2\x55\x4b\x0c\x0b\xb6\x85\xf4\xf5\x2d\x8c\x07\xfa\x84\x41\x65\x2f\xc5\xb7\x6f\x1b\x24\x84\xa4\xdc\x45\xf2\x00\xd6\x87"
    b"\x27\xd0\xf1\x87\x2f\x1f\xcf\x43\x26\xda\xf2\x67\x16\x3a\xfb\x0d\x8c\x18\x8a\xf7\x35\xa7\x61\x8a\xa9\xed\x16\xb3\x02\xf7\x93\x24"
    b"\x18\x4f\xfa\x58\x19\xd8\x0d\x51\xde\xba\x2f\xac\x46\x11\xf3\x78\x57\x63\x55\xbd\x68\x3e\x54\xab\xf2\xe2\x01\x17\x3b\x08\x83\xd1"
    b"\xc0\xa6\x6e\x27\x66\x88\xf3\x59\xa4\xc6\xd9\x08\x26\xcb\x99\x95\x45\xbd\xec\xcc\x63\xf0\x49\x16\x20\xd2\x42\xc2\x60\x90\x6e\x6f"
    b"\xd6\xd3\x3a\xde\xfa\x19\x5b\x07\xa7\xc3\x6d\xa0\x90\x85\x3b\x8c\xfd\x8c\xd1\xc6\x88\xb5\x8a\x41\xde\xdd\x69\x3d\x1c\x78\x4d\xef"
    b"\x84\xaa\xba\x16\xee\x19\x5d\x7e\x3f\x78\x24\x5f\x55\x8a\x5d\xcb\x09\xa1\x66\xab\x4b\x95\xed\xed\x55\x0c\x12\x45\x93\xd1\xbc\xa6"
    b"\x30\x1d\x9e\x50\x2d\xc7\xe0\x5d\xa8\x5d\xa0\x26\xa7\xae\x9a\xa0\xfa\xc9\xdb\x7d\x52\xa9\x5b\x3e\x3e\x3f\x9a\xa0\xa1\xb4\x5b\x8b"
    b"\x65\x51\xb6\xf6\xb3\x06\x12\x23\xe0\xd2\x3c\x02\x6b\x01\x7d\x72\x29\x8d\x9a\xe4\x68\x87\xca\x61\xd5\x8d\xb6\xae\xa1\x7e\xe2\x67"
)


def _inv(a, m):
    # a^-1 mod m (m prime, 0 < a < m): extended Euclid, ~0.1 ms on the unix
    # port (pow(a, m - 2, m) took 0.6 ms).
    x0, x1, b = 1, 0, m
    while b:
        q, r = divmod(a, b)
        a, b, x0, x1 = b, r, x1, x0 - q * x1
    return x0 % m


def _naf(k, w, out):
    # Width-w NAF of 0 <= k < 2**256: odd digits |d| < 2**(w-1), any w
    # consecutive digits at most one nonzero. Stores d & 0xFF at out[i] for
    # 2**i; returns the top digit's position, or -1 for k = 0. Works on small
    # ints fed a byte at a time: t is the unconsumed value of k's low bits (a
    # carry included) and the bytes b[j:] are worth t's bits from nb upwards.
    b = k.to_bytes(33, "little")
    full = 1 << w
    t = nb = j = i = 0
    top = -1
    while t or j < 33:
        if nb < w and j < 33:
            t += b[j] << nb
            nb += 8
            j += 1
        if t & 1:
            d = t & (full - 1)
            if d >= full >> 1:
                d -= full
            t -= d
            out[i] = d & 0xFF
            top = i
            t >>= w
            nb -= w
            i += w
        else:
            t >>= 1
            nb -= 1
            i += 1
    return top


def _dbl(x, y, z):
    # 2(x, y, z), Jacobian, a = -3 (dbl-2001-b shape); z = 0 (infinity) stays 0.
    p = _P
    zz = z * z % p
    yy = y * y % p
    z = (y * z << 1) % p
    m = (x - zz) * (x + zz) * 3 % p
    s = (x * yy << 2) % p
    x = (m * m - s - s) % p
    return x, (m * (s - x) - (yy * yy << 3)) % p, z


def _qtable(qx, qy):
    # [x, y] of Q, 3Q, 5Q, 7Q (affine), flat.
    p = _P
    X, Y, Z = _dbl(qx, qy, 1)  # 2Q
    # On the curve isomorphic by the scale Z (x, y) -> (x Z^2, y Z^3), 2Q is
    # affine (X, Y) and so is Q: 3Q = Q + 2Q, 5Q = 3Q + 2Q, 7Q = 5Q + 2Q are
    # then mixed additions, whose formulas do not involve the curve's a. A
    # Jacobian (x, y, z) there is (x, y, z Z) here. Q has prime order n, so
    # no sum below meets equal or opposite points.
    z = Z * Z % p
    x = qx * z % p
    y = qy * z % p * Z % p
    z = 1
    t = []
    for _ in range(3):
        zz = z * z % p
        h = X * zz % p - x
        r = Y * zz % p * z % p - y
        hh = h * h % p
        hhh = hh * h % p
        v = x * hh % p
        x = (r * r - hhh - v - v) % p
        y = (r * (v - x) - y * hhh) % p
        z = z * h % p
        t.append(x)
        t.append(y)
        t.append(z * Z % p)
    X = Y = Z = x = y = zz = h = r = hh = hhh = v = None  # dead: lower peak heap
    # One inversion for the three z (Montgomery's trick), then each point
    # made affine in place: t[k:k+3] = x, y, 1/z.
    a = t[2] * t[5] % p
    i = _inv(a * t[8] % p, p)
    t[2], t[5], t[8] = i * t[5] % p * t[8] % p, i * t[2] % p * t[8] % p, i * a % p
    i = a = None
    for k in (0, 3, 6):
        z = t[k + 2] * t[k + 2] % p
        t[k] = t[k] * z % p
        t[k + 1] = t[k + 1] * z % p * t[k + 2] % p
    return [qx, qy, t[0], t[1], t[3], t[4], t[6], t[7]]


def verify(key, digest, sig):
    """True iff ``sig`` (64 bytes r || s) is a valid ES256 signature of the
    32-byte SHA-256 ``digest`` under ``key`` (from public_key()); else False."""
    if len(digest) != 32 or len(sig) != 64:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0 or r >= _N or s >= _N:
        return False
    p = _P
    s = _inv(s, _N)
    u1 = int.from_bytes(digest, "big") * s % _N
    s = r * s % _N
    tq = _qtable(key[0], key[1])
    ng = bytearray(257)
    nq = bytearray(257)
    i = _naf(u1, _WG, ng)
    u1 = _naf(s, 4, nq)
    if u1 > i:
        i = u1
    u1 = s = None
    gt = memoryview(_GT)
    # Infinity is z = 0 with x = 0, which doubling keeps (x stays 0), so an
    # addition to it sees h == 0 and takes the rare branch like P + P and P - P.
    x, y, z = 0, 1, 0
    while i >= 0:
        zz = z * z % p
        yy = y * y % p
        z = (y * z << 1) % p
        m = (x - zz) * (x + zz) * 3 % p
        s = (x * yy << 2) % p
        x = (m * m - s - s) % p
        y = (m * (s - x) - (yy * yy << 3)) % p
        d = ng[i]
        e = nq[i]
        while d or e:
            if d:  # +-|d| G, from the constant table
                o = (d if d < 128 else 256 - d) >> 1 << 6
                px = int.from_bytes(gt[o : o + 32], "big")
                py = int.from_bytes(gt[o + 32 : o + 64], "big")
                if d > 127:
                    py = p - py
                d = 0
            else:  # +-|e| Q
                px = tq[e - 1 if e < 128 else 255 - e]
                py = tq[e] if e < 128 else p - tq[256 - e]
                e = 0
            zz = z * z % p
            h = px * zz % p - x
            m = py * zz % p * z % p - y
            # mixed addition (madd-2004-hmv shape); m is r, and below yy, s, zz
            # hold h^2, h^3, x*h^2 (reusing names keeps fewer integers live)
            if h == 0:  # the accumulator is infinity, the point, or minus it
                if z == 0:
                    x, y, z = px, py, 1
                elif m == 0:
                    x, y, z = _dbl(px, py, 1)
                else:
                    x, y, z = 0, 1, 0
                continue
            yy = h * h % p
            s = yy * h % p
            zz = x * yy % p
            x = (m * m - s - zz - zz) % p
            y = (m * (zz - x) - y * s) % p
            z = z * h % p
        i -= 1
    if z == 0:
        return False
    # x(R) = x / z^2 mod p; valid iff x(R) mod n == r, i.e. x(R) is r or r + n.
    zz = z * z % p
    return (r * zz - x) % p == 0 or (r + _N < p and ((r + _N) * zz - x) % p == 0)
