"""Pins, and the files they come from.

A pin is ``sha256/<base64>``: SHA-256 of the DER SubjectPublicKeyInfo, the same
string OkHttp, HPKP and the openssl pipeline produce for a DER-canonical key.
``cert-sha256/<base64>`` is the SHA-256 of a whole DER certificate (breaks at
every renewal).

For a certificate both come from its exact bytes: the SPKI digest is computed
by the device library itself (``certpin.spki_sha256``), so host and device
cannot disagree even when `cryptography` would re-encode the key differently
(RSA without the NULL parameter, explicit EC parameters, ...). `cryptography`
only supplies what is shown next to the pins (subject, dates, key type), read
through one guard. Bare keys and CSRs: the digest of the key's DER SPKI.

``load_file(path)`` reads a PEM or DER certificate, PEM chain, PKCS#7 bundle,
public key, private key or CSR and returns one ``Item`` per object, in file
order. ``parse_pin(text)`` validates a pin the way the device does and says what
is wrong with a foreign one.
"""
import base64
import binascii
import datetime
import hashlib
import os
import re
import sys
import warnings

import certpin  # the device library: its strict walk decides which bytes a certificate's pin hashes
from certpin_host import der as dermod
from certpin_host.errors import UserError
from certpin_host.files import read_bytes

# cryptography warns on stderr when it parses a serial number that is not
# positive (and says a later release will refuse it). Pins do not depend on the
# serial; if cryptography ever refuses such a certificate, Item reports the
# fields it cannot read.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")

