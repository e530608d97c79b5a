"""Certificate shapes that host tools get wrong: a deterministic generator.

    python tests/support/certshapes.py OUTDIR     writes <name>.der / .pem / .key.pem, ca.pem, shapes.json

``build()`` returns {name: Shape}. Each shape is a leaf certificate for
"localhost" / 127.0.0.1, issued by one CA (``ca()``), in which ONE thing is
unusual: a key that `cryptography` re-encodes differently (RSA without the NULL
parameter, explicit EC parameters, a compressed point, ...), a field
`cryptography` cannot decode (an undecodable subject attribute, duplicated
extensions, a year-0 date, ...), or an encoding the device's strict walk
refuses (a non-minimal length, trailing data, version 4, ...). ``Shape.spki`` is
the exact SubjectPublicKeyInfo placed in the certificate, so the pin every tool
must print is sha256(spki), known without asking any parser.

Everything is fixed (keys from constant scalars or seeded primes, RFC 6979
ECDSA, fixed dates and serials): the corpus is the same bytes on every run, so
it is generated at test time and not committed (tests/test_certshapes.py).
"""
import datetime
import functools
import hashlib
import ipaddress
import json
import os
import random
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

if __name__ == "__main__":  # run as a script: import the sibling helpers
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support.corpus import body, children, tlv  # noqa: E402

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
SERIAL = 0x5EA15EA15EA1
CA_NAME = "certpin shapes CA"

# DER of the object identifiers used below
OID_RSA = bytes.fromhex("06092a864886f70d010101")
OID_RSA_PSS = bytes.fromhex("06092a864886f70d01010a")
OID_EC = bytes.fromhex("06072a8648ce3d0201")
OID_P256 = bytes.fromhex("06082a8648ce3d030107")
OID_PRIME_FIELD = bytes.fromhex("06072a8648ce3d0101")
OID_ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")
OID_ED25519 = bytes.fromhex("06032b6570")
OID_CN = bytes.fromhex("0603550403")
OID_O = bytes.fromhex("060355040a")
OID_SAN = bytes.fromhex("0603551d11")
OID_BASIC_CONSTRAINTS = bytes.fromhex("0603551d13")
OID_KEY_USAGE = bytes.fromhex("0603551d0f")
OID_POLICIES = bytes.fromhex("0603551d20")
OID_NAME_CONSTRAINTS = bytes.fromhex("0603551d1e")
OID_ANY_POLICY = bytes.fromhex("0604551d2000")
OID_CPS = bytes.fromhex("06082b06010505070201")
OID_USER_NOTICE = bytes.fromhex("06082b06010505070202")
OID_PRIVATE = bytes.fromhex("060a2b0601040182e3650102")  # 1.3.6.1.4.1.29157.1.2, unregistered
NULL = b"\x05\x00"
SIGALG = tlv(0x30, OID_ECDSA_SHA256)

# P-256 domain parameters (SEC 2), for the explicit-parameters shape
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = P256_P - 3
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
P256_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def integer(n):
    """DER INTEGER of a non-negative int (minimal, with a leading 00 when the top bit is set)."""
    b = n.to_bytes(n.bit_length() // 8 + 1, "big")
    return tlv(0x02, b[1:] if len(b) > 1 and b[0] == 0 and not b[1] & 0x80 else b)


def long_len(el, octets=2):
    """el with its own length re-encoded in `octets` length octets (a non-minimal length)."""
    return el[:1] + bytes([0x80 | octets]) + len(body(el)).to_bytes(octets, "big") + body(el)


# ---------------------------------------------------------------- keys


@functools.lru_cache(maxsize=None)
def keys():
    """Fixed keys: the CA's, the usual leaf key, and one per key type."""
    return {
        "ca": ec.derive_private_key(0x5348415045 * 15485863, ec.SECP256R1()),
        "p256": ec.derive_private_key(0x4C454146 * 32452843, ec.SECP256R1()),
        "p384": ec.derive_private_key(0x503338 * 49979687, ec.SECP384R1()),
        "rsa": _rsa(2048, 2026),
        "ed25519": ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"certpin ed25519").digest()),
        "ed448": ed448.Ed448PrivateKey.from_private_bytes(hashlib.shake_256(b"certpin ed448").digest(57)),
        "x25519": x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(b"certpin x25519").digest()),
    }


