"""certpin._p256 (ES256 verification, P-256 SPKI reading) against `cryptography`.

- verify(): a seeded set of (key, digest, signature) cases, valid and invalid
  (r or s = 0, = n, >= n, = p; high-S; lengths 63/65/0; flipped bits in r,
  s, digest and key; a signature under another key; u1*G + u2*Q = infinity;
  additions that hit doubling or infinity inside the multi-scalar loop;
  x(R) >= n), each decided by cryptography. Checked in-process under CPython
  with bytes, bytearray and memoryview, and replayed in ONE process on each
  runtime (tests/device/p256_cases.py).
- public_key(): valid keys and crafted invalid SubjectPublicKeyInfos against
  load_der_public_key, with the reason each refusal gives.

Scale: CERTPIN_FUZZ_SCALE (default 1: deterministic; `make fuzz` sets 20).
"""
import functools
import hashlib
import json
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils

from certpin import _p256
from support import es256
from support.corpus import SCALE
from support.es256 import INF, N, P

PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def reference_verify(pt, digest, sig):
    """cryptography's verdict; a sig that is not 64 bytes is not ES256 (RFC 7518 3.4)."""
    if len(sig) != 64 or len(digest) != 32:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    try:
        es256.crypto_key(pt).verify(utils.encode_dss_signature(r, s), bytes(digest), PREHASHED)
        return True
    except InvalidSignature:
        return False


