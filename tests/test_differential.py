"""Differential: the device library's pins equal cryptography's and the host tool's.

Corpus: every certificate of the certifi CA bundle, plus a generated
certificate of every key type cryptography supports (RSA 2048/3072/4096, EC
P-256/P-384/P-521/secp256k1, Ed25519, Ed448, DSA). The device library runs
on BOTH runtimes (for each, one process hashing every DER of the corpus,
tests/device/replay.py); the host side is `certpin_host.pins` (in-process and
the `certpin pin --json` CLI) when it is installed.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import certpin

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
from support import corpus


def reference_pin(der):
    """cryptography's SPKI hash, checked to be the SPKI bytes inside the certificate."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # cryptography re-encodes the key; if that re-encoding were not byte-identical
    # to the certificate's SPKI, the digests would differ for a reason other than
    # a bug: make that visible instead of silently comparing different things.
    assert spki in der, "cryptography re-encoded the SPKI differently: %s" % cert.subject.rfc4514_string()
    return hashlib.sha256(spki).digest()


@pytest.fixture(scope="module")
def diff_corpus():
    """[(label, der)]"""
    items = [("certifi[%d] %s" % (i, x509.load_der_x509_certificate(d).subject.rfc4514_string()[:60]), d)
             for i, d in enumerate(corpus.certifi_ders())]
    items += [("generated %s" % k, d) for k, d in corpus.keytype_certs().items()]
    return items


def test_corpus_covers_every_key_type(diff_corpus):
    assert len(diff_corpus) > 100
    names = {label.split()[1] for label, _ in diff_corpus if label.startswith("generated")}
    assert names == set(corpus.KEY_TYPES)


def test_differential_device_library_in_process(diff_corpus):
    bad = []
    for label, der in diff_corpus:
        want = reference_pin(der)
        for form in (der, bytearray(der), memoryview(der)):
            if certpin.spki_sha256(form) != want:
                bad.append(label)
        assert certpin.cert_sha256(der) == hashlib.sha256(der).digest()
    assert bad == []


def test_differential_device_library_on_runtime(runtime, diff_corpus, tmp_path):
    path = str(tmp_path / "ders.txt")
    corpus.write_corpus(path, [("s", der) for _, der in diff_corpus])
    summary, results = corpus.replay(runtime, path, verbose=True)
    print("\n%s differential: %d certificates, %d hashed, %d refused" % (
        runtime, summary["tried"], summary["ok"], summary["refused"]))
    assert summary["crashes"] == [] and summary["refused"] == 0, summary
    assert len(results) == len(diff_corpus)
    bad = [label for (n, kind, hexd), (label, der) in zip(results, diff_corpus)
           if kind != "ok" or bytes.fromhex(hexd) != reference_pin(der)]
    assert bad == []


def host_pins():
    try:
        from certpin_host import pins
    except ImportError:
        return None
    return pins if hasattr(pins, "cert_item") else None


def test_differential_host_tool_in_process(diff_corpus):
    pins = host_pins()
    if pins is None:
        pytest.skip("certpin_host.pins is not there yet: compared against cryptography only")
    bad = []
    for label, der in diff_corpus:
        want = "sha256/" + base64.b64encode(certpin.spki_sha256(der)).decode()
        if pins.cert_item(der).spki_sha256 != want:
            bad.append(label)
    assert bad == []


def test_differential_host_cli_on_certifi_bundle(tmp_path):
    if host_pins() is None:
        pytest.skip("certpin_host.pins is not there yet: compared against cryptography only")
    import certifi

    exe = os.path.join(os.path.dirname(sys.executable), "certpin")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "certpin_host"]
    p = subprocess.run(cmd + ["pin", "--json", certifi.where()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    ders = corpus.certifi_ders()
    assert len(out) == len(ders)
    want = ["sha256/" + base64.b64encode(certpin.spki_sha256(d)).decode() for d in ders]
    assert [o["spki_sha256"] for o in out] == want
