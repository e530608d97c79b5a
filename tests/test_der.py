"""certpin.spki_sha256 / cert_sha256 against cryptography, and strictness."""
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import certpin
from support.corpus import self_signed  # noqa: F401  (also used by test_pinset)

KEYS = {
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
    "rsa4096": lambda: rsa.generate_private_key(65537, 4096),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
}


@pytest.fixture(scope="module", params=sorted(KEYS))
def cert(request):
    return self_signed(KEYS[request.param]())


def reference_spki(der):
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def test_spki_sha256_equals_cryptography(cert):
    want = reference_spki(cert)
    assert certpin.spki_sha256(cert) == want
    assert certpin.spki_sha256(bytearray(cert)) == want
    assert certpin.spki_sha256(memoryview(cert)) == want


def test_cert_sha256(cert):
    assert certpin.cert_sha256(cert) == hashlib.sha256(cert).digest()


def test_spki_sha256_micropython_agrees(cert, micropython, tmp_path):
    import subprocess

    from conftest import FIRMWARE_LIB

    p = tmp_path / "c.der"
    p.write_bytes(cert)
    code = "import certpin, binascii; print(binascii.hexlify(certpin.spki_sha256(open(%r,'rb').read())).decode())" % str(p)
    out = subprocess.run([micropython, "-c", code], env={"MICROPYPATH": FIRMWARE_LIB + ":.frozen"},
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == reference_spki(cert).hex(), out.stderr


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda d: d + b"\x00", "data after the certificate"),
        (lambda d: d[:-1], ""),
        (lambda d: b"", ""),
        (lambda d: b"\x31" + d[1:], "expected tag 0x30"),
        (lambda d: d[:1] + b"\x80" + d[4:], "indefinite length"),
    ],
)
def test_malformed_certificate(cert, mutate, why):
    with pytest.raises(certpin.Error) as e:
        certpin.spki_sha256(mutate(cert))
    assert why in str(e.value)
    with pytest.raises(certpin.Error):
        certpin.cert_sha256(mutate(cert))


def test_non_minimal_length_refused():
    der = self_signed(KEYS["p256"]())
    # Re-encode the outer length with one more length octet than needed.
    assert der[1] == 0x82
    with pytest.raises(certpin.Error, match="over-long length"):
        certpin.spki_sha256(b"\x30\x83\x00" + der[2:])
    with pytest.raises(certpin.Error, match="non-minimal length"):
        certpin.spki_sha256(b"\x30\x81\x05" + b"\x02\x01\x00\x30\x00")
    with pytest.raises(certpin.Error, match="non-minimal length"):
        certpin.spki_sha256(b"\x30\x82\x00\x05" + b"\x02\x01\x00\x30\x00")


def test_not_bytes():
    with pytest.raises(certpin.Error, match="DER bytes"):
        certpin.spki_sha256("not a certificate")
    with pytest.raises(certpin.Error):
        certpin.spki_sha256(None)
