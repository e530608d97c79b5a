"""Parser-differential safety: hand-crafted certificates (tests/vectors/der/*.der).

Each vector is refused with certpin.Error or hashed exactly as cryptography
(standing in for the TLS stack) reads it; tests/vectors/manifest says which.
Both runtimes. The vectors that hide the genuine pinned SPKI in a certificate
that is otherwise valid (extension, subject, issuer, unique ID, serial) are
also served in a real TLS handshake: the TLS stacks accept those certificates,
so only certpin's choice of bytes stands between the attacker and the pin.
"""
import hashlib
import json
import os
import sys

import pytest
from cryptography.hazmat.primitives import serialization

from support import corpus
from support.scenario import run_client
from support.servers import TLSServer

HERE = os.path.dirname(os.path.abspath(__file__))
VDIR = os.path.join(HERE, "vectors", "der")
sys.path.insert(0, os.path.join(HERE, "vectors"))
import make_vectors  # noqa: E402


def manifest():
    with open(os.path.join(VDIR, "manifest.json")) as f:
        return json.load(f)


def vector(name):
    with open(os.path.join(VDIR, name), "rb") as f:
        return f.read()


def test_vectors_are_reproducible_from_the_generator(tmp_path):
    make_vectors.write(str(tmp_path))
    committed = sorted(os.listdir(VDIR))
    assert sorted(os.listdir(str(tmp_path))) == committed
    for name in committed:
        with open(os.path.join(str(tmp_path), name), "rb") as f:
            assert f.read() == open(os.path.join(VDIR, name), "rb").read(), name


def test_manifest_agrees_with_cryptography():
    keys = make_vectors.Keys()
    genuine = hashlib.sha256(make_vectors.spki(keys.genuine)).hexdigest()
    real = hashlib.sha256(make_vectors.spki(keys.real)).hexdigest()
    m = manifest()
    assert len(m) >= 100
    for e in m:
        stack, detail = make_vectors.reference(vector(e["file"]))
        if e["expect"] == "hash":
            assert stack == "accepts" and detail == e["spki_sha256"], e
        elif e["expect"] == "refuse":
            assert stack == "refuses", e  # nothing certpin refuses is a certificate a TLS stack would use
        if e["file"].startswith("hidden-spki") and e["spki_sha256"]:
            assert e["spki_sha256"] == real != genuine, e  # the TLS stack reads the real key, not the hidden one


def test_parser_vectors_on_runtime(runtime, tmp_path):
    m = manifest()
    cases = []
    for e in m:
        der = vector(e["file"])
        cases += [("s", der), ("c", der)]
    path = str(tmp_path / "vectors.txt")
    corpus.write_corpus(path, cases)
    summary, results = corpus.replay(runtime, path, verbose=True)
    print("\n%s vectors: %d files, %d hashed, %d refused, %d crashes" % (
        runtime, len(m), summary["ok"] // 2, summary["refused"] // 2, len(summary["crashes"])))
    assert summary["crashes"] == [], summary["crashes"]
    wrong = []
    for k, e in enumerate(m):
        (_, ks, ds), (_, kc, dc) = results[2 * k], results[2 * k + 1]
        der = vector(e["file"])
        if ks != kc:
            wrong.append((e["file"], "spki_sha256 and cert_sha256 disagree: %s vs %s" % (ks, kc)))
        if ks == "ok":
            if e["expect"] == "refuse":
                wrong.append((e["file"], "hashed a certificate that must be refused"))
            elif ds != e["spki_sha256"]:
                wrong.append((e["file"], "hashed %s, the TLS stack reads %s" % (ds, e["spki_sha256"])))
            elif dc != hashlib.sha256(der).hexdigest():
                wrong.append((e["file"], "cert_sha256 wrong"))
        elif ks == "refused":
            if e["expect"] == "hash":
                wrong.append((e["file"], "refused a valid certificate (%s)" % ds))
        else:
            wrong.append((e["file"], ks + " " + ds))
    assert wrong == []


HIDDEN = [
    "hidden-spki-in-extension",
    "hidden-spki-in-subject",
    "hidden-spki-in-issuer",
    "hidden-spki-in-subject-unique-id",
    "hidden-spki-in-serial",
]


@pytest.fixture(scope="module")
def hidden_servers(tmp_path_factory):
    """name -> TLSServer serving that vector (real key) as its leaf."""
    d = str(tmp_path_factory.mktemp("hidden"))
    keys = make_vectors.Keys()
    key_path = os.path.join(d, "real.key.pem")
    with open(key_path, "wb") as f:
        f.write(keys.real.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    vectors = make_vectors.build(keys)
    started = {}
    for name in HIDDEN:
        der = vectors[name][0]
        assert der == vector(name + ".der")
        pem = b"-----BEGIN CERTIFICATE-----\n" + __import__("base64").encodebytes(der) + b"-----END CERTIFICATE-----\n"
        chain = os.path.join(d, name + ".pem")
        with open(chain, "wb") as f:
            f.write(pem)
        started[name] = TLSServer(chain, key_path, name=name).start()
    yield started, keys
    for s in started.values():
        s.stop()


@pytest.mark.parametrize("name", HIDDEN)
def test_hidden_genuine_spki_in_handshake_is_refused(runtime, hidden_servers, name, tmp_path):
    servers, keys = hidden_servers
    s = servers[name]
    genuine = corpus.pin(hashlib.sha256(make_vectors.spki(keys.genuine)).digest())
    real = corpus.pin(hashlib.sha256(make_vectors.spki(keys.real)).digest())
    # Control: the TLS stack accepts this certificate (pinned to its real key).
    # Exception: mbedTLS expects unique IDs with a constructed tag (0xA2) and
    # refuses the primitive [2] that RFC 5280 and OpenSSL use.
    out = run_client(runtime, tmp_path, s.port, [real])
    if (runtime.name, name) == ("micropython", "hidden-spki-in-subject-unique-id"):
        assert out["ok"] is False and "MBEDTLS_ERR_X509_INVALID_EXTENSIONS" in out["message"], out
    else:
        assert out["ok"], out
    s.received.clear()
    # The attack: the pin is the genuine key the certificate merely mentions.
    out = run_client(runtime, tmp_path, s.port, [genuine])
    assert out["ok"] is False and out["type"] == "PinError", out
    assert real in out["message"] or "MBEDTLS_ERR_X509" in out["message"], out
    assert s.app_bytes == b""
