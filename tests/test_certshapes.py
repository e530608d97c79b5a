"""Every certificate-reading command over the certificate-shape corpus (tests/support/certshapes.py).

The oracle is the generator itself: Shape.spki is the exact SubjectPublicKeyInfo
placed in the certificate, so the one right pin is sha256(spki), whatever any
parser thinks. Checked here:
  - the device library (both runtimes, one process each) hashes exactly that,
    or refuses the shapes its strict walk refuses;
  - `certpin pin` prints exactly that for every shape, as a DER file, a PEM
    file, in a PEM chain, in PKCS#7 (DER and PEM, ours and cryptography's where
    it can build one), and from a live TLS server; never a traceback, exit 0
    (pins printed) or 2 (no key can be found);
  - fields cryptography cannot decode are null in --json with the reason, and
    a re-encoding that differs is reported (checked against the real openssl
    pipeline when openssl is installed);
  - `pinset new/add --key`, `pinset from-server` and `verify` use that pin and
    refuse (or report) what a device cannot check;
  - a real device client (CPython and the unix port) accepts the printed pin.
The corpus is generated at test time (deterministic; nothing committed).
"""
import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import socket
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import certpin
from support import certshapes, corpus
from support.cli import run, run_subprocess
from support.scenario import run_client
from support.servers import TLSServer

# pytest resets warning filters per test: the CLI's own filter of cryptography's serial-number warning
# (certpin_host/pins.py) is checked by the subprocess test instead.
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = certshapes.build()
UNREADABLE = certshapes.unreadable()
SPARE = "sha256/" + base64.b64encode(b"\x07" * 32).decode()
CERT_FIELDS = ("subject", "issuer", "not_before", "not_after", "is_ca")
OK_RSA = SHAPES["ok-rsa-2048"].pin
OK_EC = SHAPES["ok-ec-p256"].pin

# What tools that re-encode the key print: (cryptography, the openssl pipeline); None = the certificate's own.
REENCODED = {
    "rsa-no-null-params": (OK_RSA, OK_RSA),
    "rsa-params-not-null": (OK_RSA, OK_RSA),
    "rsa-modulus-leading-zero": (OK_RSA, OK_RSA),
    "rsa-key-nonminimal-length": (OK_RSA, OK_RSA),
    "rsa-pss-key": (OK_RSA, None),
    "ec-explicit-params": (OK_EC, None),
    "ec-compressed-point": (OK_EC, None),
    "spki-oid-nonminimal-length": (OK_EC, OK_EC),
    "spki-nonminimal-length": (OK_EC, OK_EC),
    "spki-algorithm-nonminimal-length": (OK_EC, OK_EC),
    "spki-bitstring-nonminimal-length": (OK_EC, OK_EC),
}
# The fields the issue names as ones cryptography cannot decode (anchors; every other shape is checked for
# consistency only, so a more lenient cryptography release does not break the suite).
UNREADABLE_ANCHORS = {
    "subject-invalid-utf8": {"subject"},
    "subject-empty-rdn": {"subject"},
    "subject-duplicate-attribute-in-rdn": {"subject"},
    "issuer-invalid-utf8": {"issuer"},
    "ext-duplicate-san": {"is_ca"},
    "ext-basic-constraints-pathlen-overflow": {"is_ca"},
    "ext-policy-bad-cps-qualifier": {"is_ca"},
    "ext-name-constraints-bad-ip": {"is_ca"},
    "validity-year-0": {"not_before"},
    "version-4": set(CERT_FIELDS),
    "unknown-key-algorithm": {"key"},
}
# OpenSSL re-encodes the outer Certificate SEQUENCE when it sends a certificate: a server loaded with these
# sends DER, which a device reads.
OPENSSL_SENDS_REENCODED = {"certificate-nonminimal-length", "certificate-indefinite-length"}


def pin_of(digest):
    return "sha256/" + base64.b64encode(digest).decode()


