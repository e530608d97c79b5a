"""Pins, and the files they come from (uses `cryptography` for all parsing).

A pin is ``sha256/<base64>``: SHA-256 of the DER SubjectPublicKeyInfo, the same
string OkHttp, HPKP and the openssl pipeline produce. ``cert-sha256/<base64>``
is the SHA-256 of a whole DER certificate (breaks at every renewal).

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

from certpin_host.errors import UserError

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
    """``sha256/<base64>`` of a cryptography public key object."""
    return SPKI_PREFIX + b64(hashlib.sha256(spki_der(public_key)).digest())


def cert_pin(cert_der):
    """``cert-sha256/<base64>`` of a DER certificate."""
    return CERT_PREFIX + b64(hashlib.sha256(bytes(cert_der)).digest())


def key_description(public_key):
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA %d" % public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return "EC " + names.get(public_key.curve.name, public_key.curve.name)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA %d" % public_key.key_size
    return type(public_key).__name__


class Item:
    """One certificate, key or CSR and its pins."""

    def __init__(self, kind, public_key, cert=None, csr=None, source=None, depth=None):
        self.kind = kind  # "certificate" | "public key" | "private key" | "csr"
        self.public_key = public_key
        self.cert = cert
        self.csr = csr
        self.source = source
        self.depth = depth
        self.spki_sha256 = spki_pin(public_key)
        self.cert_der = None
        self.cert_sha256 = None
        if cert is not None:
            from cryptography.hazmat.primitives import serialization

            self.cert_der = cert.public_bytes(serialization.Encoding.DER)
            self.cert_sha256 = cert_pin(self.cert_der)

    @property
    def subject(self):
        if self.cert is not None:
            return self.cert.subject.rfc4514_string()
        if self.csr is not None:
            return self.csr.subject.rfc4514_string()
        return None

    @property
    def issuer(self):
        return self.cert.issuer.rfc4514_string() if self.cert is not None else None

    @property
    def not_after(self):
        """notAfter as an aware UTC datetime (None for keys and CSRs)."""
        return _not_after(self.cert) if self.cert is not None else None

    @property
    def not_before(self):
        if self.cert is None:
            return None
        try:
            return self.cert.not_valid_before_utc
        except AttributeError:  # cryptography < 42
            return self.cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)

    @property
    def is_ca(self):
        if self.cert is None:
            return None
        return cert_is_ca(self.cert)

    @property
    def key(self):
        return key_description(self.public_key)

    def as_dict(self):
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
        }


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_after(cert):
    try:
        return cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42
        return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def cert_is_ca(cert):
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def cert_item(der, source=None, depth=None):
    """An Item for a DER certificate (from a live chain)."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        return Item("certificate", cert.public_key(), cert=cert, source=source, depth=depth)
    except ValueError as e:
        raise UserError("%s: certificate at depth %s cannot be parsed: %s" % (source, depth, e))


# ---------------------------------------------------------------- files


def load_file(path):
    """Every certificate, key and CSR in a PEM or DER file, as Items in file order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % path)
    except IsADirectoryError:
        raise UserError("%s: is a directory, not a certificate or key file" % path)
    except OSError as e:
        raise UserError("%s: cannot read: %s" % (path, e.strerror or e))
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
                cert = x509.load_pem_x509_certificate(block)
                items.append(Item("certificate", cert.public_key(), cert=cert))
            elif label == "TRUSTED CERTIFICATE":
                # OpenSSL's "trusted" form: a certificate followed by trust settings.
                der = base64.b64decode(b"".join(block.splitlines()[1:-1]))
                cert = x509.load_der_x509_certificate(_first_der_element(der))
                items.append(Item("certificate", cert.public_key(), cert=cert))
            elif label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                csr = x509.load_pem_x509_csr(block)
                items.append(Item("csr", csr.public_key(), csr=csr))
            elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                items.append(Item("public key", serialization.load_pem_public_key(block)))
            elif label == "OPENSSH PRIVATE KEY":
                items.append(_private_item(path, serialization.load_ssh_private_key, block))
            elif label.endswith("PRIVATE KEY"):
                items.append(_private_item(path, serialization.load_pem_private_key, block))
            elif label == "PKCS7":
                from cryptography.hazmat.primitives.serialization import pkcs7

                for cert in pkcs7.load_pem_pkcs7_certificates(block):
                    items.append(Item("certificate", cert.public_key(), cert=cert))
            # Anything else (EC PARAMETERS, X509 CRL, ...) carries no key: skipped.
        except UserError:
            raise
        except (ValueError, TypeError, binascii.Error) as e:
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


def _first_der_element(der):
    """The bytes of the first DER TLV in der (for TRUSTED CERTIFICATE)."""
    if len(der) < 2:
        raise ValueError("truncated")
    n = der[1]
    if n < 0x80:
        return der[: 2 + n]
    k = n & 0x7F
    length = int.from_bytes(der[2 : 2 + k], "big")
    return der[: 2 + k + length]


def _load_der(path, data):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_der_x509_certificate(data)
        return [Item("certificate", cert.public_key(), cert=cert)]
    except ValueError:
        pass
    try:
        csr = x509.load_der_x509_csr(data)
        return [Item("csr", csr.public_key(), csr=csr)]
    except ValueError:
        pass
    try:
        return [Item("public key", serialization.load_der_public_key(data))]
    except Exception:  # ValueError, UnsupportedAlgorithm: not a public key we can use
        pass
    try:
        return [Item("private key", _load_private(path, serialization.load_der_private_key, data).public_key())]
    except UserError:
        raise
    except Exception:
        pass
    try:
        from cryptography.hazmat.primitives.serialization import pkcs7

        certs = pkcs7.load_der_pkcs7_certificates(data)
        if certs:
            return [Item("certificate", c.public_key(), cert=c) for c in certs]
    except Exception:
        pass
    raise UserError(
        "%s: not a certificate, public key, private key or CSR (tried PEM and DER)" % path
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
