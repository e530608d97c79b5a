"""Seed certificates and pinsets, DER-aware mutations, and the device-side replay.

Used by the fuzz, differential and parser-vector tests. Mutations are plain
functions of (data, random.Random) so hypothesis and the seeded corpus
generator share them.
"""
import base64
import datetime
import functools
import hashlib
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

SCALE = max(1, int(os.environ.get("CERTPIN_FUZZ_SCALE", "1")))

# ---------------------------------------------------------------- DER TLVs


def tlv_nodes(b, start=0, end=None, depth=0, out=None):
    """Every TLV of a (well-formed) DER blob as (offset, header_len, body_len, depth).

    Constructed elements (tag bit 0x20) are walked into; so are BIT/OCTET
    STRINGs whose body parses completely as DER (extension values, keys).
    """
    if out is None:
        out = []
    end = len(b) if end is None else end
    i = start
    while i < end:
        if i + 2 > end:
            return out
        tag, n = b[i], b[i + 1]
        h = 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or i + 2 + k > end:
                return out
            n = int.from_bytes(b[i + 2 : i + 2 + k], "big")
            h += k
        if i + h + n > end:
            return out
        out.append((i, h, n, depth))
        if tag & 0x20:
            tlv_nodes(b, i + h, i + h + n, depth + 1, out)
        i += h + n
    return out


def enc_len(n, octets=None):
    """DER length; octets forces a (non-minimal) long form of that many octets."""
    if octets is None:
        if n < 0x80:
            return bytes([n])
        octets = (n.bit_length() + 7) // 8
    return bytes([0x80 | octets]) + n.to_bytes(octets, "big")


def tlv(tag, body, octets=None):
    return bytes([tag]) + enc_len(len(body), octets) + body


def children(b):
    """Top-level TLVs of b as a list of byte strings."""
    out = []
    i = 0
    while i < len(b):
        n = b[i + 1]
        h = 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i + 2 : i + 2 + k], "big")
            h += k
        out.append(bytes(b[i : i + h + n]))
        i += h + n
    return out


def body(el):
    n = el[1]
    h = 2 + (n & 0x7F if n & 0x80 else 0)
    return el[h:]


# ---------------------------------------------------------------- mutations


def pick(b, r):
    # A random element of b; a truncated blob may have none: then a pseudo-element at 0.
    nodes = tlv_nodes(b)
    return r.choice(nodes) if nodes else (0, 2, len(b) - 2, 0)


def m_bitflip(b, r):
    b = bytearray(b)
    for _ in range(r.randint(1, 4)):
        i = r.randrange(len(b))
        b[i] ^= 1 << r.randrange(8)
    return bytes(b)


def m_truncate(b, r):
    return b[: r.randrange(len(b))]


def m_truncate_boundary(b, r):
    off, h, n, _ = pick(b, r)
    return b[: r.choice((off, off + 1, off + h, off + h + n - 1 if n else off + h))]


def m_insert(b, r):
    i = r.randrange(len(b) + 1)
    junk = bytes(r.randrange(256) for _ in range(r.choice((1, 1, 2, 3, 16))))
    return b[:i] + junk + b[i:]


def m_delete(b, r):
    i = r.randrange(len(b))
    return b[:i] + b[i + r.randint(1, 8) :]


def m_append(b, r):
    return b + bytes(r.randrange(256) for _ in range(r.randint(1, 8)))


def m_length_byte(b, r):
    # Edit the first length octet of a random element: +-1, 0, 0x80, 0x81..0x84, 0xff.
    off, h, n, _ = pick(b, r)
    b = bytearray(b)
    v = b[off + 1]
    b[off + 1] = r.choice(((v + 1) & 0xFF, (v - 1) & 0xFF, 0, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xFF, v ^ 0x80))
    return bytes(b)


def m_long_length(b, r):
    # Re-encode one element's length in a longer, non-minimal form, then fix
    # no parent: lengths of the ancestors now overrun (or, if the walker is lax,
    # shift everything by the added octets).
    off, h, n, _ = pick(b, r)
    k = r.choice((1, 2, 3, 4, 5))
    if n >= 1 << (8 * k):
        k = (n.bit_length() + 7) // 8 + 1
    return b[:off + 1] + enc_len(n, k) + b[off + h :]


def m_tag(b, r):
    off, h, n, _ = pick(b, r)
    b = bytearray(b)
    b[off] = r.choice((0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0xA0, 0xA3, 0x81, 0x82, 0x1F, 0x00, 0xFF, b[off] ^ 0x20))
    return bytes(b)


def m_dup_node(b, r):
    off, h, n, _ = pick(b, r)
    el = b[off : off + h + n]
    return b[: off + h + n] + el + b[off + h + n :]


def m_drop_node(b, r):
    off, h, n, _ = pick(b, r)
    return b[:off] + b[off + h + n :]


def m_huge_length(b, r):
    off, h, n, _ = pick(b, r)
    big = r.choice((b"\x84\xff\xff\xff\xff", b"\x83\xff\xff\xff", b"\x88" + b"\xff" * 8, b"\x82\xff\xff"))
    return b[: off + 1] + big + b[off + h :]