def cert_pin(der):
    return "cert-sha256/" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def device_error(der):
    """The device library's refusal of der (None when it hashes it)."""
    try:
        certpin.spki_sha256(der)
    except certpin.Error as e:
        return str(e)
    return None


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def pem_block(label, der):
    b = base64.encodebytes(der).decode()
    return ("-----BEGIN %s-----\n%s-----END %s-----\n" % (label, b, label)).encode()


def _cryptography_p7(der, ca_der):
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        certs = [x509.load_der_x509_certificate(d) for d in (der, ca_der)]
        return pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    except Exception:  # cryptography cannot parse or re-serialise this one: no such form
        return None


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> [(form, path, the certificate bytes the file holds)]; plus "ca", "backup" paths."""
    d = tmp_path_factory.mktemp("shapes")
    ca_der, ca_pem = certshapes.ca()
    out = {"ca": write(d / "ca.pem", ca_pem), "dir": str(d)}
    backup = certshapes._rsa(1024, 7)  # any key that is not in use
    out["backup"] = write(d / "backup.pem", certshapes.key_pem(backup))
    out["backup_pin"] = pin_of(hashlib.sha256(certshapes.spki_der(backup)).digest())
    for name, s in SHAPES.items():
        first = corpus.children(s.der)[0] if name == "certificate-trailing-data" else s.der
        forms = [
            ("der", write(d / (name + ".der"), s.der), s.der),
            ("pem", write(d / (name + ".pem"), certshapes.pem(s.der)), s.der),
            ("chain", write(d / (name + ".chain.pem"), certshapes.pem(s.der) + ca_pem), s.der),
            # In PKCS#7 a certificate is one element of a SET: bytes after it are not part of it.
            ("p7b", write(d / (name + ".p7b"), certshapes.pkcs7([s.der, ca_der])), first),
            ("p7b-pem", write(d / (name + ".p7b.pem"), pem_block("PKCS7", certshapes.pkcs7([s.der, ca_der]))), first),
        ]
        p7 = _cryptography_p7(s.der, ca_der)
        if p7 is not None:
            forms.append(("cryptography-p7b", write(d / (name + ".c.p7b"), p7), s.der))
        if s.key is not None:
            write(d / (name + ".key.pem"), certshapes.key_pem(s.key))
        out[name] = forms
    return out


# ---------------------------------------------------------------- the device library, both runtimes


def test_corpus_is_deterministic():
    again = certshapes.build()
    assert {n: s.der for n, s in again.items()} == {n: s.der for n, s in SHAPES.items()}
    assert len(SHAPES) >= 60


def test_device_library_hashes_the_exact_spki_on_runtime(runtime, tmp_path):
    names = sorted(SHAPES)
    cases = []
    for n in names:
        cases += [("s", SHAPES[n].der), ("c", SHAPES[n].der)]
    for n in sorted(UNREADABLE):
        cases += [("s", UNREADABLE[n])]
    path = str(tmp_path / "shapes.txt")
    corpus.write_corpus(path, cases)
    summary, results = corpus.replay(runtime, path, verbose=True)
    assert summary["crashes"] == [], summary["crashes"]
    wrong = []
    for k, n in enumerate(names):
        s = SHAPES[n]
        (_, ks, ds), (_, kc, dc) = results[2 * k], results[2 * k + 1]
        if s.device == "hash":
            if (ks, kc) != ("ok", "ok") or ds != hashlib.sha256(s.spki).hexdigest() or \
                    dc != hashlib.sha256(s.der).hexdigest():
                wrong.append((n, ks, ds, kc))
        elif (ks, kc) != ("refused", "refused"):
            wrong.append((n, "must be refused", ks, kc))
    for k, n in enumerate(sorted(UNREADABLE)):
        if results[2 * len(names) + k][1] != "refused":
            wrong.append((n, "unreadable must be refused", results[2 * len(names) + k]))
    assert wrong == []


# ---------------------------------------------------------------- files


def check_item(name, it, der):
    """One certificate item of `certpin pin --json` for shape `name` held as `der`."""
    s = SHAPES[name]
    assert it["kind"] == "certificate"
    assert it["spki_sha256"] == s.pin, (name, it)
    assert it["cert_sha256"] == cert_pin(der), name
    assert it["device_error"] == device_error(der), name
    if it["device_error"] is None:
        assert it["spki_sha256"] == pin_of(certpin.spki_sha256(der))
    want = REENCODED.get(name, (None, None))
    assert (it["reencoded_spki_sha256"], it["openssl_spki_sha256"]) == want, name
    for f in CERT_FIELDS + ("key",):
        if f in it["unreadable"]:
            assert it["unreadable"][f] and (f == "key" or it[f] is None), (name, f, it)
        elif f in ("subject", "issuer", "is_ca"):
            assert it[f] is not None, (name, f, it)
    for f in ("not_before", "not_after"):
        assert (it[f] is None) == (f in it["unreadable"]), (name, f, it)
    assert UNREADABLE_ANCHORS.get(name, set()) <= set(it["unreadable"]), (name, it["unreadable"])
    if it["device_error"]:
        assert any("a device cannot check this certificate" in w for w in it["warnings"])
    if it["reencoded_spki_sha256"] or it["openssl_spki_sha256"]:
        assert any("re-encode" in w for w in it["warnings"])
    assert bool(it["warnings"]) == bool(it["device_error"] or it["reencoded_spki_sha256"]
                                        or it["openssl_spki_sha256"] or it["unreadable"]), (name, it)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_pin_prints_the_device_pin_for_every_file_form(name, files, capsys):
    for form, path, der in files[name]:
        r = run(capsys, "pin", path, "--json")
        assert r.status == 0 and "Traceback" not in r.err, (form, r)
        items = r.json()
        mine = [it for it in items if it["cert_sha256"] == cert_pin(der)]
        assert len(mine) == 1, (form, items)
        check_item(name, mine[0], der)
        assert len(items) == (1 if form in ("der", "pem") else 2), form
        for w in mine[0]["warnings"]:
            assert "certpin: pin: WARNING: %s depth %d: %s" % (path, mine[0]["depth"], w) in r.err
        t = run(capsys, "pin", path)
        assert t.status == 0 and "Traceback" not in t.err, (form, t)
        assert SHAPES[name].pin in t.out and t.err == r.err, (form, t)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_pinset_new_and_add_with_key_use_the_device_pin(name, files, capsys, tmp_path):
    s = SHAPES[name]
    _, der_path, _ = files[name][0]
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "new", path, "localhost", "--key", der_path, "--pin", SPARE)
    assert r.status == 0 and "Traceback" not in r.err, r
    assert json.load(open(path))["hosts"]["localhost"]["pins"] == [SPARE, s.pin]
    if s.device == "refuse":
        assert "certpin: pinset: WARNING: --key %s depth 0: a device cannot check" % der_path in r.err, r
    r = run(capsys, "pinset", "add", path, "example.com", "--key", files[name][1][1], "--pin", SPARE)
    assert r.status == 0, r
    assert json.load(open(path))["hosts"]["example.com"]["pins"] == [SPARE, s.pin]


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_a_certificate_without_a_findable_key_is_a_clean_error(name, capsys, tmp_path):
    der = UNREADABLE[name]
    paths = [write(tmp_path / (name + ".der"), der), write(tmp_path / (name + ".pem"), certshapes.pem(der)),
             write(tmp_path / (name + ".p7b"), certshapes.pkcs7([der]))]
    for path in paths:
        r = run(capsys, "pin", path)
        assert r.status == 2 and r.err.startswith("certpin: pin: %s: " % path), r
        assert "Traceback" not in r.err and r.out == ""
        r = run(capsys, "pinset", "new", str(tmp_path / "p.json"), "localhost", "--key", path, "--pin", SPARE)
        assert r.status == 2 and r.err.startswith("certpin: pinset: "), r


def test_pin_subprocess_over_the_whole_corpus(files):
    """The real command line (no in-process shortcut): every shape at once, every form."""
    paths = [p for n in sorted(SHAPES) for _, p, _ in files[n]]
    r = run_subprocess("pin", "--json", *paths, timeout=120)
    assert r.status == 0 and "Traceback" not in r.err and "DeprecationWarning" not in r.err, r
    got = [it["spki_sha256"] for it in json.loads(r.out) if it["cert_sha256"] != cert_pin(certshapes.ca()[0])]
    want = [SHAPES[n].pin for n in sorted(SHAPES) for _ in files[n]]
    assert got == want
    for name, der in sorted(UNREADABLE.items()):
        path = write(os.path.join(files["dir"], "unreadable-" + name + ".der"), der)
        r = run_subprocess("pin", path)
        assert r.status == 2 and r.err.startswith("certpin: pin: ") and "Traceback" not in r.err, r


def test_parser_vectors_through_the_host_tool(capsys):
    """The device library's parser vectors (tests/vectors/der): the host prints the device's pin, or says why not."""
    vdir = os.path.join(HERE, "vectors", "der")
    for name in sorted(os.listdir(vdir)):
        if not name.endswith(".der"):
            continue
        path = os.path.join(vdir, name)
        der = open(path, "rb").read()
        r = run(capsys, "pin", path, "--json")
        assert r.status in (0, 2) and "Traceback" not in r.err, (name, r)
        if r.status == 2:
            assert r.err.startswith("certpin: pin: "), (name, r)
            continue
        (it,) = r.json()
        try:
            assert it["spki_sha256"] == pin_of(certpin.spki_sha256(der)) and it["device_error"] is None, name
        except certpin.Error as e:
            assert it["device_error"] == str(e), name


def _openssl_pipeline(path):
    """What `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256` prints (None: it fails)."""
    p1 = subprocess.run(["openssl", "x509", "-inform", "der", "-in", path, "-pubkey", "-noout"], capture_output=True)
    p2 = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=p1.stdout, capture_output=True)
    return None if p1.returncode or p2.returncode else pin_of(hashlib.sha256(p2.stdout).digest())


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl command")
def test_openssl_pipeline_prints_what_the_tool_says(files, capsys):
    """openssl_spki_sha256 (null: the certificate's own pin) is what the pipeline in the docs prints."""
    names = sorted(SHAPES)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        printed = dict(zip(names, pool.map(_openssl_pipeline, [files[n][0][1] for n in names])))
    checked = 0
    for name in names:
        (it,) = run(capsys, "pin", files[name][0][1], "--json").json()
        if printed[name] is None or it["reencoded_spki_sha256"] is None and "key" in it["unreadable"]:
            continue  # openssl cannot read it, or the tool makes no claim (it cannot decode the key either)
        assert printed[name] == (it["openssl_spki_sha256"] or it["spki_sha256"]), name
        checked += 1
    assert checked >= 40


# ---------------------------------------------------------------- live servers


@pytest.fixture(scope="module")
def live(files):
    """name -> a started TLSServer serving shape + CA, or the reason OpenSSL refuses to serve it."""
    out = {}
    for name, s in SHAPES.items():
        if s.key is None:
            out[name] = "no TLS stack can use this key"
            continue
        try:
            out[name] = TLSServer(files[name][2][1], os.path.join(files["dir"], name + ".key.pem"),
                                  name=name).start()
        except Exception as e:  # ssl.SSLError: OpenSSL will not load this certificate
            out[name] = "OpenSSL refuses to load it: %s" % e
    yield out
    with concurrent.futures.ThreadPoolExecutor(16) as pool:  # each stop waits for its accept loop to notice
        list(pool.map(TLSServer.stop, [v for v in out.values() if isinstance(v, TLSServer)]))


def test_the_issue_shapes_are_served(live):
    for name in ("rsa-no-null-params", "ec-explicit-params", "ec-compressed-point", "spki-oid-nonminimal-length",
                 "version-4", "spki-nonminimal-length", "validity-year-0", "ext-policy-bad-cps-qualifier",
                 "subject-empty-rdn", "ext-basic-constraints-pathlen-overflow", "ext-name-constraints-bad-ip"):
        assert isinstance(live[name], TLSServer), (name, live[name])


def _pinset(tmp_path, pins, name="pins.json"):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        json.dump({"format": 1, "serial": 1, "hosts": {"localhost": {"pins": pins}}}, f)
    return path


@pytest.mark.parametrize("name", sorted(n for n, s in SHAPES.items() if s.key is not None))
def test_live_server_commands(name, live, files, capsys, tmp_path):
    s = live[name]
    if not isinstance(s, TLSServer):
        print("%s: not served: %s" % (name, s))
        return
    shape = SHAPES[name]
    ca = files["ca"]
    where = "localhost:%d" % s.port
    # certpin pin HOST
    r = run(capsys, "pin", where, "--cafile", ca, "--json")
    verified = r.status == 0
    if not verified:
        assert r.status == 2 and "did not verify" in r.err and "Traceback" not in r.err, r
        r = run(capsys, "pin", where, "--cafile", ca, "--json", "--insecure")
    assert r.status == 0 and "Traceback" not in r.err, r
    leaf = r.json()[0]
    if leaf["cert_sha256"] == cert_pin(shape.der):
        check_item(name, leaf, shape.der)
    else:
        assert name in OPENSSL_SENDS_REENCODED, (name, leaf)
        assert leaf["spki_sha256"] == shape.pin and leaf["device_error"] is None
    device_can = leaf["device_error"] is None
    t = run(capsys, "pin", where, "--cafile", ca, *([] if verified else ["--insecure"]))
    assert t.status == 0 and shape.pin in t.out.splitlines()[1], t
    # certpin pinset from-server
    out = str(tmp_path / "from-server.json")
    r = run(capsys, "pinset", "from-server", out, where, "--cafile", ca, "--backup", files["backup"])
    assert "Traceback" not in r.err
    if not verified:
        assert r.status == 2 and "did not verify" in r.err, r
    elif not device_can:
        assert r.status == 2 and "a device cannot check the certificate the server sends" in r.err, r
        assert shape.pin in r.err and not os.path.exists(out)
    else:
        assert r.status == 0, r
        assert json.load(open(out))["hosts"]["localhost"]["pins"] == [shape.pin, files["backup_pin"]]
    # certpin verify: the printed pin is accepted exactly when a device can check the certificate
    r = run(capsys, "verify", _pinset(tmp_path, [shape.pin, SPARE]), "--cafile", ca,
            "--connect-to", "::127.0.0.1:%d" % s.port, "--json")
    assert r.status == (0 if device_can else 1) and "Traceback" not in r.err, r
    (h,) = r.json()["hosts"]
    assert h["status"] == ("accepted" if device_can else "refused"), h
    assert h["chain"][0]["spki_sha256"] == shape.pin
    if not device_can:
        assert "cannot be checked" in h["error"] and leaf["device_error"] in h["error"], h
    # ... and a pin another tool printed by re-encoding the key is refused, and says why
    others = [p for p in (leaf["reencoded_spki_sha256"], leaf["openssl_spki_sha256"]) if p]
    if others and device_can:
        r = run(capsys, "verify", _pinset(tmp_path, others + [SPARE], "other.json"), "--cafile", ca,
                "--connect-to", "::127.0.0.1:%d" % s.port)
        assert r.status == 1 and "REFUSED" in r.out, r
        assert "as tools that re-encode it print it" in r.out and shape.pin in r.out, r


@pytest.mark.parametrize("runtime", ["micropython"], indirect=True)
def test_live_device_client_accepts_the_printed_pin_on_runtime(runtime, live, tmp_path, capsys):
    """A real device client given the pin `certpin pin` printed: it matches, or the device's TLS stack refuses
    the certificate or the handshake itself (mbedTLS is stricter than certpin's walk for some shapes): never
    a pin mismatch. The unix port only: on CPython the device library checks the chain OpenSSL received,
    which `certpin verify` above already runs through certpin.check for every shape."""
    leaves = {}
    for name in sorted(live):
        if isinstance(live[name], TLSServer):
            (leaves[name],) = [it for it in run(capsys, "pin", "localhost:%d" % live[name].port, "--insecure",
                                                "--json").json() if it["depth"] == 0]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # one unix-port process per handshake
        outs = dict(zip(leaves, pool.map(
            lambda n: run_client(runtime, tmp_path, live[n].port, [leaves[n]["spki_sha256"], SPARE], name=n),
            leaves)))
    table = []
    for name, leaf in leaves.items():
        out = outs[name]
        table.append((name, out["ok"], out.get("type"), out.get("message", "")[:100]))
        if leaf["device_error"]:
            assert not out["ok"], (name, out)
        else:
            # mbedTLS may refuse the certificate (explicit EC parameters, a bad SAN, ...) or the handshake
            # (OpenSSL will not use a compressed-point key with a client that does not offer that point
            # format): the TLS stack's refusal, never certpin's.
            assert out["ok"] or "cannot be checked" not in out["message"], (name, out)
        assert "no configured pin matched" not in out.get("message", ""), (name, out)
    print("\n%s device client:\n%s" % (runtime, "\n".join("  %-40s %s %s %r" % row for row in table)))


# ---------------------------------------------------------------- shapes only mbedTLS will serve


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mbedtls_live(live, files, micropython):
    """name -> port of a unix-port (mbedTLS) server for each shape OpenSSL refused to serve, or the reason
    mbedTLS refuses too."""
    out = {}
    procs = []
    for name, s in sorted(SHAPES.items()):
        if isinstance(live[name], TLSServer) or s.key is None:
            continue
        d = files["dir"]
        key = write(os.path.join(d, name + ".key.der"), s.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        port = _free_port()
        p = subprocess.Popen([micropython, os.path.join(HERE, "device", "tls_server.py"), files[name][0][1], key,
                              str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        line = p.stdout.readline().strip()
        out[name] = port if line == "ready" else "mbedTLS refuses to load it too: %s" % (line + p.stdout.read())[:200]
    yield out
    for p in procs:
        p.kill()
        p.wait()


def test_shapes_openssl_will_not_serve_are_served_by_mbedtls(mbedtls_live):
    served = {n for n, v in mbedtls_live.items() if isinstance(v, int)}
    assert {"subject-invalid-utf8", "issuer-invalid-utf8", "serial-nonminimal"} <= served, mbedtls_live


def test_host_commands_against_mbedtls_servers(mbedtls_live, files, capsys, tmp_path):
    """The host's own TLS stack (OpenSSL) may refuse such a server's certificate: a clean error naming the
    cause, never a traceback; where it reads the chain, the pin is the device's."""
    for name, port in sorted(mbedtls_live.items()):
        if not isinstance(port, int):
            print("%s: not served: %s" % (name, port))
            continue
        shape = SHAPES[name]
        where = "localhost:%d" % port
        r = run(capsys, "pin", where, "--insecure", "--json")
        assert r.status in (0, 2) and "Traceback" not in r.err, (name, r)
        fetched = r.status == 0
        if fetched:
            leaf = r.json()[0]
            sent = corpus.children(shape.der)[0]  # mbedTLS sends the certificate it parsed, not what followed it
            assert leaf["cert_sha256"] == cert_pin(sent), (name, leaf)
            assert leaf["spki_sha256"] == shape.pin and leaf["device_error"] == device_error(sent), (name, leaf)
        else:
            assert r.err.startswith("certpin: pin: TLS handshake with localhost port %d failed: " % port), r
            assert "cannot parse a certificate the server sent" in r.err or "HANDSHAKE_FAILURE" in r.err, r
        out = str(tmp_path / (name + ".json"))
        r = run(capsys, "pinset", "from-server", out, where, "--cafile", files["ca"], "--backup", files["backup"])
        assert r.status in (0, 2) and "Traceback" not in r.err, (name, r)
        if r.status == 0:
            assert fetched and json.load(open(out))["hosts"]["localhost"]["pins"] == [shape.pin, files["backup_pin"]]
        else:
            assert r.err.startswith("certpin: pinset: "), (name, r)
        r = run(capsys, "verify", _pinset(tmp_path, [shape.pin, SPARE]), "--cafile", files["ca"],
                "--connect-to", "::127.0.0.1:%d" % port)
        assert r.status in (0, 1) and "Traceback" not in r.err, (name, r)


@pytest.mark.parametrize("runtime", ["micropython"], indirect=True)
def test_device_client_against_mbedtls_servers(runtime, mbedtls_live, tmp_path):
    """The pin `certpin pin FILE` prints for these certificates is the one a device computes from the wire."""
    table = []
    for name, port in sorted(mbedtls_live.items()):
        if not isinstance(port, int):
            continue
        out = run_client(runtime, tmp_path, port, [SHAPES[name].pin, SPARE])
        table.append((name, out["ok"], out.get("type"), out.get("message", "")[:100]))
        assert "no configured pin matched" not in out.get("message", ""), (name, out)
        assert "cannot be checked" not in out.get("message", ""), (name, out)
    assert any(ok for _, ok, _, _ in table), table
    print("\n%s device client, mbedTLS servers:\n%s" % (runtime, "\n".join("  %-40s %s %s %r" % row for row in table)))


# ---------------------------------------------------------------- the host's lenient reader


def test_ber_pkcs7_with_indefinite_lengths(capsys, tmp_path):
    """Some tools write PKCS#7 in BER with indefinite lengths: the certificates inside are still the exact bytes."""
    s = SHAPES["rsa-no-null-params"]

    def indef(tag, content):
        return bytes([tag, 0x80]) + content + b"\x00\x00"

    signed = indef(0x30, certshapes.integer(1) + b"\x31\x00" + indef(0x30, bytes.fromhex("06092a864886f70d010701"))
                   + indef(0xA0, s.der + certshapes.ca()[0]) + b"\x31\x00")
    p7 = indef(0x30, bytes.fromhex("06092a864886f70d010702") + indef(0xA0, signed))
    r = run(capsys, "pin", write(tmp_path / "ber.p7b", p7), "--json")
    assert r.status == 0, r
    assert [it["cert_sha256"] for it in r.json()] == [cert_pin(s.der), cert_pin(certshapes.ca()[0])]
    assert r.json()[0]["spki_sha256"] == s.pin


def test_lenient_reader_never_recurses_without_bound():
    from certpin_host import der

    deep = b"\x30\x80" * 5000 + b"\x00\x00" * 5000
    with pytest.raises(der.DERError):
        der.locate_spki(deep)
    with pytest.raises(der.DERError):
        der.pkcs7_certificates(b"\x30\x80" * 5000)
    assert der.first_element(SHAPES["certificate-trailing-data"].der) == corpus.children(
        SHAPES["certificate-trailing-data"].der)[0]


def test_trusted_certificate_and_pkcs7_without_certificates(capsys, tmp_path):
    s = SHAPES["ec-compressed-point"]
    trusted = pem_block("TRUSTED CERTIFICATE", s.der + bytes.fromhex("300a300806062b0601050507"))
    r = run(capsys, "pin", write(tmp_path / "t.pem", trusted), "--json")
    assert r.status == 0 and r.json()[0]["spki_sha256"] == s.pin, r
    assert r.json()[0]["reencoded_spki_sha256"] == OK_EC
    r = run(capsys, "pin", write(tmp_path / "empty.p7b", certshapes.pkcs7([])))
    assert r.status == 2 and "a PKCS#7 bundle with no certificate in it" in r.err and "Traceback" not in r.err, r


def test_der_csr_with_a_key_cryptography_cannot_load_is_a_clean_error(capsys, tmp_path):
    # A CSR whose key algorithm is unknown: cryptography loads the CSR and refuses the key
    # (UnsupportedAlgorithm, not a ValueError).
    info = corpus.tlv(0x30, certshapes.integer(0) + certshapes.name(certshapes.cn("x")) +
                      SHAPES["unknown-key-algorithm"].spki + b"\xa0\x00")
    csr = corpus.tlv(0x30, info + certshapes.SIGALG + corpus.tlv(0x03, b"\x00\x30\x06\x02\x01\x01\x02\x01\x01"))
    r = run(capsys, "pin", write(tmp_path / "x.csr", csr))
    assert r.status == 2 and r.err.startswith("certpin: pin: ") and "Traceback" not in r.err, r
