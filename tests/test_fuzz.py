"""Fuzzing the parsers an attacker (or a power cut) feeds: spki_sha256, check, loads.

Two halves:
- hypothesis under CPython, in-process: inputs derived from real certificates
  and pinsets by bit flips, truncations, insertions, length-byte and tag edits,
  duplicated/dropped elements, plus raw bytes. The only exception allowed out
  is certpin.Error; anything accepted must be what cryptography reads.
- a seeded mutation corpus replayed in ONE process under each runtime
  (tests/device/replay.py): only certpin.Error escapes, no hang (subprocess
  timeout), bounded allocation per call and no heap growth across the run, and
  the MicroPython outcome of every input equals CPython's.

Scale: CERTPIN_FUZZ_SCALE (default 1; `make fuzz` sets 20).
"""
import hashlib
import json
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import certpin
from support import corpus
from support.corpus import SCALE

FUZZ = settings(
    max_examples=150 * SCALE,
    deadline=None,
    derandomize=SCALE == 1,  # CI: reproducible; `make fuzz`: new inputs every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.fixture(scope="module")
def seeds(pki):
    return corpus.seed_certs(pki)


@pytest.fixture(scope="module")
def seed_pinset(pki):
    return corpus.seed_pinset(pki)


def mutations(n_seeds):
    return st.tuples(
        st.integers(0, n_seeds - 1),
        st.lists(st.tuples(st.integers(0, len(corpus.CERT_MUTATIONS) - 1), st.integers(0, 2**32)), min_size=1, max_size=3),
    )


def apply(seeds, plan):
    i, steps = plan
    b = seeds[i]
    for m, s in steps:
        r = random.Random(s)
        b = corpus.CERT_MUTATIONS[m](b, r) if len(b) > 2 else corpus.m_append(b, r)
    return b


def reference_key(der):
    """The SPKI DER cryptography (the 'TLS stack') reads from der, or None if it refuses it."""
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        key = cert.public_key()
    except Exception:
        return None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_hashes_the_real_key(der, d):
    """d (what certpin hashed) must be the key cryptography reads, if it reads one."""
    ref = reference_key(der)
    if ref is None:
        return  # the TLS stack would refuse this certificate: no pin can match anything
    if hashlib.sha256(ref).digest() == d:
        return
    # cryptography re-encodes keys; accept a different encoding of the same key only.
    for off, h, n, _ in corpus.tlv_nodes(der):
        s = der[off : off + h + n]
        if hashlib.sha256(s).digest() == d:
            k = serialization.load_der_public_key(s)
            assert k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == ref
            return
    raise AssertionError("certpin hashed bytes that are not the certificate's key: %s" % der.hex())


def spki_outcome(der):
    """('ok', digest) or ('refused', class name); any other exception propagates (the test fails)."""
    try:
        return "ok", certpin.spki_sha256(der)
    except certpin.Error as e:
        return "refused", type(e).__name__


@FUZZ
@given(plan=st.data())
def test_fuzz_spki_sha256_mutated_certs(seeds, plan):
    der = apply(seeds, plan.draw(mutations(len(seeds))))
    kind, d = spki_outcome(der)
    for form in (bytearray(der), memoryview(der)):
        assert spki_outcome(form) == (kind, d)
    try:
        c = certpin.cert_sha256(der)
        assert kind == "ok" and c == hashlib.sha256(der).digest()
    except certpin.Error:
        assert kind == "refused"
    if kind == "ok":
        assert len(d) == 32
        assert_hashes_the_real_key(der, d)


@FUZZ
@given(der=st.binary(max_size=600) | st.builds(lambda h, t: h + t, st.sampled_from([b"0\x82", b"0\x81", b"0\x80", b"0\x84", b"\x30\x03\x30\x01"]), st.binary(max_size=40)))
def test_fuzz_spki_sha256_raw_bytes(der):
    kind, d = spki_outcome(der)
    if kind == "ok":
        assert_hashes_the_real_key(der, d)


@FUZZ
@given(plan=st.data(), verified=st.booleans())
def test_fuzz_check_mutated_leaf(seeds, seed_pinset, pki, plan, verified):
    ps = certpin.loads(seed_pinset)
    der = apply(seeds, plan.draw(mutations(len(seeds))))
    chain = [der, pki.intermediate_der] if verified else [der]
    try:
        got = certpin.check(ps, "localhost", chain, verified=verified)
    except certpin.PinError:
        return
    # Only the genuine leaf's key (sha256/) or the genuine certificate itself (cert-sha256/) may match.
    if got.startswith("cert-sha256/"):
        assert der == pki.genuine.der
    else:
        d = certpin.spki_sha256(der)
        assert corpus.pin(d) == pki.genuine.pin == got
        assert_hashes_the_real_key(der, d)


@FUZZ
@given(seed=st.integers(0, 2**32), extra=st.binary(max_size=8))
def test_fuzz_loads_mutated_pinsets(seed_pinset, seed, extra):
    r = random.Random(seed)
    text = corpus.mutate_text(seed_pinset, r)
    if extra:
        i = r.randrange(len(text) + 1)
        text = text[:i] + extra + text[i:]
    check_loads(text)


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["format", "hosts", "pins", "serial", "expires", "subdomains", "report_only", "localhost", "a.b"]), c, max_size=4),
    max_leaves=20).map(json.dumps))