def _rsa(bits, seed):
    # cryptography cannot derive an RSA key from a seed: find two primes with a seeded PRNG.
    r = random.Random(seed)
    e = 65537
    p = _prime(r, bits // 2, e)
    q = _prime(r, bits // 2, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    pub = rsa.RSAPublicNumbers(e, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                 rsa.rsa_crt_iqmp(p, q), pub).private_key()


def _prime(r, bits, e):
    small = [p for p in range(3, 2000, 2) if all(p % k for k in range(3, int(p ** 0.5) + 1, 2))]
    while True:
        n = r.getrandbits(bits) | (3 << (bits - 2)) | 1
        if any(n % p == 0 for p in small) or (n - 1) % e == 0:
            continue
        d, s = n - 1, 0
        while not d & 1:
            d, s = d >> 1, s + 1
        for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):  # Miller-Rabin, fixed bases
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


def spki_der(key):
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# ---------------------------------------------------------------- certificates


def sign(tbs):
    sig = keys()["ca"].sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return tlv(0x30, tbs + SIGALG + tlv(0x03, b"\x00" + sig))


def name(*rdns):
    """A Name from RDNs, each a list of (oid DER, value TLV)."""
    return tlv(0x30, b"".join(tlv(0x31, b"".join(tlv(0x30, o + v) for o, v in rdn)) for rdn in rdns))


def cn(text):
    return [(OID_CN, tlv(0x0C, text.encode()))]


def utc(dt):
    return tlv(0x17, dt.strftime("%y%m%d%H%M%SZ").encode())


def validity(nb=None, na=None):
    return tlv(0x30, (nb or utc(T0)) + (na or utc(T0 + datetime.timedelta(days=3650))))


def ext(oid, value, critical=False):
    return tlv(0x30, oid + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value))


def san_value(dns="localhost", ip="127.0.0.1"):
    return tlv(0x30, tlv(0x82, dns.encode()) + tlv(0x87, ipaddress.ip_address(ip).packed))


def san(**kw):
    return ext(OID_SAN, san_value(**kw))


def extensions(*exts):
    return tlv(0xA3, tlv(0x30, b"".join(exts)))


class Fields:
    """The parts of a TBSCertificate, each a DER element (b"" = absent), in order."""

    ORDER = ("version", "serial", "signature", "issuer", "validity", "subject", "spki", "issuer_uid",
             "subject_uid", "extensions")

    def __init__(self, spki, **kw):
        self.version = bytes.fromhex("a003020102")
        self.serial = integer(SERIAL)
        self.signature = SIGALG
        self.issuer = name(cn(CA_NAME))
        self.validity = validity()
        self.subject = name(cn("localhost"))
        self.spki = spki
        self.issuer_uid = b""
        self.subject_uid = b""
        self.extensions = extensions(san())
        for k, v in kw.items():
            assert k in self.ORDER, k
            setattr(self, k, v)

    def tbs(self):
        return tlv(0x30, b"".join(getattr(self, k) for k in self.ORDER))


@functools.lru_cache(maxsize=None)
def ca():
    """(DER, PEM) of the self-signed CA that issues every shape."""
    k = keys()["ca"]
    f = Fields(spki_der(k), subject=name(cn(CA_NAME)),
               extensions=extensions(ext(OID_BASIC_CONSTRAINTS, tlv(0x30, b"\x01\x01\xff"), critical=True),
                                     ext(OID_KEY_USAGE, tlv(0x03, b"\x01\x06"), critical=True)))
    der = sign(f.tbs())
    return der, pem(der)


def pem(der):
    import base64

    b = base64.encodebytes(der).replace(b"\n", b"")
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(b[i:i + 64] for i in range(0, len(b), 64)) + \
        b"\n-----END CERTIFICATE-----\n"


def pkcs7(ders):
    """A degenerate PKCS#7 SignedData holding ders as they are (what `openssl crl2pkcs7` writes)."""
    signed = tlv(0x30, integer(1) + tlv(0x31, b"") + tlv(0x30, bytes.fromhex("06092a864886f70d010701"))
                 + tlv(0xA0, b"".join(ders)) + tlv(0x31, b""))
    return tlv(0x30, bytes.fromhex("06092a864886f70d010702") + tlv(0xA0, signed))


