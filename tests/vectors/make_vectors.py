"""Generate the parser-differential certificate vectors: one DER file per edge case.

    python tests/vectors/make_vectors.py [OUTDIR]     (default: tests/vectors/der)

Each vector is a certificate a lax DER walker could hash wrongly (non-minimal
or indefinite lengths, missing or repeated version, trailing data, lengths
overrunning their parent, the pinned "genuine" SPKI hidden in an extension or
the subject while a different real key sits in subjectPublicKeyInfo, truncated
at each boundary, a wrong tag at each step, ...). manifest.json lists, per
file, what certpin must do:
  "refuse"          raise certpin.Error
  "hash"            return exactly spki_sha256 (the key cryptography reads)
  "hash_or_refuse"  either: a valid certificate certpin may decline (e.g. > 64 KiB),
                    or one a TLS stack refuses for a reason inside an element
                    certpin does not parse (a Name, an extension): then the
                    only digest allowed is the key in the subjectPublicKeyInfo
                    slot (spki_sha256), never the hidden one
and what cryptography (standing in for the TLS stack) does with it.

Everything is deterministic (fixed EC keys, RFC 6979 deterministic ECDSA,
fixed dates and serials), so the committed files are reproducible:
tests/test_parser_vectors.py regenerates them and compares byte for byte.
The crafted TBSCertificate DER is signed with the issuer key directly.
"""
import datetime
import hashlib
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # tests/, run as a script too
from support.corpus import body as content  # noqa: E402
from support.corpus import children as split  # noqa: E402
from support.corpus import enc_len, tlv  # noqa: E402

OID_ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")
SIGALG = b"\x30\x0a" + OID_ECDSA_SHA256


def indefinite(tag, content):
    return bytes([tag, 0x80]) + content + b"\x00\x00"


class Keys:
    def __init__(self):
        # Fixed scalars: reproducible keys. "genuine" is the pinned key an
        # attacker copies into places a lax parser looks; "real" is the key
        # the certificate actually carries; "ca" signs.
        self.genuine = ec.derive_private_key(0x6E75696E6567 * 7919, ec.SECP256R1())
        self.real = ec.derive_private_key(0x6C616572 * 104729, ec.SECP256R1())
        self.ca = ec.derive_private_key(0x6163 * 1299709, ec.SECP256R1())


def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(ca_key, tbs):
    sig = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return sig


def certificate(ca_key, tbs, sigalg=SIGALG, outer_octets=None, extra=b""):
    sig = sign(ca_key, tbs)
    return tlv(0x30, tbs + sigalg + tlv(0x03, b"\x00" + sig) + extra, outer_octets)


def base_fields(keys, key=None, extensions=True, name="localhost"):
    """The TBSCertificate fields cryptography builds, as a list of TLVs."""
    key = key or keys.real
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certpin vectors CA")]))
        .public_key(key.public_key())
        .serial_number(0x1234567890ABCDEF)
        .not_valid_before(t0)
        .not_valid_after(t0 + datetime.timedelta(days=3650))
    )
    if extensions:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
    cert = b.sign(keys.ca, hashes.SHA256())  # only the TBS bytes are used: deterministic
    return split(content(cert.tbs_certificate_bytes))


FIELDS = ("version", "serial", "signature", "issuer", "validity", "subject", "spki", "extensions")


def tbs_of(fields):
    return tlv(0x30, b"".join(fields))


def ext(oid_der, value, critical=False):
    return tlv(0x30, oid_der + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value))


PRIVATE_OID = bytes.fromhex("060a2b0601040182e3650101")  # 1.3.6.1.4.1.29157.1.1 (unregistered)


def with_extension(fields, extra_ext):
    # Add one extension to the [3] { SEQUENCE OF Extension }.
    exts = split(content(content(fields[7])))
    return fields[:7] + [tlv(0xA3, tlv(0x30, b"".join(exts + [extra_ext])))]


