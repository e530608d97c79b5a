"""Signed pinset bundles: JWS JSON General Serialization (RFC 7515 section 7.2.1), ES256.

    {"payload": "<base64url(exact bytes of the pinset file)>",
     "signatures": [{"protected": "<base64url({"alg":"ES256","kid":"sha256/..."})>",
                     "signature": "<base64url(r || s, 64 bytes)>"}, ...]}

base64url without padding (RFC 7515 section 2). The signing input of each
signature is ASCII(protected + "." + payload); the signature is ECDSA P-256
over SHA-256 of it, as raw r || s (RFC 7518 section 3.4), not DER.

This module builds and reads bundles for the host tool (signing, adding
signatures, converting an external DER signature). Whether a DEVICE accepts a
bundle is decided by the device library (certpin._update.verify), never here.
"""
import base64
import binascii
import collections
import hashlib
import json

from certpin_host.pins import SPKI_PREFIX, b64, spki_der

MAX_BUNDLE = 16384  # bytes: a device refuses a larger bundle before parsing it
ALG = "ES256"
COORD = 32  # bytes of r and of s for P-256


class BundleError(ValueError):
    """Not a bundle this tool can read or build; the message says why."""


# ---------------------------------------------------------------- encodings


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text, what):
    """Strict: the base64url alphabet, no padding, no white space (as a device reads it)."""
    if not isinstance(text, str):
        raise BundleError("%s must be a string, not %s" % (what, type(text).__name__))
    if len(text) % 4 == 1 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        raise BundleError("%s is not base64url without padding (RFC 7515 section 2)" % what)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BundleError("%s is not valid base64url" % what)
    if b64url(data) != text:  # unused low bits set: another decoder may read other bytes
        raise BundleError("%s is not canonical base64url" % what)
    return data


# ---------------------------------------------------------------- keys


def is_p256(public_key):
    from cryptography.hazmat.primitives.asymmetric import ec

    return isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"


def key_line(public_key):
    """The string that goes in the pinset's update.keys: standard base64 of the DER SPKI."""
    return b64(spki_der(public_key))


def kid(public_key):
    """The JWS kid: the key's pin, sha256/<base64 of SHA-256(DER SPKI)>."""
    return SPKI_PREFIX + b64(hashlib.sha256(spki_der(public_key)).digest())


def kid_of_line(line):
    """The kid of an update.keys entry (no validation beyond base64)."""
    return SPKI_PREFIX + b64(hashlib.sha256(base64.b64decode(line)).digest())


def public_key_of_line(line):
    """An update.keys entry -> a cryptography public key; ValueError if it is not a P-256 SPKI."""
    from cryptography.hazmat.primitives import serialization

    if not isinstance(line, str):
        raise ValueError("an update key must be a string, not %s" % type(line).__name__)
    try:
        der = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("update key %s is not standard base64" % _short(line))
    if b64(der) != line:
        raise ValueError("update key %s is not canonical base64 (with '=' padding)" % _short(line))
    try:
        key = serialization.load_der_public_key(der)
    except Exception as e:  # ValueError, UnsupportedAlgorithm
        raise ValueError("update key %s is not a DER SubjectPublicKeyInfo: %s" % (_short(line), e))
    if not is_p256(key):
        raise ValueError("update key %s is not an ECDSA P-256 key (ES256 needs P-256)" % _short(line))
    if spki_der(key) != der:  # e.g. a compressed point: the device reads only the uncompressed form
        raise ValueError("update key %s is not the canonical DER SPKI of a P-256 key (uncompressed point)"
                         % _short(line))
    return key


def _short(line):
    return repr(line if len(line) <= 24 else line[:20] + "...")


# ---------------------------------------------------------------- signatures


def protected_for(public_key):
    """The protected header (base64url) certpin writes for a signature by public_key.

    Fixed member order and no spaces, so the signing input printed for an
    external signer (--signing-input) is the one checked afterwards.
    """
    header = '{"alg":"%s","kid":"%s"}' % (ALG, kid(public_key))
    return b64url(header.encode("ascii"))