class Shape:
    def __init__(self, name, der, spki, key, why, device):
        self.name = name
        self.der = der  # the certificate, exactly as a server would send it
        self.spki = spki  # the SubjectPublicKeyInfo exactly as it is inside der
        self.key = key  # private key to serve it with (None: no TLS stack can use the key)
        self.why = why
        self.device = device  # "hash": the device's strict walk reads it; "refuse": it does not

    @property
    def pin(self):
        import base64

        return "sha256/" + base64.b64encode(hashlib.sha256(self.spki).digest()).decode()


# ---------------------------------------------------------------- the shapes


def _ec_explicit_spki(key):
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    curve = tlv(0x30, tlv(0x04, P256_A.to_bytes(32, "big")) + tlv(0x04, P256_B.to_bytes(32, "big")))
    params = tlv(0x30, integer(1) + tlv(0x30, OID_PRIME_FIELD + integer(P256_P)) + curve
                 + tlv(0x04, b"\x04" + P256_GX.to_bytes(32, "big") + P256_GY.to_bytes(32, "big"))
                 + integer(P256_N) + integer(1))
    return tlv(0x30, tlv(0x30, OID_EC + params) + tlv(0x03, b"\x00" + point))


def _rsa_key_bits(key, modulus_pad=False, seq_octets=None):
    n = key.public_key().public_numbers()
    m = integer(n.n)
    if modulus_pad:  # one more leading zero octet: a non-minimal INTEGER
        m = tlv(0x02, b"\x00" + body(m))
    inner = tlv(0x30, m + integer(n.e), seq_octets)
    return tlv(0x03, b"\x00" + inner)