def flip(b, rnd, lo=0, hi=None):
    b = bytearray(b)
    i = rnd.randrange(lo * 8, (len(b) if hi is None else hi) * 8)
    b[i // 8] ^= 0x80 >> (i % 8)
    return bytes(b)


def special_keys():
    """Private scalars that make the multi-scalar loop's additions collide."""
    return [1, 2, 3, 7, N - 1, N - 2, N - 3, (N + 1) // 2]


def build_verify_cases(rnd):
    """[(point, digest, sig)]: valid and invalid, with the edge cases up front."""
    cases = []
    keys = [rnd.randrange(1, N) for _ in range(20 * SCALE)] + special_keys()
    for ki, d in enumerate(keys):
        q = es256.public_key_of(d)
        other = es256.public_key_of(keys[ki - 1])
        for m in range(6 if ki < 20 * SCALE else 3):
            digest = hashlib.sha256(b"message %d %d" % (ki, m)).digest()
            if m == 5:
                digest = b"\xff" * 4 + digest[4:]  # e >= n: reduced mod n
            e = int.from_bytes(digest, "big")
            r, s = es256.sign(d, e, rnd.randrange(1, N))
            sig = es256.sig_bytes(r, s)
            cases.append((q, digest, sig))  # valid
            cases.append((q, digest, es256.sig_bytes(r, N - s)))  # high-S: valid too
            cases.append((other, digest, sig))  # a valid signature under another key
            cases.append((q, flip(digest, rnd), sig))
            cases.append((q, digest, flip(sig, rnd, 0, 32)))  # a bit of r
            cases.append((q, digest, flip(sig, rnd, 32, 64)))  # a bit of s
            if m == 0:
                for rr, ss in ((0, s), (r, 0), (0, 0), (N, s), (r, N), (N + r if N + r < 2**256 else N + 1, s),
                               (r, N + s if N + s < 2**256 else N + 5), (P, s), (r, P), (2**256 - 1, s),
                               (r, 2**256 - 1), (N - 1, s), (r, N - 1), (1, 1), (r, 1), (1, s)):
                    cases.append((q, digest, es256.sig_bytes(rr, ss)))
                cases.append((q, digest, sig[:63]))
                cases.append((q, digest, sig + b"\x00"))
                cases.append((q, digest, b""))
                cases.append((q, digest[:31], sig))
                cases.append((q, digest + b"\x00", sig))
                cases.append((q, b"", sig))
                # u1*G + u2*Q = infinity: e = -r*d mod n makes u1 + u2*d = 0.
                e_inf = (-r * d) % N
                cases.append((q, e_inf.to_bytes(32, "big"), sig))
                cases.append((q, e_inf.to_bytes(32, "big"), es256.sig_bytes(r, N - s)))
    # Chosen u1, u2: additions inside the loop meet equal points, opposite
    # points and infinity (Q = +-G, +-2G, ...), u1 = 0 (digest 0 or n).
    for d in special_keys() + [rnd.randrange(1, N)]:
        q = es256.public_key_of(d)
        for u1, u2 in ((1, 1), (0, 1), (1, N - 1), (2, 1), (1, 2), (3, 5), (5, 3), (7, 7), (N - 1, 1),
                       (2**128, 2**128), (rnd.randrange(N), rnd.randrange(1, N)), (0, rnd.randrange(1, N))):
            made = es256.with_u(d, u1, u2)
            if made is None:
                # R is infinity: any r, s with e = -r*d... as chosen: u1/u2 ratio fixed.
                r = rnd.randrange(1, N)
                s = r * pow(u2, -1, N) % N
                cases.append((q, (u1 * s % N).to_bytes(32, "big"), es256.sig_bytes(r, s)))
                continue
            digest, r, s = made
            cases.append((q, digest, es256.sig_bytes(r, s)))
            cases.append((q, digest, es256.sig_bytes(r, N - s)))
            if int.from_bytes(digest, "big") == 0:
                cases.append((q, N.to_bytes(32, "big"), es256.sig_bytes(r, s)))  # e = n: u1 = 0 too
    # x(R) >= n: only r = x(R) - n verifies (the "r + n < p" branch). With
    # u1 = 0 and u2 = 1, R = Q, so Q is any point with x in [n, p).
    found = 0
    x = N
    while found < 3 * SCALE:
        q = es256.point_with_x(x)
        x += 1
        if q is None:
            continue
        found += 1
        r = q[0] - N
        for digest in (bytes(32), N.to_bytes(32, "big")):
            cases.append((q, digest, es256.sig_bytes(r, r)))  # valid
            cases.append((q, digest, es256.sig_bytes(q[0], q[0] - N)))  # r = x(R) >= n: out of range
        u2 = 1 + rnd.randrange(1, 100)
        q2 = es256.mul(pow(u2, -1, N), q)  # u2 * q2 = q
        cases.append((q2, bytes(32), es256.sig_bytes(r, r * pow(u2, -1, N) % N)))
    return cases


@pytest.fixture(scope="module")
def verify_cases():
    cases = build_verify_cases(random.Random(8 if SCALE == 1 else None))
    return [(q, dg, sg, reference_verify(q, dg, sg)) for q, dg, sg in cases]


def test_cases_cover_both_verdicts(verify_cases):
    assert len(verify_cases) >= 1000
    valid = sum(1 for c in verify_cases if c[3])
    assert valid >= 250 and len(verify_cases) - valid >= 500, valid


def test_verify_agrees_with_cryptography_in_process(verify_cases):
    bad = []
    for i, (q, dg, sg, want) in enumerate(verify_cases):
        form = (bytes, bytearray, memoryview)[i % 3]
        got = _p256.verify(q, form(dg), form(sg))
        if got is not want:
            bad.append((i, q, dg.hex(), sg.hex(), want, got))
    assert not bad, bad[:5]


def write_cases(path, verify_cases, spki_cases):
    with open(path, "w") as f:
        for der in spki_cases:
            f.write("k,%s\n" % der.hex())
        for q, dg, sg, _ in verify_cases:
            f.write("v,%x,%x,%s,%s\n" % (q[0], q[1], dg.hex(), sg.hex()))


def run_cases(runtime, path, timeout):
    p = runtime.run("p256_cases.py", path, timeout=timeout)
    lines = p.stdout.splitlines()
    assert lines and lines[-1].startswith("{"), "p256_cases died on %s: rc=%s\nstderr=%s\nstdout tail=%s" % (
        runtime, p.returncode, p.stderr[-3000:], p.stdout[-2000:])
    results = [l.split(" ", 2)[2] for l in lines[:-1] if l.startswith("R ")]
    return json.loads(lines[-1]), results


def spki_outcome(der):
    try:
        x, y = _p256.public_key(der)
        return "ok %064x %064x" % (x, y)
    except ValueError as e:
        return "refused %s" % e


def test_replay_in_one_process(runtime, verify_cases, spki_cases, tmp_path):
    path = str(tmp_path / "p256_cases.txt")
    write_cases(path, verify_cases, spki_cases)
    summary, results = run_cases(runtime, path, timeout=300 * SCALE)
    print("\n%s p256 cases: %s" % (runtime, json.dumps(summary)))
    assert summary["crashes"] == [], summary["crashes"]
    assert summary["tried"] == len(spki_cases) + len(verify_cases) == len(results)
    # public_key: same verdict and same message as CPython in-process.
    for der, got in zip(spki_cases, results):
        assert got == spki_outcome(der), der.hex()
    # verify: cryptography's verdict, every case.
    wrong = [(i, q, dg.hex(), sg.hex(), want) for i, ((q, dg, sg, want), got) in
             enumerate(zip(verify_cases, results[len(spki_cases):])) if got != str(want)]
    assert not wrong, wrong[:5]
    if runtime.name == "micropython":
        # Nothing retained across the run: each verify's numbers are garbage after it.
        drift = summary["mem_end"] - summary["mem_warm"]
        assert drift <= 2048, summary


# ---------------------------------------------------------------- public_key

def der_len(n):
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF])


