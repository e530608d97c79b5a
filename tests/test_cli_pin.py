"""certpin pin and certpin keygen: every SOURCE kind, live chains, JSON, refusals."""
import base64
import datetime
import os
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from support.cli import run, run_subprocess
from support.pki import spki_pin

JSON_FIELDS = {"depth", "spki_sha256", "cert_sha256", "subject", "issuer", "not_after", "is_ca"}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def pins_of(result):
    return [line.split()[1] for line in result.out.splitlines() if line and not line.startswith("#")]


# ---------------------------------------------------------------- files


def test_pem_certificate(pki, capsys, tmp_path):
    path = write(tmp_path / "leaf.pem", pki.genuine.chain_pems[0])
    r = run(capsys, "pin", path)
    assert r.status == 0, r
    assert pins_of(r) == [pki.genuine.pin]
    assert "CN=localhost" in r.out and "leaf" in r.out


def test_der_certificate(pki, capsys):
    r = run(capsys, "pin", pki.path("genuine.0.der"), "--json")
    assert r.status == 0, r
    (item,) = r.json()
    assert item["spki_sha256"] == pki.genuine.pin
    assert item["cert_sha256"] == "cert-sha256/" + base64.b64encode(
        __import__("hashlib").sha256(pki.genuine.der).digest()).decode()
    assert item["kind"] == "certificate" and item["is_ca"] is False


def test_pem_chain_in_file_order(pki, capsys):
    r = run(capsys, "pin", pki.path("genuine.chain.pem"), "--json")
    assert r.status == 0, r
    items = r.json()
    assert [i["depth"] for i in items] == [0, 1]
    assert [i["spki_sha256"] for i in items] == [pki.genuine.pin, pki.intermediate_pin]
    assert [i["is_ca"] for i in items] == [False, True]
    assert JSON_FIELDS <= set(items[0])


def test_public_key(pki, capsys, tmp_path):
    cert = x509.load_der_x509_certificate(pki.genuine.der)
    pub = cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for path in (write(tmp_path / "k.pub.pem", pub), write(tmp_path / "k.pub.der", der)):
        r = run(capsys, "pin", path, "--json")
        assert r.status == 0, r
        (item,) = r.json()
        assert item["kind"] == "public key"
        assert item["spki_sha256"] == pki.genuine.pin
        assert item["cert_sha256"] is None and item["is_ca"] is None


def test_private_key_gives_the_certificate_pin(pki, capsys):
    r = run(capsys, "pin", pki.path("genuine.key.pem"))
    assert r.status == 0, r
    assert pins_of(r) == [pki.genuine.pin]
    assert "private key" in r.out


def test_encrypted_private_key_needs_passphrase(pki, capsys, tmp_path, monkeypatch):
    key = serialization.load_pem_private_key(pki.genuine.key_pem, None)
    enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"s3cret"))
    path = write(tmp_path / "enc.pem", enc)
    monkeypatch.delenv("CERTPIN_PASSPHRASE", raising=False)
    r = run(capsys, "pin", path)
    assert r.status == 2 and "encrypted" in r.err and "CERTPIN_PASSPHRASE" in r.err
    monkeypatch.setenv("CERTPIN_PASSPHRASE", "s3cret")
    r = run(capsys, "pin", path)
    assert r.status == 0 and pins_of(r) == [pki.genuine.pin]
    monkeypatch.setenv("CERTPIN_PASSPHRASE", "wrong")
    r = run(capsys, "pin", path)
    assert r.status == 2 and "passphrase" in r.err


def test_csr(pki, capsys, tmp_path):
    key = serialization.load_pem_private_key(pki.genuine.key_pem, None)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .sign(key, hashes.SHA256()))
    for path in (write(tmp_path / "req.csr", csr.public_bytes(serialization.Encoding.PEM)),
                 write(tmp_path / "req.der", csr.public_bytes(serialization.Encoding.DER))):
        r = run(capsys, "pin", path, "--json")
        assert r.status == 0, r
        (item,) = r.json()
        assert item["kind"] == "csr" and item["spki_sha256"] == pki.genuine.pin
        assert item["subject"] == "CN=localhost"


def test_several_sources_one_run(pki, capsys):
    r = run(capsys, "pin", pki.path("genuine.key.pem"), pki.path("rotated.0.der"), pki.path("root.der"))
    assert r.status == 0, r
    assert pins_of(r) == [pki.genuine.pin, pki.rotated.pin, pki.root_pin]


def test_missing_file(capsys, tmp_path):
    r = run(capsys, "pin", str(tmp_path / "nope.pem"))
    assert r.status == 2
    assert r.err.startswith("certpin: pin: ") and "no such file" in r.err