def hidden_in_subject(fields, hidden):
    # subject gets an extra RDN whose attribute value (a T61String) holds the genuine SPKI DER
    # (T61String: any bytes; OpenSSL, mbedTLS and cryptography all load it).
    atv = tlv(0x30, PRIVATE_OID + tlv(0x14, hidden))
    subj = content(fields[5]) + tlv(0x31, atv)
    return fields[:5] + [tlv(0x30, subj)] + fields[6:]


def build(keys=None):
    """{name: (der, expect, why)}; expect in refuse / hash / hash_or_refuse."""
    keys = keys or Keys()
    f = base_fields(keys)
    g = spki(keys.genuine)
    v = {}

    def add(name, der, expect, why):
        assert name not in v, name
        v[name] = (der, expect, why)

    ok = certificate(keys.ca, tbs_of(f))
    add("valid", ok, "hash", "the baseline: a strict-DER v3 certificate")
    add("valid-v1-no-version", certificate(keys.ca, tbs_of(f[1:7])), "hash", "v1: version field absent (DEFAULT v1), no extensions")
    add("valid-genuine-key", certificate(keys.ca, tbs_of(f[:6] + [g] + f[7:])), "hash", "the genuine key itself, for contrast")
    # --- the genuine SPKI hidden where a lax parser looks; the real key elsewhere.
    add("hidden-spki-in-extension", certificate(keys.ca, tbs_of(with_extension(f, ext(PRIVATE_OID, g)))), "hash",
        "genuine SPKI as a non-critical private extension value: the real SPKI must be hashed")
    add("hidden-spki-raw-in-extensions", certificate(keys.ca, tbs_of(with_extension(f, tlv(0x30, PRIVATE_OID + tlv(0x04, b"") + g)))), "hash_or_refuse",
        "genuine SPKI as a stray element inside an Extension: TLS stacks refuse the malformed extension; "
        "certpin does not parse extensions, so it may hash the real key (never the hidden one)")
    add("hidden-spki-in-subject", certificate(keys.ca, tbs_of(hidden_in_subject(f, g))), "hash",
        "genuine SPKI as an attribute value of the subject (before the real SPKI)")
    add("hidden-spki-in-issuer", certificate(keys.ca, tbs_of(f[:3] + [tlv(0x30, content(f[3]) + tlv(0x31, tlv(0x30, PRIVATE_OID + tlv(0x14, g))))] + f[4:])), "hash",
        "genuine SPKI inside the issuer Name")
    add("hidden-spki-in-subject-unique-id", certificate(keys.ca, tbs_of(f[:7] + [tlv(0x82, b"\x00" + g)] + f[7:])), "hash",
        "genuine SPKI as subjectUniqueID [2] (after the real SPKI)")
    add("hidden-spki-in-serial", certificate(keys.ca, tbs_of([f[0], tlv(0x02, b"\x01" + g)] + f[2:])), "hash",
        "genuine SPKI bytes inside a long serial number INTEGER")
    add("hidden-spki-after-signature", certificate(keys.ca, tbs_of(f), extra=g), "refuse",
        "genuine SPKI appended inside the Certificate SEQUENCE, after the signature")
    add("hidden-spki-after-certificate", ok + g, "refuse", "genuine SPKI appended after the certificate")
    add("hidden-spki-before-real-in-tbs", certificate(keys.ca, tbs_of(f[:6] + [g] + f[6:])), "refuse",
        "two SPKIs in a row: the genuine one in the subjectPublicKeyInfo slot, the real one after it")
    add("hidden-spki-instead-of-subject", certificate(keys.ca, tbs_of(f[:5] + [g] + f[6:])), "hash_or_refuse",
        "the genuine SPKI SEQUENCE standing in the subject's place, the real SPKI after it: TLS stacks refuse "
        "the subject (not a Name); certpin does not parse inside Names, so it may hash the real key (never the hidden one)")
    # --- version field
    add("version-missing-with-extensions", certificate(keys.ca, tbs_of(f[1:])), "hash_or_refuse",
        "no version (v1) but extensions present: mbedTLS refuses it, cryptography reads it; the key is unambiguous")
    add("version-repeated", certificate(keys.ca, tbs_of([f[0]] + f)), "refuse", "[0] version twice")
    add("version-4", certificate(keys.ca, tbs_of([bytes.fromhex("a003020103")] + f[1:])), "refuse", "version INTEGER 3 (v4)")
    add("version-255", certificate(keys.ca, tbs_of([bytes.fromhex("a0030201ff")] + f[1:])), "refuse", "version INTEGER -1")
    add("version-non-minimal-integer", certificate(keys.ca, tbs_of([bytes.fromhex("a00402020002")] + f[1:])), "refuse", "version 02 02 00 02")
    add("version-not-integer", certificate(keys.ca, tbs_of([bytes.fromhex("a003040102")] + f[1:])), "refuse", "version as OCTET STRING")
    add("version-after-serial", certificate(keys.ca, tbs_of([f[1], f[0]] + f[2:])), "refuse", "version field after the serial")
    add("version-long-form-length", certificate(keys.ca, tbs_of([bytes.fromhex("a08103020102")] + f[1:])), "refuse", "[0] with a non-minimal 81 03 length")
    # --- lengths
    for i, fld in enumerate(FIELDS):
        fs = list(f)
        fs[i] = fs[i][:1] + enc_len(len(content(fs[i])), 2 if len(content(fs[i])) < 256 else 3) + content(fs[i])
        add("non-minimal-length-%s" % fld, certificate(keys.ca, tbs_of(fs)), "refuse", "%s length in a longer form than needed" % fld)
    tbs = tbs_of(f)
    add("non-minimal-length-tbs", certificate(keys.ca, tlv(0x30, content(tbs), 3)), "refuse", "TBSCertificate length 83 00 xx xx")
    add("non-minimal-length-certificate", certificate(keys.ca, tbs, outer_octets=3), "refuse", "Certificate length 83 00 xx xx")
    add("non-minimal-length-81-short", certificate(keys.ca, tbs_of(f[:1] + [b"\x02\x81\x08" + content(f[1])] + f[2:])), "refuse", "serial length 81 08")
    add("length-4-octets-certificate", certificate(keys.ca, tbs, outer_octets=4), "refuse", "Certificate length in 4 octets (84 00 00 xx xx)")
    add("length-4-octets-spki", certificate(keys.ca, tbs_of(f[:6] + [b"\x30\x84" + len(content(f[6])).to_bytes(4, "big") + content(f[6])] + f[7:])), "refuse", "SPKI length in 4 octets")
    add("indefinite-length-certificate", indefinite(0x30, tbs + SIGALG + tlv(0x03, b"\x00" + sign(keys.ca, tbs))), "refuse", "BER indefinite length on the Certificate")
    add("indefinite-length-tbs", certificate(keys.ca, indefinite(0x30, b"".join(f))), "refuse", "BER indefinite length on TBSCertificate")
    add("indefinite-length-subject", certificate(keys.ca, tbs_of(f[:5] + [indefinite(0x30, content(f[5]))] + f[6:])), "refuse", "indefinite subject")
    add("indefinite-length-spki", certificate(keys.ca, tbs_of(f[:6] + [indefinite(0x30, content(f[6]))] + f[7:])), "refuse", "indefinite SPKI")
    # --- trailing data
    add("trailing-data-after-certificate", ok + b"\x00", "refuse", "one byte after the Certificate")
    add("trailing-element-after-certificate", ok + ok, "refuse", "a second certificate after the first")
    add("trailing-data-after-signature", certificate(keys.ca, tbs, extra=b"\x05\x00"), "refuse", "NULL inside Certificate after the signature")
    add("trailing-data-after-extensions", certificate(keys.ca, tlv(0x30, b"".join(f) + b"\x05\x00")), "refuse", "NULL inside TBSCertificate after the extensions")
    add("trailing-data-after-spki-key", certificate(keys.ca, tbs_of(f[:6] + [tlv(0x30, content(f[6]) + b"\x05\x00")] + f[7:])), "refuse", "NULL inside the SPKI after the key BIT STRING")
    add("trailing-extensions-twice", certificate(keys.ca, tbs_of(f + [f[7]])), "refuse", "[3] extensions twice")
    # --- lengths overrunning their parent (the parents keep their original lengths)
    def bump(el, by):
        n = len(content(el)) + by
        return el[:1] + enc_len(n) + content(el)

    for i, fld in enumerate(FIELDS):
        fs = list(f)
        fs[i] = bump(fs[i], 1)
        add("overrun-%s" % fld, certificate(keys.ca, tbs_of(fs)), "refuse", "%s length one more than its content: overruns into the next element / parent" % fld)
    add("overrun-tbs", certificate(keys.ca, bump(tbs, 1)), "refuse", "TBSCertificate one byte longer than it is")
    add("overrun-spki-past-tbs", certificate(keys.ca, tlv(0x30, b"".join(f[:6]) + bytes([0x30, 0x81, 0xF0]) + content(f[6]))), "refuse",
        "SPKI (the last TBS element) claims 240 bytes: runs past the end of TBSCertificate into the signature")
    add("overrun-certificate", bump(ok, 1), "refuse", "Certificate length one more than the data")
    add("underrun-certificate", ok[:1] + enc_len(len(content(ok)) - 1) + content(ok), "refuse", "Certificate length one less than the data")
    # --- wrong tag at each step
    tagged = [("certificate", None, 0x31), ("tbs", None, 0x31)] + [(fld, i, t) for i, (fld, t) in enumerate(zip(FIELDS, (0xA1, 0x03, 0x31, 0x31, 0x31, 0x31, 0x31, 0xA4)))]
    for fld, i, t in tagged:
        if fld == "certificate":
            der = bytes([t]) + ok[1:]
        elif fld == "tbs":
            der = certificate(keys.ca, bytes([t]) + tbs[1:])
        else:
            fs = list(f)
            fs[i] = bytes([t]) + fs[i][1:]
            der = certificate(keys.ca, tbs_of(fs))
        add("wrong-tag-%s" % fld, der, "refuse", "%s with tag 0x%02x" % (fld, t))
    spki_alg, spki_bits = split(content(f[6]))
    add("wrong-tag-spki-algorithm", certificate(keys.ca, tbs_of(f[:6] + [tlv(0x30, b"\x31" + spki_alg[1:] + spki_bits)] + f[7:])), "refuse", "SPKI AlgorithmIdentifier as SET")
    add("wrong-tag-spki-key", certificate(keys.ca, tbs_of(f[:6] + [tlv(0x30, spki_alg + b"\x04" + spki_bits[1:])] + f[7:])), "refuse", "SPKI key as OCTET STRING")
    add("spki-missing-algorithm", certificate(keys.ca, tbs_of(f[:6] + [tlv(0x30, spki_bits)] + f[7:])), "refuse", "SPKI with only the key")
    add("spki-missing-key", certificate(keys.ca, tbs_of(f[:6] + [tlv(0x30, spki_alg)] + f[7:])), "refuse", "SPKI with only the algorithm")
    add("wrong-tag-signature-algorithm", tlv(0x30, tbs + b"\x31" + SIGALG[1:] + tlv(0x03, b"\x00" + sign(keys.ca, tbs))), "refuse", "outer signatureAlgorithm as SET")
    add("wrong-tag-signature-value", tlv(0x30, tbs + SIGALG + tlv(0x04, b"\x00" + sign(keys.ca, tbs))), "refuse", "signatureValue as OCTET STRING")
    add("missing-signature", tlv(0x30, tbs + SIGALG), "refuse", "no signatureValue")
    add("missing-signature-algorithm", tlv(0x30, tbs + tlv(0x03, b"\x00" + sign(keys.ca, tbs))), "refuse", "no outer signatureAlgorithm")
    add("missing-serial", certificate(keys.ca, tbs_of(f[:1] + f[2:])), "refuse", "no serial number")
    add("missing-subject", certificate(keys.ca, tbs_of(f[:5] + f[6:])), "refuse", "no subject: the SPKI sits in the subject's place")
    add("missing-spki", certificate(keys.ca, tbs_of(f[:6] + f[7:])), "refuse", "no subjectPublicKeyInfo")
    # --- truncated at each boundary of the valid certificate
    hdr = len(ok) - len(content(ok))
    cuts = {"certificate-header": 1, "certificate-length": hdr - 1, "before-tbs": hdr}
    off = hdr + (len(tbs) - len(content(tbs)))
    cuts["tbs-header"] = hdr + 1
    for fld, el in zip(FIELDS, f):
        cuts["before-%s" % fld] = off
        cuts["in-%s-header" % fld] = off + 1
        cuts["in-%s" % fld] = off + len(el) // 2
        off += len(el)
    cuts["before-signature-algorithm"] = off
    cuts["before-signature"] = off + len(SIGALG)
    cuts["last-byte"] = len(ok) - 1
    for name, cut in cuts.items():
        add("truncated-%s" % name, ok[:cut], "refuse", "the valid certificate cut at byte %d (%s)" % (cut, name))
    # --- odd inputs
    add("empty", b"", "refuse", "zero bytes")
    add("one-byte", b"\x30", "refuse", "a tag and nothing else")
    add("empty-sequence", b"\x30\x00", "refuse", "SEQUENCE {}")
    add("indefinite-empty", b"\x30\x80\x00\x00", "refuse", "indefinite-length empty SEQUENCE")
    add("huge-length-4-octets", b"\x30\x84\xff\xff\xff\xff" + ok[4:], "refuse", "Certificate length 4 GiB")
    add("huge-length-8-octets", b"\x30\x88" + b"\xff" * 8 + ok[4:], "refuse", "Certificate length in 8 octets")
    add("huge-length-127-octets", b"\x30\xff" + ok[2:], "refuse", "length octet 0xff (reserved)")
    add("huge-tbs-length", ok[:hdr] + b"\x30\x83\xff\xff\xff" + ok[hdr + len(tbs) - len(content(tbs)) :], "refuse", "TBSCertificate length 16 MiB")
    add("pem-not-der", b"-----BEGIN CERTIFICATE-----\n", "refuse", "PEM text")
    # --- large but valid
    big_ext = ext(PRIVATE_OID, tlv(0x04, b"\x00" * 70000))
    add("large-70k-extension", certificate(keys.ca, tbs_of(with_extension(f, big_ext))), "hash_or_refuse",
        "a valid certificate over 64 KiB (3-octet lengths): may be declined, must not be misread")
    mid_ext = ext(PRIVATE_OID, tlv(0x04, b"\x00" * 16000))
    add("large-16k-extension", certificate(keys.ca, tbs_of(with_extension(f, mid_ext))), "hash", "a valid 16 KiB certificate")
    return v