def build():
    """{name: Shape}: every shape, built from fixed keys (the same bytes every time)."""
    k = keys()
    leaf = spki_der(k["p256"])
    alg, bits = children(body(leaf))
    out = {}

    def add(name, why, spki=leaf, key=k["p256"], device="hash", der=None, **fields):
        assert name not in out, name
        if der is None:
            der = sign(Fields(spki, **fields).tbs())
        out[name] = Shape(name, der, spki, key, why, device)

    # --- ordinary certificates, one per key type (controls)
    add("ok-ec-p256", "a plain P-256 leaf")
    add("ok-ec-p384", "a plain P-384 leaf", spki=spki_der(k["p384"]), key=k["p384"])
    add("ok-rsa-2048", "a plain RSA-2048 leaf (rsaEncryption with NULL parameters)", spki=spki_der(k["rsa"]), key=k["rsa"])
    add("ok-ed25519", "a plain Ed25519 leaf", spki=spki_der(k["ed25519"]), key=k["ed25519"])
    add("ok-ed448", "a plain Ed448 leaf", spki=spki_der(k["ed448"]), key=k["ed448"])
    add("ok-x25519", "an X25519 key (no TLS server can use it)", spki=spki_der(k["x25519"]), key=None)
    add("ok-v1-no-extensions", "a v1 certificate: no version field, no extensions", version=b"", extensions=b"")
    add("ok-empty-subject", "an empty subject Name (the name is in the SAN)", subject=tlv(0x30, b""))
    add("ok-unique-ids", "issuerUniqueID and subjectUniqueID present",
        issuer_uid=tlv(0x81, b"\x00\x01"), subject_uid=tlv(0x82, b"\x00\x02"))
    add("ok-unknown-critical-extension", "an unrecognised critical extension",
        extensions=extensions(san(), ext(OID_PRIVATE, tlv(0x04, b"x"), critical=True)))

    # --- keys whose re-encoding is not the bytes in the certificate
    rsa_bits = children(body(spki_der(k["rsa"])))[1]
    add("rsa-no-null-params", "RSA AlgorithmIdentifier without the NULL parameter (issued in the wild)",
        spki=tlv(0x30, tlv(0x30, OID_RSA) + rsa_bits), key=k["rsa"])
    add("rsa-pss-key", "an RSA key under id-RSASSA-PSS with no parameters",
        spki=tlv(0x30, tlv(0x30, OID_RSA_PSS) + rsa_bits), key=k["rsa"])
    add("rsa-params-not-null", "rsaEncryption with an INTEGER where the NULL parameter goes",
        spki=tlv(0x30, tlv(0x30, OID_RSA + integer(0)) + rsa_bits), key=k["rsa"])
    add("rsa-modulus-leading-zero", "RSAPublicKey modulus INTEGER with a superfluous leading zero octet",
        spki=tlv(0x30, tlv(0x30, OID_RSA + NULL) + _rsa_key_bits(k["rsa"], modulus_pad=True)), key=k["rsa"])
    add("rsa-key-nonminimal-length", "RSAPublicKey SEQUENCE (inside the BIT STRING) with a non-minimal length",
        spki=tlv(0x30, tlv(0x30, OID_RSA + NULL) + _rsa_key_bits(k["rsa"], seq_octets=3)), key=k["rsa"])
    add("ec-explicit-params", "P-256 key with explicit curve parameters instead of the named curve",
        spki=_ec_explicit_spki(k["p256"]))
    compressed = k["p256"].public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.CompressedPoint)
    add("ec-compressed-point", "P-256 key as a compressed point",
        spki=tlv(0x30, alg + tlv(0x03, b"\x00" + compressed)))
    add("ec-unknown-curve", "id-ecPublicKey with an unregistered curve OID", key=None,
        spki=tlv(0x30, tlv(0x30, OID_EC + OID_PRIVATE) + bits))
    add("ed25519-null-params", "Ed25519 AlgorithmIdentifier with a NULL parameter (RFC 8410: absent)",
        spki=tlv(0x30, tlv(0x30, OID_ED25519 + NULL) + children(body(spki_der(k["ed25519"])))[1]), key=k["ed25519"])
    add("spki-oid-nonminimal-length", "the key's algorithm OID with a non-minimal length (81 07)",
        spki=tlv(0x30, tlv(0x30, long_len(OID_EC, 1) + OID_P256) + bits))
    add("unknown-key-algorithm", "an unregistered key algorithm OID", key=None,
        spki=tlv(0x30, tlv(0x30, OID_PRIVATE) + tlv(0x03, b"\x00" + bytes(range(48)))))
    add("key-bitstring-unused-bits", "the key BIT STRING says 3 unused bits", key=None,
        spki=tlv(0x30, alg + tlv(0x03, b"\x03" + body(bits)[1:])))
    add("key-bitstring-empty", "an empty key BIT STRING", key=None, spki=tlv(0x30, alg + tlv(0x03, b"\x00")))

    # --- encodings the device's strict walk refuses (the key is still there to find)
    add("spki-nonminimal-length", "the SubjectPublicKeyInfo SEQUENCE length in a non-minimal form",
        spki=long_len(leaf), device="refuse")
    add("spki-algorithm-nonminimal-length", "the key's AlgorithmIdentifier length in a non-minimal form",
        spki=tlv(0x30, long_len(alg, 1) + bits), device="refuse")
    add("spki-bitstring-nonminimal-length", "the key BIT STRING length in a non-minimal form (81 42)",
        spki=tlv(0x30, alg + long_len(bits, 1)), device="refuse")
    add("spki-trailing-data", "a NULL after the key BIT STRING inside the SubjectPublicKeyInfo",
        spki=tlv(0x30, alg + bits + NULL), device="refuse")
    add("version-4", "version INTEGER 3 (v4): cryptography raises InvalidVersion",
        version=bytes.fromhex("a003020103"), device="refuse")
    add("version-v1-explicit", "version v1 encoded explicitly (DER forbids encoding the DEFAULT)",
        version=bytes.fromhex("a003020100"))
    add("subject-nonminimal-length", "the subject Name length in a non-minimal form", device="refuse",
        subject=long_len(name(cn("localhost")), 2))
    add("extensions-trailing-data", "a NULL after the extensions inside TBSCertificate", device="refuse",
        extensions=extensions(san()) + NULL)
    base = sign(Fields(leaf).tbs())
    add("certificate-nonminimal-length", "the outer Certificate length in a non-minimal form (83 ...)",
        device="refuse", der=long_len(base, 3))
    add("certificate-trailing-data", "two bytes after the certificate", device="refuse", der=base + b"\x00\x00")
    add("certificate-indefinite-length", "BER indefinite length on the outer Certificate", device="refuse",
        der=b"\x30\x80" + body(base) + b"\x00\x00")
    big = ext(OID_PRIVATE, tlv(0x04, b"\x00" * 70000))
    add("large-70k", "a 70 KB certificate (3-octet lengths: the device declines over 64 KiB)", device="refuse",
        extensions=extensions(san(), big))

    # --- names cryptography cannot decode
    add("subject-invalid-utf8", "the subject CN is a UTF8String holding invalid UTF-8",
        subject=name([(OID_CN, tlv(0x0C, b"local\xff\xfehost"))]))
    add("subject-bmpstring-odd-length", "a BMPString of odd length in the subject",
        subject=name(cn("localhost"), [(OID_O, tlv(0x1E, b"\x00A\x00"))]))
    add("subject-printable-bad-char", "a PrintableString with '@' and '*' in the subject",
        subject=name(cn("localhost"), [(OID_O, tlv(0x13, b"a@b*c"))]))
    add("subject-universalstring-bad", "a UniversalString whose length is not a multiple of 4",
        subject=name(cn("localhost"), [(OID_O, tlv(0x1C, b"\x00\x00\x00A\x00"))]))
    add("subject-empty-rdn", "an empty RelativeDistinguishedName (SET {})",
        subject=tlv(0x30, tlv(0x31, b"") + body(name(cn("localhost")))))
    add("subject-duplicate-attribute-in-rdn", "one RDN holding the same attribute twice",
        subject=name(cn("localhost") + cn("localhost")))
    add("subject-value-not-a-string", "a subject attribute whose value is a SEQUENCE",
        subject=name(cn("localhost"), [(OID_O, tlv(0x30, integer(5)))]))
    add("issuer-invalid-utf8", "the issuer CN is a UTF8String holding invalid UTF-8",
        issuer=name([(OID_CN, tlv(0x0C, b"CA\xc3\x28"))]))
    add("issuer-empty-rdn", "an empty RDN in the issuer", issuer=tlv(0x30, tlv(0x31, b"") + body(name(cn(CA_NAME)))))

    # --- extensions cryptography cannot decode
    add("ext-duplicate-san", "the subjectAltName extension twice", extensions=extensions(san(), san()))
    add("ext-basic-constraints-pathlen-overflow", "basicConstraints pathLenConstraint of 2**72",
        extensions=extensions(san(), ext(OID_BASIC_CONSTRAINTS, tlv(0x30, b"\x01\x01\xff" + integer(1 << 72)))))
    add("ext-basic-constraints-negative-pathlen", "basicConstraints pathLenConstraint -1",
        extensions=extensions(san(), ext(OID_BASIC_CONSTRAINTS, tlv(0x30, b"\x01\x01\xff" + tlv(0x02, b"\xff")))))
    add("ext-policy-bad-cps-qualifier", "a CPS policy qualifier that is an INTEGER, not an IA5String",
        extensions=extensions(san(), ext(OID_POLICIES, tlv(0x30, tlv(0x30, OID_ANY_POLICY + tlv(
            0x30, tlv(0x30, OID_CPS + integer(7))))))))
    add("ext-policy-bad-user-notice", "a userNotice whose explicitText is an INTEGER",
        extensions=extensions(san(), ext(OID_POLICIES, tlv(0x30, tlv(0x30, OID_ANY_POLICY + tlv(
            0x30, tlv(0x30, OID_USER_NOTICE + tlv(0x30, integer(7)))))))))
    add("ext-san-empty", "a subjectAltName with an empty GeneralNames", extensions=extensions(ext(OID_SAN, tlv(0x30, b""))))
    add("ext-san-bad-ip", "a subjectAltName iPAddress of 5 octets",
        extensions=extensions(ext(OID_SAN, tlv(0x30, tlv(0x82, b"localhost") + tlv(0x87, b"\x7f\x00\x00\x01\x00")))))
    add("ext-name-constraints-bad-ip", "nameConstraints with a 5-octet iPAddress subtree",
        extensions=extensions(san(), ext(OID_NAME_CONSTRAINTS, tlv(0x30, tlv(0xA0, tlv(0x30, tlv(0x87, b"\x0a\x00\x00\x00\xff")))))))
    add("ext-name-constraints-bad-mask", "nameConstraints with a non-contiguous IPv4 netmask",
        extensions=extensions(san(), ext(OID_NAME_CONSTRAINTS, tlv(0x30, tlv(0xA0, tlv(0x30, tlv(
            0x87, b"\x0a\x00\x00\x00\xff\x00\xff\x00")))))))
    add("ext-value-not-der", "a subjectAltName whose value is not DER", extensions=extensions(ext(OID_SAN, b"\xff\xff")))
    add("ext-critical-false-explicit", "an extension with critical FALSE encoded (DER forbids the DEFAULT)",
        extensions=extensions(tlv(0x30, OID_SAN + b"\x01\x01\x00" + tlv(0x04, san_value()))))
    add("ext-empty-sequence", "an empty extensions SEQUENCE", extensions=extensions())
    add("ext-key-usage-empty", "a keyUsage BIT STRING with no bits", extensions=extensions(san(), ext(OID_KEY_USAGE, tlv(0x03, b"\x00"))))

    # --- dates cryptography cannot represent
    add("validity-year-0", "notBefore in year 0 (GeneralizedTime 00000101000000Z)",
        validity=validity(nb=tlv(0x18, b"00000101000000Z")))
    add("validity-utctime-no-seconds", "UTCTime without seconds (allowed by BER, not DER)",
        validity=validity(nb=tlv(0x17, b"2601010000Z")))
    add("validity-utctime-offset", "UTCTime with a +0100 offset instead of Z",
        validity=validity(na=tlv(0x17, b"360101000000+0100")))
    add("validity-fractional-seconds", "GeneralizedTime with fractional seconds",
        validity=validity(na=tlv(0x18, b"20360101000000.5Z")))
    add("validity-february-30", "notAfter on February 30th", validity=validity(na=tlv(0x17, b"360230000000Z")))
    add("validity-generalizedtime-before-2050", "a GeneralizedTime before 2050 (DER wants UTCTime there)",
        validity=validity(na=tlv(0x18, b"20360101000000Z")))

    # --- serials
    add("serial-negative", "a negative serial number", serial=tlv(0x02, b"\xff\x01"))
    add("serial-zero", "serial number 0", serial=tlv(0x02, b"\x00"))
    add("serial-nonminimal", "a serial INTEGER with a superfluous leading zero", serial=tlv(0x02, b"\x00\x01"))
    add("serial-30-octets", "a 30-octet serial (RFC 5280 allows 20)", serial=tlv(0x02, b"\x01" * 30))
    return out