def tlv(tag, body, length=None):
    return bytes([tag]) + (der_len(len(body)) if length is None else length) + body


EC_OID = tlv(6, bytes.fromhex("2a8648ce3d0201"))
P256_OID = tlv(6, bytes.fromhex("2a8648ce3d030107"))


def spki_from(alg_params, point, unused=0, outer_len=None, bits_len=None):
    alg = tlv(0x30, EC_OID + alg_params)
    bits = tlv(3, bytes([unused]) + point, bits_len)
    return tlv(0x30, alg + bits, outer_len)


def explicit_params():
    """ECParameters (RFC 3279) spelling out P-256 instead of naming it."""
    def integer(v):
        b = v.to_bytes((v.bit_length() + 8) // 8, "big")
        return tlv(2, b)
    field = tlv(0x30, tlv(6, bytes.fromhex("2a8648ce3d0101")) + integer(P))
    curve = tlv(0x30, tlv(4, (P - 3).to_bytes(32, "big")) + tlv(4, es256.B.to_bytes(32, "big")))
    base = tlv(4, b"\x04" + es256.G[0].to_bytes(32, "big") + es256.G[1].to_bytes(32, "big"))
    return tlv(0x30, integer(1) + field + curve + base + integer(N) + integer(1))


def point_bytes(pt):
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


@functools.lru_cache(maxsize=None)
def crafted_invalid():
    """(name, spki DER, words the refusal must contain)."""
    q = es256.public_key_of(12345)
    good = es256.spki(*q)
    pb = point_bytes(q)
    small = next(es256.point_with_x(x) for x in range(1, 100) if es256.point_with_x(x))  # x + p < 2**256
    comp_point = es256.crypto_key(q).public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    cases = [
        ("not on the curve", es256.spki(q[0], (q[1] + 1) % P), "not on the curve"),
        ("x = x + p (on the curve mod p)", es256.spki(small[0] + P, small[1]), "not below the field prime"),
        ("x = p", es256.spki(P, q[1]), "not below the field prime"),
        ("y = p", es256.spki(q[0], P), "not below the field prime"),
        ("y = p + y", es256.spki(q[0], P + 1), "not below the field prime"),
        ("x, y = 0, 0", es256.spki(0, 0), "not on the curve"),
        ("compressed point", spki_from(P256_OID, comp_point), "compressed point"),
        ("hybrid point", es256.spki(q[0], q[1], form=6 | (q[1] & 1)), "not 0x04 (an uncompressed point)"),
        ("point type 05", es256.spki(q[0], q[1], form=5), "starts with 0x05"),
        ("point at infinity", spki_from(P256_OID, b"\x00"), "uncompressed point"),
        ("P-384 key", es256.crypto_spki(ec.generate_private_key(ec.SECP384R1())), "the curve is 1.3.132.0.34 (P-384)"),
        ("secp256k1 key", es256.crypto_spki(ec.generate_private_key(ec.SECP256K1())), "the curve is 1.3.132.0.10, not prime256v1"),
        ("explicit parameters", spki_from(explicit_params(), pb), "explicit curve parameters"),
        ("NULL instead of a curve", spki_from(b"\x05\x00", pb), "named curve OID"),
        ("no curve", spki_from(b"", pb), "the named curve OID at offset 13 is truncated"),
        ("curve then NULL", spki_from(P256_OID + b"\x05\x00", pb), "extra bytes in the AlgorithmIdentifier"),
        ("trailing byte", good + b"\x00", "1 bytes after"),
        ("trailing bytes", good + b"\x30\x00", "2 bytes after"),
        ("non-minimal outer length", spki_from(P256_OID, pb, outer_len=b"\x81\x59"), "non-minimal"),
        ("non-minimal BIT STRING length", spki_from(P256_OID, pb, bits_len=b"\x81\x42"), "non-minimal"),
        ("non-minimal 2-octet length", spki_from(P256_OID, pb, outer_len=b"\x82\x00\x59"), "non-minimal"),
        ("indefinite length", spki_from(P256_OID, pb, outer_len=b"\x80") + b"\x00\x00", "indefinite"),
        ("unused bits", spki_from(P256_OID, pb, unused=1), "unused bits"),
        ("empty BIT STRING", tlv(0x30, tlv(0x30, EC_OID + P256_OID) + b"\x03\x00"), "is empty"),
        ("long-form length over 2 octets", spki_from(P256_OID, pb, outer_len=b"\x83\x00\x00\x59"), "over-long"),
        ("length past the end", spki_from(P256_OID, pb, bits_len=b"\x43"), "truncated"),
        ("64-byte point", spki_from(P256_OID, pb[:-1]), "found 64 bytes"),
        ("66-byte point", spki_from(P256_OID, pb + b"\x00"), "found 66 bytes"),
        ("truncated", good[:-1], "truncated"),
        ("one byte", b"\x30", "truncated"),
        ("empty", b"", "truncated"),
        ("not a SEQUENCE", b"\x31" + good[1:], "SubjectPublicKeyInfo SEQUENCE"),
        ("RSA key", es256.crypto_spki(rsa.generate_private_key(65537, 2048)), "an RSA key"),
        ("Ed25519 key", es256.crypto_spki(ed25519.Ed25519PrivateKey.generate()), "an Ed25519 key"),
        ("P-256 OID as algorithm", tlv(0x30, tlv(0x30, P256_OID + P256_OID) + tlv(3, b"\x00" + pb)), "not id-ecPublicKey"),
    ]
    return cases


def test_crafted_spki_cases_are_what_they_say():
    q = es256.public_key_of(12345)
    assert es256.spki(*q) == spki_from(P256_OID, point_bytes(q))
    assert es256.spki(*q) == es256.crypto_spki(ec.derive_private_key(12345, ec.SECP256R1()))


def spki_of(k):
    return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def crypto_outcome(der):
    try:
        k = serialization.load_der_public_key(bytes(der))
    except Exception:
        return None
    return k


@pytest.mark.parametrize("name,der,why", crafted_invalid(), ids=[c[0] for c in crafted_invalid()])
def test_public_key_refuses(name, der, why):
    for form in (bytes, bytearray, memoryview):
        with pytest.raises(ValueError) as e:
            _p256.public_key(form(der))
        msg = str(e.value)
        assert msg.startswith("not a P-256 public key: ") and why in msg, msg
    k = crypto_outcome(der)
    # cryptography refuses all of them but other key types and three other
    # encodings of the same P-256 key (compressed, hybrid, explicit curve
    # parameters), which certpin refuses on purpose: it reads one encoding, the
    # one every tool exports by default.
    if name in ("compressed point", "hybrid point", "explicit parameters"):
        assert isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1"
        assert (k.public_numbers().x, k.public_numbers().y) == es256.public_key_of(12345)
    elif name in ("P-384 key", "secp256k1 key", "RSA key", "Ed25519 key"):
        assert k is not None and not (isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1")
    else:
        assert k is None, name


def test_public_key_refuses_non_bytes():
    for v in (None, "3059", 5, [0x30]):
        with pytest.raises(ValueError, match="not a P-256 public key: expected DER bytes"):
            _p256.public_key(v)


def valid_spkis(rnd):
    """DER keys from cryptography: random, G, -G, and keys with leading zero bytes."""
    out = [es256.crypto_spki(ec.derive_private_key(d, ec.SECP256R1())) for d in (1, N - 1, 2, 3)]
    out += [es256.crypto_spki(ec.derive_private_key(rnd.randrange(1, N), ec.SECP256R1())) for _ in range(20 * SCALE)]
    # Coordinates below 2**248 (a leading zero byte): found by search, seeded.
    want = {"x": 2, "y": 2}
    while want["x"] or want["y"]:
        pt = es256.public_key_of(rnd.randrange(1, N))
        for c, v in (("x", pt[0]), ("y", pt[1])):
            if want[c] and v < 2**248:
                want[c] -= 1
                out.append(es256.spki(*pt))
    return out


@pytest.fixture(scope="module")
def spki_cases():
    """Valid keys, the crafted invalid ones, and seeded bit flips / truncations of valid keys."""
    rnd = random.Random(9 if SCALE == 1 else None)
    valid = valid_spkis(rnd)
    cases = list(valid) + [c[1] for c in crafted_invalid()]
    for i in range(150 * SCALE):
        der = valid[i % len(valid)]
        k = rnd.randrange(4)
        if k == 0:
            der = flip(der, rnd)
        elif k == 1:
            der = flip(der, rnd, 0, 26)  # the header: lengths, tags, OIDs
        elif k == 2:
            der = der[: rnd.randrange(len(der))]
        else:
            i = rnd.randrange(len(der))
            der = der[:i] + bytes([rnd.randrange(256)]) + der[i:]
        cases.append(der)
    return cases


def test_public_key_agrees_with_cryptography(spki_cases):
    accepted = 0
    for der in spki_cases:
        k = crypto_outcome(der)
        try:
            got = _p256.public_key(der)
        except ValueError as e:
            assert str(e).startswith("not a P-256 public key: ")
            # Refused: cryptography refuses too, or reads something certpin
            # refuses by design (another curve or algorithm, a compressed or
            # hybrid point).
            if isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1":
                assert spki_of(k) != bytes(der), der.hex()
            continue
        accepted += 1
        assert isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1", der.hex()
        n = k.public_numbers()
        assert got == (n.x, n.y)
        assert spki_of(k) == bytes(der)
    assert accepted >= 20 * SCALE


# ---------------------------------------------------------------- internals
# (CPython only: the differential tests above are what proves verify(); these
# pin down the two pieces a wrong edit could break for rare inputs only.)

def test_g_table_holds_the_odd_multiples_of_g():
    t = _p256._GT
    assert len(t) == 64 * 2 ** (_p256._WG - 2)
    for i in range(len(t) // 64):
        x, y = es256.public_key_of(2 * i + 1)
        assert t[64 * i : 64 * i + 64] == x.to_bytes(32, "big") + y.to_bytes(32, "big"), i


@pytest.mark.parametrize("w", [4, 5, 6, 7, 8])
def test_naf_digits(w):
    rnd = random.Random(w)
    for k in [0, 1, 2, 2**255, 2**256 - 1, N - 1, 2**w - 1, 2**(w - 1)] + [rnd.randrange(2**256) for _ in range(200)]:
        out = bytearray(257)
        top = _p256._naf(k, w, out)
        digits = [d - 256 if d > 127 else d for d in out]
        assert sum(d << i for i, d in enumerate(digits)) == k
        nz = [i for i, d in enumerate(digits) if d]
        assert top == (nz[-1] if nz else -1)
        assert all(d % 2 and abs(d) < 2 ** (w - 1) for d in digits if d)
        assert all(b - a >= w for a, b in zip(nz, nz[1:]))