def reference(der):
    """What cryptography does with der: ('accepts', spki sha256 hex) or ('refuses', reason)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()  # names are not decoded: a TLS stack does not need them
    except Exception as e:
        return "refuses", "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:100] if str(e) else "")
    s = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "accepts", hashlib.sha256(s).hexdigest()


def manifest(vectors, keys=None):
    keys = keys or Keys()
    real = hashlib.sha256(spki(keys.real)).hexdigest()
    out = []
    for name in sorted(vectors):
        der, expect, why = vectors[name]
        stack, detail = reference(der)
        digest = detail if stack == "accepts" else None
        if expect == "hash_or_refuse" and digest is None:
            digest = real  # the key in the SPKI slot of every crafted vector
        out.append({
            "file": name + ".der",
            "expect": expect,
            "spki_sha256": digest,
            "cryptography": stack if stack == "accepts" else "refuses (%s)" % detail,
            "why": why,
        })
    return out


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    keys = Keys()
    vectors = build(keys)
    for name, (der, _, _) in vectors.items():
        with open(os.path.join(outdir, name + ".der"), "wb") as fh:
            fh.write(der)
    with open(os.path.join(outdir, "manifest.json"), "w") as fh:
        json.dump(manifest(vectors, keys), fh, indent=1)
        fh.write("\n")
    return vectors


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "der")
    v = write(out)
    print("%d vectors in %s" % (len(v), out))