SPKI_PREFIX = "sha256/"
CERT_PREFIX = "cert-sha256/"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\s*?\n.*?-----END \1-----", re.S)
_B64 = re.compile(r"^[A-Za-z0-9+/]{43}=$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def b64(digest):
    return base64.b64encode(digest).decode("ascii")


def spki_der(public_key):
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_pin(public_key):
    """``sha256/<base64>`` of a cryptography public key object (bare keys and CSRs)."""
    return SPKI_PREFIX + b64(hashlib.sha256(spki_der(public_key)).digest())


def cert_pin(cert_der):
    """``cert-sha256/<base64>`` of a DER certificate, exactly as given."""
    return CERT_PREFIX + b64(hashlib.sha256(bytes(cert_der)).digest())


def key_description(public_key):
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA %d" % public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return "EC " + names.get(public_key.curve.name, public_key.curve.name)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, x25519.X25519PublicKey):
        return "X25519"
    if isinstance(public_key, x448.X448PublicKey):
        return "X448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA %d" % public_key.key_size
    return type(public_key).__name__


# Key algorithms by OID, to name a key cryptography cannot decode.
_KEY_OIDS = {
    "1.2.840.113549.1.1.1": "RSA", "1.2.840.113549.1.1.10": "RSA-PSS", "1.2.840.10045.2.1": "EC",
    "1.3.101.112": "Ed25519", "1.3.101.113": "Ed448", "1.3.101.110": "X25519", "1.3.101.111": "X448",
    "1.2.840.10040.4.1": "DSA",
}


OPENSSL_PIPELINE = "`openssl x509 -pubkey | openssl pkey -pubin -outform der`"


class UnreadableCertificate(ValueError):
    """Not a certificate whose public key can be found: no pin can be given for it."""


class _NoCertificate(ValueError):
    """cryptography cannot parse the certificate at all: the reason of every field."""


def _reason(e):
    if isinstance(e, _NoCertificate):
        return str(e)
    text = str(e).strip().splitlines()
    return "%s: %s" % (type(e).__name__, text[0]) if text and text[0] else type(e).__name__


def _guard(fn):
    """(fn(), None), or (None, why) for whatever cryptography raised: ValueError, UnsupportedAlgorithm,
    InvalidVersion, DuplicateExtension, a pyo3 PanicException (a BaseException) from its Rust core."""
    try:
        return fn(), None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: B036 -- see the docstring: a panic is not an Exception
        return None, _reason(e)


class Item:
    """One certificate, key or CSR and its pins.

    A certificate is made from its exact bytes (``Item.certificate``): its pin is
    the device library's digest of the SubjectPublicKeyInfo inside them, and
    ``cert_sha256`` the digest of the bytes as given. Everything `cryptography`
    decodes (subject, issuer, dates, is_ca, the key) is read lazily through
    ``_read``, the one place that guards it: a field it cannot decode is None
    and ``unreadable[field]`` says why. ``warnings`` says what a person must
    know before pinning it (a device cannot check it, tools that re-encode the
    key print another pin, fields that cannot be read).
    """

    FIELDS = ("subject", "issuer", "not_before", "not_after", "is_ca", "key")

    def __init__(self, kind, public_key=None, csr=None, source=None, depth=None):
        self.kind = kind  # "certificate" | "public key" | "private key" | "csr"
        self.csr = csr
        self.source = source
        self.depth = depth
        self.der = None  # a certificate's bytes, as given
        self.spki = None  # its SubjectPublicKeyInfo bytes, as in der
        self.cert_sha256 = None
        self.device_error = None  # why the device library refuses this certificate
        self.reencoded_spki_sha256 = None  # cryptography's re-encoding of the key, when it differs
        self.openssl_spki_sha256 = None  # what the openssl pipeline prints, when it differs
        self.reencoding = None  # what differs, in words
        self.unreadable = {}
        self._values = {}
        self._x509_error = None
        if public_key is not None:
            self._values["public_key"] = public_key
            self.spki_sha256 = spki_pin(public_key)

    @classmethod
    def certificate(cls, der, source=None, depth=None):
        """The Item of DER certificate bytes; UnreadableCertificate if no public key can be found in them."""
        self = cls("certificate", source=source, depth=depth)
        self.der = der = bytes(der)
        self.cert_sha256 = cert_pin(der)
        try:
            digest = certpin.spki_sha256(der)  # the device's own walk: the pin a device computes
        except certpin.Error as e:
            digest = None
            self.device_error = str(e)
        try:
            start, end = dermod.locate_spki(der)
        except dermod.DERError as e:
            if digest is None:
                raise UnreadableCertificate("no public key can be found in it (%s; the device library says: %s)"
                                            % (e, self.device_error))
        else:
            # Both walks find the same element whenever the strict one succeeds (tests/test_certshapes.py);
            # if they ever disagreed, the device's digest stands and no re-encoding is compared.
            if digest is None or hashlib.sha256(der[start:end]).digest() == digest:
                self.spki = der[start:end]
                digest = digest or hashlib.sha256(self.spki).digest()
        self.spki_sha256 = SPKI_PREFIX + b64(digest)
        if self.spki is not None:
            self._compare_reencoding()
        return self

    # ---- reading through cryptography, guarded

    def _read(self, field, fn):
        if field not in self._values:
            value, why = _guard(fn)
            self._values[field] = value
            if why is not None:
                self.unreadable[field] = why
        return self._values[field]

    def _x509(self):
        """The cryptography Certificate, or raise ValueError saying why there is none."""
        if "x509" not in self._values:
            from cryptography import x509

            self._values["x509"], self._x509_error = _guard(lambda: x509.load_der_x509_certificate(self.der))
        if self._values["x509"] is None:
            raise _NoCertificate("cryptography cannot parse this certificate: " + self._x509_error)
        return self._values["x509"]

    @property
    def public_key(self):
        """The cryptography key object, None if cryptography cannot decode the key."""
        if self.der is None:
            return self._values.get("public_key")
        return self._read("key", self._load_key)

    def _load_key(self):
        from cryptography.hazmat.primitives import serialization

        if self.spki is None:
            return self._x509().public_key()
        try:
            return serialization.load_der_public_key(self.spki)
        except ValueError:
            canonical = dermod.canonical_spki(self.spki)
            if canonical == self.spki:
                raise
            return serialization.load_der_public_key(canonical)  # e.g. non-minimal lengths: the same key

    def _compare_reencoding(self):
        # What tools that decode and re-encode the key print, when it is not the bytes in the certificate.
        key = self.public_key
        if key is None:
            return
        exact = self.spki_sha256
        again, _ = _guard(lambda: spki_pin(key))
        # OpenSSL writes an RSA key back canonically and every length minimally, but keeps EC parameters,
        # point forms and other algorithms' bytes as they are (measured with OpenSSL 3.0 on tests/support/
        # certshapes.py): canonical_spki does the same.
        canonical, _ = _guard(lambda: dermod.canonical_spki(self.spki))
        openssl = SPKI_PREFIX + b64(hashlib.sha256(canonical).digest()) if canonical else None
        self.reencoded_spki_sha256 = again if again != exact else None
        self.openssl_spki_sha256 = openssl if openssl != exact else None
        if self.reencoded_spki_sha256 or self.openssl_spki_sha256:
            self.reencoding = _what_differs(self.spki)

    @property
    def subject(self):
        if self.der is not None:
            return self._read("subject", lambda: self._x509().subject.rfc4514_string())
        if self.csr is not None:
            return self._read("subject", lambda: self.csr.subject.rfc4514_string())
        return None

    @property
    def issuer(self):
        if self.der is None:
            return None
        return self._read("issuer", lambda: self._x509().issuer.rfc4514_string())

    @property
    def not_after(self):
        """notAfter as an aware UTC datetime (None for keys and CSRs, and when unreadable)."""
        if self.der is None:
            return None
        return self._read("not_after", lambda: _utc(self._x509(), "not_valid_after"))

    @property
    def not_before(self):
        if self.der is None:
            return None
        return self._read("not_before", lambda: _utc(self._x509(), "not_valid_before"))

    @property
    def is_ca(self):
        if self.der is None:
            return None
        return self._read("is_ca", lambda: cert_is_ca(self._x509()))

    @property
    def key(self):
        k = self.public_key
        if k is not None:
            return key_description(k)
        try:
            oid = dermod.oid_text(dermod.spki_parts(self.spki)[0])
        except (dermod.DERError, TypeError):
            return "unreadable key"
        return "%s key, unreadable" % _KEY_OIDS.get(oid, "unknown key type " + oid)

    def read_all(self):
        """Read every field once (so ``unreadable`` is complete)."""
        for f in self.FIELDS:
            getattr(self, f)
        return self

    def other_pins(self):
        """Pins other tools print for this certificate's key that a device never matches to it."""
        return [p for p in (self.reencoded_spki_sha256, self.openssl_spki_sha256) if p]

    @property
    def warnings(self):
        """What a person must know before pinning this, one sentence each."""
        out = []
        if self.device_error:
            out.append(
                "a device cannot check this certificate (the device library says: %s): a device refuses a "
                "server that sends it as its leaf, whatever the pinset says, and never matches a pin to it "
                "as a CA certificate; the pin shown, %s, is of the key a lenient reading finds"
                % (self.device_error, self.spki_sha256))
        if self.reencoding:
            out.append(self._reencoding_warning())
        self.read_all()
        by_reason = {}
        for f in self.FIELDS:
            if f in self.unreadable:
                by_reason.setdefault(self.unreadable[f], []).append(_FIELD_NAMES[f])
        for why, fields in by_reason.items():
            out.append("cryptography cannot decode its %s (%s)%s" % (
                ", ".join(fields), why,
                ": other tools may print another pin for it, or none; the pin shown hashes the key's bytes as "
                "the certificate carries them, as a device does" if "key" in fields else ""))
        return out

    def _reencoding_warning(self):
        others = {}  # pin -> who prints it
        if self.reencoded_spki_sha256:
            others.setdefault(self.reencoded_spki_sha256, []).append("cryptography and tools built on it")
        if self.openssl_spki_sha256:
            others.setdefault(self.openssl_spki_sha256, []).append(OPENSSL_PIPELINE)
        text = ", ".join("%s (%s)" % (pin, ", ".join(who)) for pin, who in others.items())
        if self.device_error:  # no pin of it matches on a device anyway: only say what others print
            return "tools that re-encode its key (%s) print another pin: %s" % (self.reencoding, text)
        if not self.openssl_spki_sha256:
            text += "; %s keeps this encoding and prints the device's pin" % OPENSSL_PIPELINE
        return ("the key in this certificate is not encoded the way key tools write it back (%s): a device "
                "hashes the bytes the certificate carries, %s (the pin to use); tools that re-encode the key "
                "print another pin, which no device matches for this certificate: %s"
                % (self.reencoding, self.spki_sha256, text))

    def as_dict(self):
        self.read_all()
        na, nb = self.not_after, self.not_before
        return {
            "source": self.source,
            "depth": self.depth,
            "kind": self.kind,
            "key": self.key,
            "spki_sha256": self.spki_sha256,
            "cert_sha256": self.cert_sha256,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": iso(nb) if nb else None,
            "not_after": iso(na) if na else None,
            "is_ca": self.is_ca,
            "device_error": self.device_error,
            "reencoded_spki_sha256": self.reencoded_spki_sha256,
            "openssl_spki_sha256": self.openssl_spki_sha256,
            "unreadable": dict(self.unreadable),
            "warnings": self.warnings,
        }


def print_warnings(command, item, source=None):
    """item's warnings on stderr as ``certpin: COMMAND: WARNING: SOURCE depth N: ...``, after flushing stdout
    (where the item's own line went, so a terminal shows them in order)."""
    ws = item.warnings
    if ws:
        sys.stdout.flush()
        for w in ws:
            print("certpin: %s: WARNING: %s depth %s: %s" % (command, source or item.source, item.depth, w),
                  file=sys.stderr)
        sys.stderr.flush()


_FIELD_NAMES = {"subject": "subject", "issuer": "issuer", "not_before": "notBefore", "not_after": "notAfter",
                "is_ca": "extensions (is_ca)", "key": "key"}


def _what_differs(spki):
    """In words, why re-encoding this SPKI gives other bytes."""
    try:
        oid, params, bits = dermod.spki_parts(spki)
    except dermod.DERError:
        return "an encoding key tools do not write"
    oid = dermod.oid_text(oid)
    out = []
    if oid == "1.2.840.113549.1.1.1" and not params:
        out.append("an RSA AlgorithmIdentifier without the NULL parameter")
    elif oid == "1.2.840.113549.1.1.1" and params != b"\x05\x00":
        out.append("an RSA AlgorithmIdentifier whose parameter is not NULL")
    elif oid == "1.2.840.113549.1.1.10":
        out.append("an RSA key under id-RSASSA-PSS, which cryptography writes back as rsaEncryption")
    elif oid == "1.2.840.10045.2.1" and params[:1] == b"\x30":
        out.append("explicit EC curve parameters, which cryptography writes back as the named curve")
    if oid == "1.2.840.10045.2.1" and bits[1:2] in (b"\x02", b"\x03"):
        out.append("a compressed EC point, which cryptography writes back uncompressed")
    try:
        if dermod.canonical_spki(spki) != spki and not out:
            out.append("lengths or integers not in DER's minimal form")
    except dermod.DERError:
        pass
    return ", ".join(out) or "an encoding cryptography does not write back"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(cert, name):
    try:
        return getattr(cert, name + "_utc")
    except AttributeError:  # cryptography < 42
        return getattr(cert, name).replace(tzinfo=datetime.timezone.utc)


def cert_is_ca(cert):
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def cert_item(der, source=None, depth=None):
    """The Item of a DER certificate from a live chain; UserError if no key can be found in it."""
    try:
        return Item.certificate(der, source=source, depth=depth)
    except UnreadableCertificate as e:
        raise UserError("%s: the certificate at depth %s cannot be read: %s" % (source, depth, e))


# ---------------------------------------------------------------- files


def load_file(path):
    """Every certificate, key and CSR in a PEM or DER file, as Items in file order."""
    data = read_bytes(path, "certificate or key file")
    if not data.strip():
        raise UserError("%s: file is empty" % path)
    if b"-----BEGIN " in data:
        items = _load_pem(path, data)
    else:
        items = _load_der(path, data)
    for i, item in enumerate(items):
        item.source = path
        item.depth = i
    return items


def _passphrase():
    p = os.environ.get("CERTPIN_PASSPHRASE")
    return p.encode() if p is not None else None


def _encrypted_key_error(path):
    return UserError(
        "%s: the private key is encrypted: set CERTPIN_PASSPHRASE, or give its public key "
        "instead (openssl pkey -in %s -pubout -out key.pub.pem)" % (path, path)
    )


def _load_private(path, loader, data):
    """Load a private key; encrypted keys use $CERTPIN_PASSPHRASE. ValueError: not a (readable) key."""
    try:
        return loader(data, password=None)
    except TypeError:  # encrypted
        pw = _passphrase()
        if pw is None:
            raise _encrypted_key_error(path)
        try:
            return loader(data, password=pw)
        except ValueError:
            raise UserError("%s: wrong passphrase in CERTPIN_PASSPHRASE for the encrypted private key" % path)


def _private_item(path, loader, data):
    try:
        key = _load_private(path, loader, data)
    except ValueError as e:
        raise UserError("%s: bad private key: %s" % (path, e))
    return Item("private key", key.public_key())


def _pem_der(block):
    """The DER inside one PEM block (its base64 lines, strictly decoded)."""
    lines = block.splitlines()[1:-1]
    if any(b":" in line for line in lines):
        raise ValueError("PEM headers (Proc-Type, ...) in a block that takes none")
    return base64.b64decode(b"".join(line.strip() for line in lines), validate=True)


def _load_pem(path, data):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    items = []
    labels = []
    for m in _PEM_BLOCK.finditer(data):
        label = m.group(1).decode()
        block = m.group(0)
        labels.append(label)
        try:
            if label in ("CERTIFICATE", "X509 CERTIFICATE"):
                items.append(Item.certificate(_pem_der(block)))
            elif label == "TRUSTED CERTIFICATE":
                # OpenSSL's "trusted" form: a certificate followed by trust settings.
                items.append(Item.certificate(dermod.first_element(_pem_der(block))))
            elif label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                csr = x509.load_pem_x509_csr(block)
                items.append(Item("csr", csr.public_key(), csr=csr))
            elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                items.append(Item("public key", serialization.load_pem_public_key(block)))
            elif label == "OPENSSH PRIVATE KEY":
                items.append(_private_item(path, serialization.load_ssh_private_key, block))
            elif label.endswith("PRIVATE KEY"):
                items.append(_private_item(path, serialization.load_pem_private_key, block))
            elif label in ("PKCS7", "CMS"):
                items += _pkcs7_items(_pem_der(block))
            # Anything else (EC PARAMETERS, X509 CRL, ...) carries no key: skipped.
        except UserError:
            raise
        except (ValueError, TypeError, binascii.Error) as e:  # UnreadableCertificate and DERError are ValueErrors
            raise UserError("%s: bad PEM block %r (number %d): %s" % (path, label, len(labels), e))
        except Exception as e:  # cryptography's UnsupportedAlgorithm and friends
            raise UserError("%s: unsupported PEM block %r (number %d): %s" % (path, label, len(labels), e))
    if not items:
        if labels:
            raise UserError(
                "%s: no certificate, key or CSR found (PEM blocks: %s)" % (path, ", ".join(labels))
            )
        raise UserError("%s: garbled PEM: a BEGIN line without a matching END line" % path)
    return items


def _pkcs7_items(der):
    """The certificates of a PKCS#7 bundle, each from its exact bytes (none is re-encoded)."""
    return [Item.certificate(c) for c in dermod.pkcs7_certificates(der)]


def _load_der(path, data):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        dermod.locate_spki(data)
    except dermod.DERError as e:
        not_cert = e
    else:  # shaped like a certificate: pins from its bytes, whatever cryptography thinks of the rest
        try:
            return [Item.certificate(data)]
        except UnreadableCertificate as e:
            raise UserError("%s: certificate cannot be read: %s" % (path, e))
    csr, _ = _guard(lambda: x509.load_der_x509_csr(data))
    if csr is not None:
        key, why = _guard(csr.public_key)
        if key is None:
            raise UserError("%s: the CSR's key cannot be read: %s" % (path, why))
        return [Item("csr", key, csr=csr)]
    key, _ = _guard(lambda: serialization.load_der_public_key(data))
    if key is not None:
        return [Item("public key", key)]
    try:
        return [Item("private key", _load_private(path, serialization.load_der_private_key, data).public_key())]
    except UserError:
        raise
    except Exception:  # ValueError, UnsupportedAlgorithm: not a private key we can use
        pass
    try:
        items = _pkcs7_items(data)
    except dermod.DERError:
        items = None
    except UnreadableCertificate as e:
        raise UserError("%s: a certificate in the PKCS#7 bundle cannot be read: %s" % (path, e))
    if items:
        return items
    if items == []:
        raise UserError("%s: a PKCS#7 bundle with no certificate in it" % path)
    raise UserError(
        "%s: not a certificate (%s), public key, private key or CSR (tried PEM and DER)" % (path, not_cert)
    )


# ---------------------------------------------------------------- pin strings


class PinFormatError(ValueError):
    """A pin string the device would refuse; the message says what it looks like."""


def parse_pin(text):
    """Validate one pin string; return (prefix, 32-byte digest) or raise PinFormatError.

    Foreign formats get a message naming what they look like and, where it can
    be derived, the pin to write instead.
    """
    if not isinstance(text, str):
        raise PinFormatError("a pin must be a string, not %s" % type(text).__name__)
    s = text
    if s != s.strip():
        raise PinFormatError("pin %r has leading or trailing white space" % text)
    for prefix in (CERT_PREFIX, SPKI_PREFIX):
        if s.startswith(prefix):
            body = s[len(prefix):]
            break
    else:
        raise PinFormatError(_describe_foreign(s))
    if ";" in body:
        raise PinFormatError("pin %r holds several pins separated by ';' (curl's form): give each pin separately" % text)
    # curl writes "sha256//<base64>". A real pin's base64 may itself start with "/"
    # (1 in 64 do), so only a "/" followed by 44 more characters is curl's form.
    if prefix == SPKI_PREFIX and body.startswith("/") and len(body) == 45:
        raise PinFormatError(
            "pin %r is in curl's --pinnedpubkey form 'sha256//': write %r (one slash)" % (text, SPKI_PREFIX + body[1:])
        )
    if _HEX.match(body.replace(":", "")) and len(body.replace(":", "")) in (40, 64):
        raise PinFormatError(
            "pin %r has a hex digest after %r: the digest must be base64 (%s)"
            % (text, prefix, _hex_hint(body.replace(":", "")))
        )
    if "-" in body or "_" in body:
        raise PinFormatError("pin %r uses the base64url alphabet ('-', '_'): use standard base64 ('+', '/')" % text)
    try:
        digest = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise PinFormatError("pin %r: %r is not valid base64" % (text, body))
    if len(digest) == 20:
        raise PinFormatError("pin %r holds a 20-byte digest (SHA-1 length): pins must be SHA-256 (32 bytes)" % text)
    if len(digest) != 32:
        raise PinFormatError("pin %r holds a %d-byte digest: a SHA-256 pin is 32 bytes" % (text, len(digest)))
    if not _B64.match(body):
        raise PinFormatError("pin %r: base64 must be 44 characters with '=' padding" % text)
    if b64(digest) != body:  # unused low bits set: another tool would print a different string
        raise PinFormatError("pin %r is not canonical base64 (it decodes, but encodes back as %r)"
                             % (text, prefix + b64(digest)))
    return prefix, digest


def _hex_hint(hexdigits):
    if len(hexdigits) == 40:
        return "and this is a SHA-1 length fingerprint; pins must be SHA-256"
    return "if this is a certificate fingerprint, write %s" % (CERT_PREFIX + b64(binascii.unhexlify(hexdigits)))


def _describe_foreign(s):
    low = s.lower()
    compact = s.replace(":", "").replace(" ", "")
    if low.startswith("sha1/") or low.startswith("pin-sha1"):
        return "pin %r is a SHA-1 pin: only SHA-256 pins are supported" % s
    if low.startswith("pin-sha256="):
        inner = s.split("=", 1)[1].strip('"')
        return "pin %r is in HPKP header form: write %r" % (s, SPKI_PREFIX + inner)
    if low.startswith("sha256/") or low.startswith("cert-sha256/"):
        return "pin %r: the prefix must be lowercase 'sha256/' or 'cert-sha256/'" % s
    if _HEX.match(compact) and len(compact) == 64:
        return (
            "pin %r looks like a hex SHA-256 fingerprint (openssl x509 -fingerprint gives the "
            "certificate's): write %r, or better the key pin from `certpin pin`"
            % (s, CERT_PREFIX + b64(binascii.unhexlify(compact)))
        )
    if _HEX.match(compact) and len(compact) == 40:
        return "pin %r looks like a hex SHA-1 fingerprint: pins must be SHA-256 (`certpin pin` computes them)" % s
    try:
        digest = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        digest = None
    if digest is not None and len(digest) == 32:
        return "pin %r has no prefix: write %r for a key pin" % (s, SPKI_PREFIX + s)
    if digest is not None and len(digest) == 20:
        return "pin %r looks like a base64 SHA-1 digest without prefix: pins must be SHA-256" % s
    return "pin %r is not 'sha256/<base64>' or 'cert-sha256/<base64>'" % s


def check_pin(text):
    """Raise UserError unless text is a valid pin (for command-line --pin values)."""
    try:
        parse_pin(text)
    except PinFormatError as e:
        raise UserError(str(e))
    return text