@pytest.mark.parametrize("content, words", [
    (b"hello, not a certificate\n", "not a certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "bad PEM block"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "garbled PEM"),
    (b"", "empty"),
])
def test_garbage_is_a_clear_error(capsys, tmp_path, content, words):
    r = run(capsys, "pin", write(tmp_path / "bad.pem", content))
    assert r.status == 2, r
    assert words in r.err and "Traceback" not in r.err


# ---------------------------------------------------------------- live servers


def test_host_chain_in_served_order_verified_with_cafile(pki, serve, capsys):
    s = serve(pki.genuine)
    r = run(capsys, "pin", "localhost:%d" % s.port, "--cafile", pki.path("root.pem"), "--json")
    assert r.status == 0, r
    items = r.json()
    assert [i["depth"] for i in items] == [0, 1]
    assert [i["spki_sha256"] for i in items] == [pki.genuine.pin, pki.intermediate_pin]
    assert all(JSON_FIELDS <= set(i) for i in items)
    assert items[0]["is_ca"] is False and items[1]["is_ca"] is True
    assert items[0]["issuer"] == items[1]["subject"]
    assert items[0]["not_after"].endswith("Z") and all(i["verified"] for i in items)


def test_host_text_output(pki, serve, capsys):
    s = serve(pki.genuine)
    r = run(capsys, "pin", "127.0.0.1:%d" % s.port, "--cafile", pki.path("root.pem"))
    assert r.status == 0, r
    lines = r.out.splitlines()
    assert "verified" in lines[0]
    assert lines[1].startswith("0  " + pki.genuine.pin) and "leaf" in lines[1] and "notAfter" in lines[1]
    assert lines[2].startswith("1  " + pki.intermediate_pin) and "CA" in lines[2]


def test_unverified_host_is_refused_without_insecure(pki, serve, capsys):
    s = serve(pki.genuine)
    r = run(capsys, "pin", "localhost:%d" % s.port)  # the test root is not in the system store
    assert r.status == 2
    assert "did not verify" in r.err and "--insecure" in r.err
    assert r.out == ""  # no pin printed from an unverified connection
    r = run(capsys, "pin", "localhost:%d" % s.port, "--cafile", pki.path("rogue-root.pem"))
    assert r.status == 2 and r.out == ""


def test_insecure_shows_chain_with_loud_warning(pki, serve, capsys):
    s = serve(pki.rogue_leaf)
    r = run(capsys, "pin", "localhost:%d" % s.port, "--insecure")
    assert r.status == 0, r
    assert pins_of(r)[0] == pki.rogue_leaf.pin
    assert "WARNING" in r.err and "NOT verify" in r.err
    assert "NOT VERIFIED" in r.out


def test_connect_to_checks_the_named_host_at_another_address(pki, serve, capsys):
    """(issue 18: --connect-to HOST:PORT:ADDR:PORT replaces --servername)"""
    s = serve(pki.genuine)
    ok = run(capsys, "pin", "localhost", "--connect-to", "localhost:443:127.0.0.1:%d" % s.port,
             "--cafile", pki.path("root.pem"))
    assert ok.status == 0, ok
    assert pins_of(ok)[0] == pki.genuine.pin and "# localhost (verified" in ok.out
    bad = run(capsys, "pin", "example.org", "--connect-to", "::127.0.0.1:%d" % s.port,
              "--cafile", pki.path("root.pem"))
    assert bad.status == 2 and "did not verify" in bad.err and "example.org:443 (at 127.0.0.1:%d)" % s.port in bad.err
    # a rule for another host or port does not apply: the target itself is dialled (nothing listens on 443)
    r = run(capsys, "pin", "localhost:%d" % s.port, "--connect-to", "other.example:%d:127.0.0.2:1" % s.port,
            "--connect-to", "localhost:1:127.0.0.2:1", "--cafile", pki.path("root.pem"))
    assert r.status == 0, r


@pytest.mark.parametrize("argv, words", [
    (["--servername", "localhost"], "--servername was replaced by --connect-to HOST:PORT:ADDR:PORT"),
    (["--connect-to", "localhost:443:127.0.0.1"], "4 fields"),
    (["--connect-to", "localhost:https:127.0.0.1:8443"], "not a port number"),
    (["--connect-to", "localhost:443:[::1:8443"], "missing ']'"),
])
def test_connect_to_mistakes_are_usage_errors(capsys, argv, words):
    r = run(capsys, "pin", "localhost", *argv)
    assert r.status == 2 and r.err.startswith("certpin: pin: ") and words in r.err, r


def test_closed_port(capsys, pki):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    r = run(capsys, "pin", "127.0.0.1:%d" % port, "--cafile", pki.path("root.pem"))
    assert r.status == 2
    assert "connection refused by 127.0.0.1:%d" % port in r.err and "OSError" not in r.err, r


def test_end_to_end_subprocess(pki, serve):
    s = serve(pki.genuine)
    r = run_subprocess("pin", "localhost:%d" % s.port, "--cafile", pki.path("root.pem"), "--json")
    assert r.status == 0, r
    assert [i["spki_sha256"] for i in r.json()] == [pki.genuine.pin, pki.intermediate_pin]
    r = run_subprocess("pin", "localhost:%d" % s.port)
    assert r.status == 2 and r.err.startswith("certpin: pin: ") and "Traceback" not in r.err


# ---------------------------------------------------------------- keygen


@pytest.mark.parametrize("kind, extra, key_type", [
    ("ec", [], "EC P-256"), ("rsa", [], "RSA 2048"), ("ec", ["--curve", "P-384"], "EC P-384")])
def test_keygen_mode_0600_and_pin(capsys, tmp_path, kind, extra, key_type):
    path = str(tmp_path / "backup.pem")
    r = run(capsys, "keygen", path, "--type", kind, *extra)
    assert r.status == 0, r
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pin, label = r.out.strip().split("  ", 1)  # (issue 18) the pin, then what it is
    assert pin.startswith("sha256/") and len(pin) == 51
    assert label == "backup pin of %s (%s): put it in the pinset, keep the key offline" % (path, key_type)
    again = run(capsys, "pin", path, "--json")
    assert again.json()[0]["spki_sha256"] == pin and again.json()[0]["key"] == key_type
    assert "OFFLINE" in r.err


def test_keygen_refuses_to_overwrite(capsys, tmp_path):
    path = str(tmp_path / "backup.pem")
    assert run(capsys, "keygen", path).status == 0
    before = open(path, "rb").read()
    r = run(capsys, "keygen", path)
    assert r.status == 2 and "already exists" in r.err
    assert open(path, "rb").read() == before


def test_keygen_public_file(capsys, tmp_path):
    path, pub = str(tmp_path / "b.pem"), str(tmp_path / "b.pub.pem")
    r = run(capsys, "keygen", path, "--public", pub)
    assert r.status == 0, r
    assert pins_of(run(capsys, "pin", pub)) == [r.out.split()[0]]
    assert stat.S_IMODE(os.stat(pub).st_mode) == 0o644


# ---------------------------------------------------------------- host pins == device pins


def _self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parity.test")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=3650)))
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algo).public_bytes(serialization.Encoding.DER)