def signing_input(protected_b64, payload_b64):
    return (protected_b64 + "." + payload_b64).encode("ascii")


def der_to_raw(der):
    """A DER ECDSA-Sig-Value -> r || s (64 bytes); ValueError if it is not one."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)  # ValueError on garbage
    if not (0 < r < 1 << 256 and 0 < s < 1 << 256):
        raise ValueError("r or s out of range for P-256")
    return r.to_bytes(COORD, "big") + s.to_bytes(COORD, "big")


def raw_to_der(raw):
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(raw) != 2 * COORD:
        raise ValueError("an ES256 signature is 64 bytes, found %d" % len(raw))
    return encode_dss_signature(int.from_bytes(raw[:COORD], "big"), int.from_bytes(raw[COORD:], "big"))


def verify_der(public_key, der, message):
    """True iff der is a valid ECDSA P-256/SHA-256 signature of message by public_key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def sign_raw(private_key, message):
    """ES256 signature (r || s) of message."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return der_to_raw(private_key.sign(message, ec.ECDSA(hashes.SHA256())))


# ---------------------------------------------------------------- bundles

Signature = collections.namedtuple("Signature", "protected signature header")  # header: dict or None


class Bundle:
    """A bundle being built or read: the payload bytes and the signature entries, in order."""

    def __init__(self, payload, signatures=()):
        self.payload = bytes(payload)
        self.payload_b64 = b64url(self.payload)
        self.signatures = list(signatures)  # [dict] exactly as read or made

    def signing_input(self, protected_b64):
        return signing_input(protected_b64, self.payload_b64)

    def add(self, protected_b64, raw):
        self.signatures.append({"protected": protected_b64, "signature": b64url(raw)})

    def dumps(self):
        doc = {"payload": self.payload_b64, "signatures": self.signatures}
        return (json.dumps(doc, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")

    def entries(self):
        """[(index, header dict or None, kid or None, raw signature bytes or None, problem or None)]."""
        out = []
        for i, sig in enumerate(self.signatures):
            header = kid_ = raw = problem = None
            try:
                hdr = b64url_decode(sig.get("protected"), "signatures[%d].protected" % i)
                header = json.loads(hdr.decode("utf-8"))
                if not isinstance(header, dict):
                    raise BundleError("signatures[%d].protected is not a JSON object" % i)
                kid_ = header.get("kid") if isinstance(header.get("kid"), str) else None
                raw = b64url_decode(sig.get("signature"), "signatures[%d].signature" % i)
            except (BundleError, UnicodeDecodeError, ValueError) as e:
                problem = str(e)
            out.append((i, header, kid_, raw, problem))
        return out


def loads(data):
    """Read a bundle (bytes) for adding signatures or showing it; BundleError if it is not one.

    Lenient only where it does not matter to a device's verdict: a device
    decides acceptance itself; this reader must just find the payload and the
    signature entries.
    """
    if len(data) > MAX_BUNDLE:
        raise BundleError("%d bytes: a device refuses a bundle over %d bytes" % (len(data), MAX_BUNDLE))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError("not JSON: %s" % e)
    if not isinstance(doc, dict) or "payload" not in doc or not isinstance(doc.get("signatures"), list):
        raise BundleError("not a JWS in JSON general serialization (an object with \"payload\" and \"signatures\")")
    extra = sorted(k for k in doc if k not in ("payload", "signatures"))
    if extra:
        raise BundleError("unexpected top-level member(s) %s: a device refuses them" % ", ".join(map(repr, extra)))
    payload = b64url_decode(doc["payload"], "payload")
    for i, sig in enumerate(doc["signatures"]):
        if not isinstance(sig, dict):
            raise BundleError("signatures[%d] is not an object" % i)
    b = Bundle(payload, doc["signatures"])
    if b.payload_b64 != doc["payload"]:
        raise BundleError("payload is not canonical base64url")
    return b


def looks_like_bundle(data):
    """True if data (bytes) is a JSON object with "payload" and "signatures" (so not a pinset)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and "payload" in doc and "signatures" in doc