def unreadable():
    """{name: bytes}: inputs in certificate clothing whose key cannot be located at all."""
    base = sign(Fields(spki_der(keys()["p256"])).tbs())
    return {
        "truncated": base[: len(base) // 2],
        "not-a-sequence": b"\x04\x03abc",
        "tbs-without-key": sign(tlv(0x30, bytes.fromhex("a003020102") + integer(1) + SIGALG)),
        "spki-not-a-sequence": sign(Fields(tlv(0x04, b"key")).tbs()),
    }


def write(outdir):
    """Write every shape as DER and PEM, its key, the CA, and shapes.json; returns build()."""
    os.makedirs(outdir, exist_ok=True)
    shapes = build()
    with open(os.path.join(outdir, "ca.pem"), "wb") as f:
        f.write(ca()[1])
    meta = []
    for s in shapes.values():
        with open(os.path.join(outdir, s.name + ".der"), "wb") as f:
            f.write(s.der)
        with open(os.path.join(outdir, s.name + ".pem"), "wb") as f:
            f.write(pem(s.der))
        if s.key is not None:
            with open(os.path.join(outdir, s.name + ".key.pem"), "wb") as f:
                f.write(key_pem(s.key))
        meta.append({"name": s.name, "pin": s.pin, "device": s.device, "why": s.why})
    with open(os.path.join(outdir, "shapes.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return shapes


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: certshapes.py OUTDIR")
    print("%d shapes in %s" % (len(write(sys.argv[1])), sys.argv[1]))