KEYS = {
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_host_pins_equal_device_library_pins(kind, capsys, tmp_path):
    import certpin  # the device library (firmware_lib/certpin)

    assert os.path.samefile(os.path.dirname(certpin.__file__),
                            os.path.join(os.path.dirname(os.path.dirname(__file__)), "firmware_lib", "certpin"))

    der = _self_signed(KEYS[kind]())
    path = write(tmp_path / (kind + ".der"), der)
    (item,) = run(capsys, "pin", path, "--json").json()
    assert item["spki_sha256"] == "sha256/" + base64.b64encode(certpin.spki_sha256(der)).decode()
    assert item["cert_sha256"] == "cert-sha256/" + base64.b64encode(certpin.cert_sha256(der)).decode()
    assert item["spki_sha256"] == spki_pin(der)
    if shutil.which("openssl"):  # the pipeline the docs quote
        pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True).stdout
        spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True).stdout
        digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=spki, capture_output=True).stdout
        assert item["spki_sha256"] == "sha256/" + base64.b64encode(digest).decode()


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("argv", [["pin"], ["keygen"], ["pinset"], ["pinset", "new"], ["pinset", "add"],
                                  ["pinset", "from-server"], ["pinset", "lint"], ["pinset", "set-update"],
                                  ["pinset", "sign"], ["pinset", "check-update"], ["verify"], ["flash"]])
def test_every_help_has_an_example(capsys, argv):
    r = run(capsys, *argv, "--help")
    assert r.status == 0
    assert "example" in r.out and "certpin " in r.out.split("example", 1)[1]


def test_der_private_key_pkcs7_and_openssh_key(pki, capsys, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.serialization import pkcs7

    key = serialization.load_pem_private_key(pki.genuine.key_pem, None)
    der_key = write(tmp_path / "k.der", key.private_bytes(serialization.Encoding.DER,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    ssh_key = write(tmp_path / "id_ecdsa.key", key.private_bytes(serialization.Encoding.PEM,
                                                                 serialization.PrivateFormat.OpenSSH,
                                                                 serialization.NoEncryption()))
    certs = [x509.load_der_x509_certificate(d) for d in pki.genuine.chain_ders]
    p7 = write(tmp_path / "chain.p7b", pkcs7.serialize_certificates(certs, serialization.Encoding.PEM))
    monkeypatch.setenv("CERTPIN_PASSPHRASE", "unused")  # a passphrase for a plain key is harmless
    r = run(capsys, "pin", der_key, ssh_key, p7, "--json")
    assert r.status == 0, r
    pins = [i["spki_sha256"] for i in r.json()]
    assert pins[:2] == [pki.genuine.pin, pki.genuine.pin]
    assert sorted(pins[2:]) == sorted([pki.genuine.pin, pki.intermediate_pin])  # PKCS#7 is a SET: no order
    assert [i["kind"] for i in r.json()][:2] == ["private key", "private key"]


def test_bad_cafile_is_a_usage_error(pki, capsys, tmp_path):
    r = run(capsys, "pin", "localhost:1", "--cafile", str(tmp_path / "none.pem"))
    assert r.status == 2 and "--cafile" in r.err and "no such file" in r.err
    r = run(capsys, "pin", "localhost:1", "--cafile", pki.path("root.der"))
    assert r.status == 2 and "not a PEM CA certificate file" in r.err


def test_bad_host_port(capsys):
    r = run(capsys, "pin", "localhost:99999")
    assert r.status == 2 and "port must be a number" in r.err