def test_fuzz_loads_json_shapes(text):
    check_loads(text)
    check_loads(text.encode("utf-8"))


def check_loads(text):
    try:
        ps = certpin.loads(text)
    except certpin.PinsetError:
        return
    # Accepted: it must be exactly the JSON's content (never a partial pinset).
    d = json.loads(text)
    assert d["format"] == 1 and type(d["format"]) is int
    assert ps.hosts() == sorted(d["hosts"])
    for h, e in d["hosts"].items():
        assert ps.pins(h) == e["pins"]


# ---------------------------------------------------------------- device corpus


def build_corpus(pki, seeds, seed_pinset, rnd):
    """(op, bytes) cases: mutated certificates for spki/cert/check, mutated pinsets for loads."""
    cases = []
    n_cert = 1200 * SCALE
    for i in range(n_cert):
        der = seeds[i % len(seeds)]
        if i % 97 == 0:
            m = der  # the unmutated seeds: proves the replay also accepts
        else:
            m = corpus.mutate_cert(der, rnd)
        cases.append(("sck"[i % 3], m))
    for i in range(400 * SCALE):
        cases.append(("l", corpus.mutate_text(seed_pinset, rnd)))
    rnd.shuffle(cases)
    return cases


def in_process_outcome(op, data, ps):
    try:
        if op == "s":
            return "ok", certpin.spki_sha256(data).hex()
        if op == "c":
            return "ok", certpin.cert_sha256(data).hex()
        if op == "l":
            certpin.loads(data)
            return "ok", "-"
        if op == "k":
            try:
                certpin.check(ps, "localhost", [data])
            except certpin.PinError:
                pass
            return "ok", certpin.check(ps, "localhost", [data, data], verified=True).encode().hex()
    except certpin.Error as e:
        return "refused", type(e).__name__


def test_fuzz_corpus_replay(runtime, pki, seeds, seed_pinset, tmp_path):
    rnd = random.Random(5 if SCALE == 1 else None)
    cases = build_corpus(pki, seeds, seed_pinset, rnd)
    path = str(tmp_path / "corpus.txt")
    corpus.write_corpus(path, cases, pinset_text=seed_pinset)
    summary, results = corpus.replay(runtime, path, verbose=True, timeout=120 * SCALE)
    print("\n%s corpus: %s" % (runtime, json.dumps(summary)))
    assert summary["tried"] == len(cases)
    assert summary["crashes"] == [], summary["crashes"]
    assert summary["ok"] + summary["refused"] == len(cases)
    assert summary["ok"] > 0 and summary["refused"] > 0
    # Same verdict and digest as CPython in-process for every input (parity of the two runtimes).
    ps = certpin.loads(seed_pinset)
    assert len(results) == len(cases)
    for (n, kind, detail), (op, data) in zip(results, cases):
        assert (kind, detail) == in_process_outcome(op, data, ps), (n, op, data.hex())
    if runtime.name == "micropython":
        # Bounded allocation: a refusal builds one message; a success allocates
        # the hash object, a memoryview slice and a digest (<= 256 bytes, issue 2).
        # check() on a mismatch imports the failure-text module (certpin._report,
        # dropped again right after, by design: ~14 KB transient on the unix
        # port) and formats the message; bounded, and independent of the input.
        ma = summary["max_alloc"]
        assert ma["s"] <= 1024 and ma["c"] <= 1024 and ma["k"] <= 24576, ma
        # No heap growth across the run (everything is garbage after each case).
        drift = summary["mem_end"] - summary["mem_warm"]
        print("%s heap in use after warm-up %d, at end %d, drift %+d bytes" % (
            runtime, summary["mem_warm"], summary["mem_end"], drift))
        assert drift <= 2048, summary