CERT_MUTATIONS = (
    m_bitflip,
    m_truncate,
    m_truncate_boundary,
    m_insert,
    m_delete,
    m_append,
    m_length_byte,
    m_long_length,
    m_tag,
    m_dup_node,
    m_drop_node,
    m_huge_length,
)


def mutate_cert(b, r):
    for _ in range(r.choice((1, 1, 1, 2, 3))):
        b = r.choice(CERT_MUTATIONS)(b, r) if len(b) > 2 else m_append(b, r)
    return b


PINSET_TOKENS = (
    b"{", b"}", b"[", b"]", b'"', b":", b",", b"\\", b"\\u0000", b"\\ud800", b"null", b"true", b"1e999",
    b"-1", b"NaN", b"Infinity", b"1.0", b'"format"', b'"hosts"', b'"pins"', b'"expires"', b'"serial"',
    b'"subdomains"', b'"report_only"', b'"sha256/"', b'"2027-02-30"', b"\xff", b"\xc3\x28", b"\xef\xbb\xbf",
    b"\x00", b" " * 3, b"[" * 200, b"{\"a\":" * 100, b"9" * 400,
)


def mutate_text(b, r):
    for _ in range(r.choice((1, 1, 2, 3))):
        c = r.randrange(6)
        if not b or c == 0:
            b = b + r.choice(PINSET_TOKENS)
        elif c == 1:
            b = m_bitflip(b, r)
        elif c == 2:
            b = m_truncate(b, r)
        elif c == 3:
            i = r.randrange(len(b) + 1)
            b = b[:i] + r.choice(PINSET_TOKENS) + b[i:]
        elif c == 4:
            b = m_delete(b, r)
        else:  # swap a token for another
            i = r.randrange(len(b))
            b = b[:i] + r.choice(PINSET_TOKENS) + b[i + r.randint(1, 6) :]
    return b


# ---------------------------------------------------------------- seeds


def spki_of(cert_der):
    """SHA-256 of the SPKI as cryptography re-encodes the certificate's public key."""
    cert = x509.load_der_x509_certificate(bytes(cert_der))
    return hashlib.sha256(
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()


def pin(d):
    return "sha256/" + base64.b64encode(d).decode()


KEY_TYPES = {
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
    "rsa3072": lambda: rsa.generate_private_key(65537, 3072),
    "rsa4096": lambda: rsa.generate_private_key(65537, 4096),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
    "ed448": lambda: ed448.Ed448PrivateKey.generate(),
    "dsa2048": lambda: dsa.generate_private_key(2048),
}


def self_signed(key, name="localhost", extensions=()):
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    for ext, crit in extensions:
        b = b.add_extension(ext, critical=crit)
    algo = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    return b.sign(key, algo).public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=None)
def keytype_certs():
    """{key type: self-signed DER certificate} for every key type cryptography supports."""
    return {name: self_signed(make()) for name, make in KEY_TYPES.items()}


def certifi_ders():
    import certifi

    pem = open(certifi.where(), "rb").read()
    return [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]


def seed_certs(pki):
    seeds = [pki.genuine.der, pki.intermediate_der, pki.root_der]
    certs = keytype_certs()
    seeds += [certs[k] for k in ("rsa2048", "p384", "ed25519", "dsa2048", "ed448")]
    return seeds


def seed_pinset(pki):
    return json.dumps(
        {
            "format": 1,
            "serial": 7,
            "expires": "2027-06-30",
            "hosts": {
                "localhost": {"pins": [pki.genuine.pin, "cert-sha256/" + base64.b64encode(hashlib.sha256(pki.genuine.der).digest()).decode()]},
                "example.com": {"pins": [pki.root_pin], "subdomains": True, "report_only": True},
                "10.0.0.1": {"pins": [pki.intermediate_pin]},
            },
        }
    ).encode()


# ---------------------------------------------------------------- device replay


def write_corpus(path, cases, pinset_text=None):
    """cases: iterable of (op, bytes). Returns the number of cases written."""
    n = 0
    with open(path, "w") as f:
        if pinset_text is not None:
            f.write("p %s\n" % bytes(pinset_text).hex())
        for op, data in cases:
            f.write("%s %s\n" % (op, bytes(data).hex()))
            n += 1
    return n


def replay(runtime, path, verbose=False, timeout=300):
    """Run tests/device/replay.py on the corpus; returns (summary dict, [(n, kind, detail)])."""
    args = [path] + (["verbose"] if verbose else [])
    p = runtime.run("replay.py", *args, timeout=timeout)
    lines = p.stdout.splitlines()
    assert lines and lines[-1].startswith("{"), "replay died on %s: rc=%s\nstderr=%s\nstdout tail=%s" % (
        runtime, p.returncode, p.stderr[-3000:], p.stdout[-2000:])
    summary = json.loads(lines[-1])
    results = []
    for l in lines[:-1]:
        if l.startswith("R "):
            _, n, kind, detail = l.split(" ", 3)
            results.append((int(n), kind, detail))
    return summary, results
