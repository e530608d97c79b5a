"""TLS attack matrix on the MicroPython unix port AND CPython (the `runtime` fixture).

Complements tests/test_device_tls.py (matching, rogue CA, attacker with the
genuine intermediate, deferred, report-only, expiry) with the hostile cases:
a server that speaks first against a deferred read-before-write client;
expired pinsets and an unset clock combined with attackers; host spelling
tricks; a long chain and a very large certificate; a server with no
certificate; peers that close or babble mid-handshake. Every refusal must be
a certpin.Error or an OSError (never another exception type, never a hang),
and no application byte may reach an unmatched peer or come back from it.
"""
import base64
import hashlib
import json
import os
import time

import pytest

from support import attack_servers as hostile
from support.pki import spki_pin
from support.scenario import fresh, pinset_text
from support.servers import TLSServer

BOGUS = "sha256/" + base64.b64encode(hashlib.sha256(b"no such key").digest()).decode()


def client(runtime, tmp_path, port, pins=None, text=None, host="localhost", proc_timeout=60, **cfg):
    if text is None:
        text = pinset_text({host.lower().rstrip("."): pins})
    c = {"pinset_text": text, "host": host, "port": port, "addr": "127.0.0.1"}
    c.update(cfg)
    if c.get("cadata"):
        c["cadata"] = list(c["cadata"])
    path = os.path.join(str(tmp_path), "cfg-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        json.dump(c, f)
    t0 = time.monotonic()
    p = runtime.run("client.py", path, timeout=proc_timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no result from %s: rc=%s\nstdout=%s\nstderr=%s" % (runtime, p.returncode, p.stdout, p.stderr)
    out = json.loads(lines[-1])
    out["seconds"] = time.monotonic() - t0
    assert out["runtime"] == runtime.name
    return out


def assert_pin_refused(out, *fragments):
    assert out["ok"] is False, out
    assert "PinError" in out["type"], out
    for f in fragments:
        assert f in out["message"], (f, out["message"])


def assert_clean_refusal(out):
    # A certpin.Error or an OSError (ssl.SSLError is one): nothing else.
    assert out["ok"] is False, out
    assert "PinError" in out["type"] or out["type"] == "PinsetError" or out.get("oserror"), out


@pytest.fixture(scope="module")
def srv(pki):
    started = {}

    def add(name, leaf, cls=TLSServer, **kw):
        chain, key = leaf.write(pki.dir)
        started[name] = cls(chain, key, name=name, **kw).start()

    add("genuine", pki.genuine)
    add("rogue", pki.rogue_leaf)
    add("attacker-gi", pki.attacker_with_genuine_intermediate)
    add("banner-rogue", pki.rogue_leaf, cls=hostile.BannerServer)
    add("banner-attacker-gi", pki.attacker_with_genuine_intermediate, cls=hostile.BannerServer)
    add("banner-genuine", pki.genuine, cls=hostile.BannerServer, banner=b"220 genuine ready\r\n")
    yield started
    for s in started.values():
        s.stop()



# ------------------------------------------------------- deferred, server speaks first


@pytest.mark.parametrize("attacker", ["banner-rogue", "banner-attacker-gi"])
@pytest.mark.parametrize("mode", ["deferred_read", "deferred", "asyncio"])
def test_deferred_handshake_server_speaks_first_attacker(runtime, srv, pki, tmp_path, attacker, mode):
    # The attacker writes its banner the moment its handshake completes. A
    # deferred client that reads first must get a PinError, not the banner,
    # and must send nothing.
    s = fresh(srv, attacker)
    out = client(runtime, tmp_path, s.port, [pki.genuine.pin, pki.intermediate_pin], mode=mode)
    assert_pin_refused(out, pki.rogue_leaf.pin)
    assert "attacker ready" not in json.dumps(out)
    assert s.app_bytes == b""


def test_deferred_read_first_genuine_banner_control(runtime, srv, pki, tmp_path):
    out = client(runtime, tmp_path, srv["banner-genuine"].port, [pki.genuine.pin, BOGUS], mode="deferred_read")
    assert out["ok"], out
    assert out["reply"].startswith("220 genuine")


# ------------------------------------------------------- expiry and clock with attackers
# Expiry is judged against the time floor (docs/updates.md), not the clock:
# "expired" here means a floor past `expires` (they used the raw clock before issue 8).
PAST_FLOOR = "2026-02-01"


def test_expired_pinset_without_cadata_attacker_gi_still_refused(runtime, srv, pki, tmp_path):
    # No cadata: an expired pinset keeps enforcing leaf pins; the genuine
    # intermediate the attacker forwards proves nothing.
    s = fresh(srv, "attacker-gi")
    text = pinset_text({"localhost": [pki.intermediate_pin, pki.root_pin]}, expires="2026-01-31")
    out = client(runtime, tmp_path, s.port, text=text, floor=PAST_FLOOR)
    assert_pin_refused(out, pki.rogue_leaf.pin)
    assert [r["reason"] for r in out["failures"]] == ["pinset_expired", "pin_mismatch"]
    assert s.app_bytes == b""


def test_expired_pinset_with_cadata_rogue_not_issued_by_ca_refused(runtime, srv, pki, tmp_path):
    # Expired + cadata falls back to CA validation, which still refuses a
    # certificate the trusted CA did not issue (rogue CA not in cadata).
    for name in ("rogue", "attacker-gi"):
        s = fresh(srv, name)
        text = pinset_text({"localhost": [pki.genuine.pin, BOGUS]}, expires="2026-01-31")
        out = client(runtime, tmp_path, s.port, text=text, cadata=[pki.path("root.der")], floor=PAST_FLOOR)
        assert_pin_refused(out)
        assert out["failures"][0]["reason"] == "pinset_expired"
        assert s.app_bytes == b""


def test_expired_pinset_with_cadata_trusting_rogue_ca_is_ca_only(runtime, srv, pki, tmp_path):
    # The documented trade-off, made visible: once the pinset has expired, a
    # connection with cadata is as strong as its CA list. A rogue CA inside
    # cadata then gets through, and on_failure says the pins were not enforced.
    s = fresh(srv, "rogue")
    text = pinset_text({"localhost": [pki.genuine.pin, BOGUS]}, expires="2026-01-31")
    out = client(runtime, tmp_path, s.port, text=text, cadata=[pki.path("root.der"), pki.path("rogue-root.der")],
                 floor=PAST_FLOOR)
    assert out["ok"], out
    (rec,) = out["failures"]
    assert rec["reason"] == "pinset_expired" and "CA validation only" in rec["message"]
    # ... while the same pinset before its expiry refuses the rogue server.
    text = pinset_text({"localhost": [pki.genuine.pin, BOGUS]}, expires="2099-01-31")
    out = client(runtime, tmp_path, s.port, text=text, cadata=[pki.path("root.der"), pki.path("rogue-root.der")])
    assert_pin_refused(out, pki.rogue_leaf.pin)


@pytest.mark.parametrize("cadata", [False, True])
def test_clock_unset_expired_pinset_still_enforced_no_expiry_report(runtime, srv, pki, tmp_path, cadata):
    # Clock at 2000-01-01 (no NTP yet) with a pinset whose expiry date has
    # passed but no floor past it: not expired, so pins are enforced even with
    # cadata, and no pinset_expired report is made.
    s = fresh(srv, "rogue")
    text = pinset_text({"localhost": [pki.genuine.pin, BOGUS]}, expires="2026-01-31")
    ca = [pki.path("root.der"), pki.path("rogue-root.der")] if cadata else None
    out = client(runtime, tmp_path, s.port, text=text, fake_date=[2000, 1, 1], cadata=ca)
    assert_pin_refused(out, pki.rogue_leaf.pin)
    assert [r["reason"] for r in out["failures"]] == ["pin_mismatch"]
    assert s.app_bytes == b""


# ------------------------------------------------------- host spelling tricks

SPELLINGS = [
    # (pinset hosts -> which pins, subdomains), connect as, expected
    ({"localhost": "genuine"}, "LOCALHOST.", "ok"),
    ({"localhost": "genuine"}, "LocalHost", "ok"),
    ({"localhost": "genuine"}, "localhost..", "unpinned"),
    ({"localhost": "genuine"}, ".localhost", "unpinned"),
    ({"localhost": "genuine"}, "xlocalhost", "unpinned"),
    ({"localhost": "genuine"}, "a.localhost", "unpinned"),
    ({"localhost": "genuine"}, "localhost ", "unpinned"),
    ({"localhost": "genuine+sub"}, "xlocalhost", "unpinned"),
    ({"localhost": "genuine+sub"}, "A.B.LocalHost.", "ok"),
    ({"example.com": "genuine+sub"}, "evilexample.com", "unpinned"),
    ({"example.com": "genuine+sub"}, "example.com.evil.net", "unpinned"),
    ({"example.com": "genuine+sub"}, "API.Example.COM.", "ok"),
    # Most specific wins: api.example.com's own (bogus) pins, not the parent's.
    ({"example.com": "genuine+sub", "api.example.com": "bogus"}, "api.example.com", "mismatch"),
    ({"example.com": "genuine+sub", "api.example.com": "bogus"}, "Api.Example.Com.", "mismatch"),
    # A non-subdomains entry does not cover its subdomains; the nearest parent with subdomains does.
    ({"example.com": "bogus+sub", "api.example.com": "genuine"}, "www.api.example.com", "mismatch"),
    ({"127.0.0.1": "genuine"}, "127.0.0.1", "ok"),
    ({"127.0.0.1": "genuine"}, "0127.0.0.1", "unpinned"),
    ({"127.0.0.1": "genuine"}, "127.0.0.1.nip.io", "unpinned"),
]


@pytest.mark.parametrize("hosts,connect_as,expect", SPELLINGS, ids=[s[1].replace(" ", "_") + "-" + s[2] for s in SPELLINGS])
def test_host_spelling_tricks(runtime, srv, pki, tmp_path, hosts, connect_as, expect):
    entries = {}
    for name, how in hosts.items():
        if how is None:
            continue
        pin = pki.genuine.pin if how.startswith("genuine") else BOGUS
        e = {"pins": [pin, BOGUS if pin != BOGUS else pki.rotated.pin]}
        if how.endswith("+sub"):
            e["subdomains"] = True
        entries[name] = e
    text = json.dumps({"format": 1, "hosts": entries})
    s = srv["genuine"]
    before = s.handshakes
    out = client(runtime, tmp_path, s.port, text=text, host=connect_as)
    if expect == "ok":
        assert out["ok"], out
        assert "hello from genuine" in out["reply"]
    elif expect == "unpinned":
        assert_pin_refused(out, "is not in the pinset")
        assert s.handshakes == before, "an unpinned host got as far as a handshake"
    else:
        assert_pin_refused(out, "no configured pin matched", pki.genuine.pin)


# ------------------------------------------------------- long chain, very large certificate


@pytest.fixture(scope="module")
def big(pki):
    d = pki.dir
    started = {}
    root, chain, key = hostile.long_chain_pki(d, 8)
    started["long"] = hostile.serve_pems(d, "long", chain, key)
    root_der = os.path.join(d, "long-root.der")
    from support.pki import der_of

    with open(root_der, "wb") as f:
        f.write(der_of(root.cert_pem.bytes()))
    leaf_pin = spki_pin(der_of(chain[0]))
    mid_pins = [spki_pin(der_of(c)) for c in chain[1:]]
    # The rogue leaf followed by the same 8 genuine-looking intermediates.
    rogue_chain = [pki.rogue_leaf.chain_pems[0]] + chain[1:]
    started["long-rogue"] = hostile.serve_pems(d, "long-rogue", rogue_chain, pki.rogue_leaf.key_pem)
    sizes = {}
    for kb in (12, 20):
        pems, kpem, der = hostile.big_leaf(pki.intermediate, kb * 1024)
        started["big%d" % kb] = hostile.serve_pems(d, "big%d" % kb, pems, kpem)
        sizes[kb] = (len(der), spki_pin(der))
    pems, kpem, der = hostile.big_leaf(pki.rogue, 12 * 1024)
    started["big-rogue"] = hostile.serve_pems(d, "big-rogue", pems, kpem)
    yield {"servers": started, "leaf_pin": leaf_pin, "mid_pins": mid_pins, "root_der": root_der, "sizes": sizes}
    for s in started.values():
        s.stop()


def test_long_chain_8_intermediates_leaf_pin(runtime, big, tmp_path):
    s = big["servers"]["long"]
    out = client(runtime, tmp_path, s.port, [big["leaf_pin"], BOGUS])
    assert out["ok"], out


def test_long_chain_8_intermediates_with_cadata(runtime, big, tmp_path):
    # 8 intermediates + leaf + root: at mbedTLS's MBEDTLS_X509_MAX_INTERMEDIATE_CA
    # limit. Either the chain validates and an intermediate pin matches, or the
    # stack refuses it cleanly; it must never be accepted on a pin that was not checked.
    s = big["servers"]["long"]
    out = client(runtime, tmp_path, s.port, [big["mid_pins"][3], BOGUS], cadata=[big["root_der"]])
    if not out["ok"]:
        assert_clean_refusal(out)
    print("\n%s: 8-intermediate chain with cadata: %s" % (runtime, "accepted" if out["ok"] else out["message"][:120]))


def test_long_chain_rogue_leaf_with_genuine_intermediates_refused(runtime, big, pki, tmp_path):
    s = big["servers"]["long-rogue"]
    s.received.clear()
    out = client(runtime, tmp_path, s.port, big["mid_pins"] + [BOGUS])
    assert_pin_refused(out, pki.rogue_leaf.pin, "depth 0")
    assert s.app_bytes == b""


def test_large_certificate_12k_extension(runtime, big, tmp_path):
    size, pin = big["sizes"][12]
    assert size > 12 * 1024
    out = client(runtime, tmp_path, big["servers"]["big12"].port, [pin, BOGUS])
    assert out["ok"], out


def test_large_certificate_20k_extension(runtime, big, tmp_path):
    # Larger than mbedTLS's 16 KiB input buffer on the unix port: accepted, or
    # refused with an OSError/PinError; never a hang or another exception.
    size, pin = big["sizes"][20]
    out = client(runtime, tmp_path, big["servers"]["big20"].port, [pin, BOGUS])
    if not out["ok"]:
        assert_clean_refusal(out)
    print("\n%s: %d-byte certificate: %s" % (runtime, size, "accepted" if out["ok"] else out["type"] + " " + out["message"][:100]))


def test_large_rogue_certificate_refused(runtime, big, pki, tmp_path):
    s = big["servers"]["big-rogue"]
    s.received.clear()
    out = client(runtime, tmp_path, s.port, [big["sizes"][12][1], pki.genuine.pin])
    assert_pin_refused(out, "no configured pin matched")
    assert s.app_bytes == b""


# ------------------------------------------------------- no certificate, broken peers


def test_server_without_certificate_anonymous_suites(runtime, pki, tmp_path):
    s = hostile.AnonServer().start()
    try:
        for ca in (None, [pki.path("root.der")]):
            out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], cadata=ca, mode="blocking")
            assert_clean_refusal(out)
            assert s.app_bytes == b""
        out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode="deferred_read")
        assert_clean_refusal(out)
        assert s.app_bytes == b""
        print("\n%s vs anonymous-suite server: %s %s; server: %s" % (
            runtime, out["type"], out["message"][:100], (s.errors or ["-"])[-1][:100]))
    finally:
        s.stop()


@pytest.mark.parametrize("mode", ["close", "garbage", "huge_record", "alert", "silent"])
@pytest.mark.parametrize("client_mode", ["blocking", "deferred_read"])
def test_peer_breaks_mid_handshake(runtime, pki, tmp_path, mode, client_mode):
    s = hostile.RawServer(mode).start()
    try:
        out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode=client_mode, proc_timeout=30,
                     **({"timeout": 2} if mode == "silent" else {}))
    finally:
        s.stop()
    assert s.hellos >= 1
    assert_clean_refusal(out)
    assert out["seconds"] < 20, out


# ------------------------------------------------------- issue 9: fail-open and wrong-error paths


@pytest.fixture(scope="module")
def tls12(pki):
    # TLS 1.2 servers (MicroPython speaks only 1.2; CPython would pick 1.3).
    import ssl

    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf):
        chain, key = leaf.write(pki.dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(chain, key)
        started[leaf.name] = TLSServer(name=leaf.name + "-tls12", ctx=ctx).start()
    yield started
    for s in started.values():
        s.stop()


@pytest.mark.parametrize("tls", ["default", "tls12"])
@pytest.mark.parametrize("raises", [False, True], ids=["on_failure", "on_failure_raises"])
def test_refused_deferred_connection_stays_refused(runtime, srv, tls12, pki, tmp_path, tls, raises):
    # The first write on a deferred socket is refused; a second write and read
    # on the SAME socket must be refused too, never reach the attacker
    # unchecked (CPython used to let the second through), also when the
    # application's on_failure raised.
    s = srv["rogue"] if tls == "default" else tls12["rogue"]
    s.received.clear()
    out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode="retry", on_failure_raises=raises)
    assert out["ok"] is False, out
    assert out["type"] == ("RuntimeError" if raises else "PinError"), out
    assert out["again"]["ok"] is False and out["again"]["type"] in ("PinError", "_AsyncPinError"), out
    assert "refused" in out["again"]["message"], out
    assert [r["reason"] for r in out["failures"]] == ["pin_mismatch"]
    time.sleep(0.2)
    assert s.app_bytes == b"", "a refused connection sent application bytes"


@pytest.mark.parametrize("mode", ["blocking", "connect"])
def test_on_failure_that_raises_leaves_nothing_usable(runtime, srv, pki, tmp_path, mode):
    s = fresh(srv, "rogue")
    out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode=mode, on_failure_raises=True)
    assert out["ok"] is False, out
    assert s.app_bytes == b""


def test_cpython_resumed_session_without_verified_chain_is_refused(pki, tmp_path):
    # With cadata, a resumed TLS session has no verified chain to check: that is
    # a PinError (it used to be a TypeError, on_failure not called, and the
    # next write went through unchecked).
    import socket
    import ssl

    import certpin

    chain, key = pki.genuine.write(pki.dir)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2  # session IDs: resumption without tickets' timing
    sctx.load_cert_chain(chain, key)
    server = TLSServer(name="resume", ctx=sctx).start()
    try:
        ps = certpin.loads(pinset_text({"localhost": [pki.genuine.pin, BOGUS]}))
        failures = []
        ctx = certpin.SSLContext(ps, cadata=[open(pki.path("root.der"), "rb").read()], on_failure=failures.append)
        first = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)), server_hostname="localhost")
        first.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while first.recv(4096):
            pass
        session = first.session
        first.close()
        raw = socket.create_connection(("127.0.0.1", server.port))
        s = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        s.session = session
        server.received.clear()
        with pytest.raises(certpin.PinError, match="no verified chain"):
            s.write(b"GET /first HTTP/1.0\r\n\r\n")
        assert [r["reason"] for r in failures] == ["not_checked"]
        with pytest.raises(certpin.PinError, match="refused"):
            s.write(b"GET /second HTTP/1.0\r\n\r\n")
        time.sleep(0.2)
        assert server.app_bytes == b""
    finally:
        server.stop()


BOGUS2 = "sha256/" + base64.b64encode(hashlib.sha256(b"no such key either").digest()).decode()
NUL_PINSET = {
    # localhost is enforced (and its pins do not match the servers here);
    # example.org is report-only with subdomains. A NUL must not select it.
    "format": 1,
    "hosts": {
        "localhost": {"pins": [BOGUS, BOGUS2]},
        "example.org": {"pins": [BOGUS, BOGUS2], "subdomains": True, "report_only": True},
    },
}

BAD_NAMES = [
    ("nul-then-report-only-parent", "localhost\x00.example.org"),
    ("nul-at-end", "localhost\x00"),
    ("crlf", "localhost\r\n.example.org"),
    ("tab", "local\thost.example.org"),
    ("del", "localhost\x7f.example.org"),
    ("kelvin-sign", "\u212aey.example.org"),  # CPython lowercases it to 'k', MicroPython does not
    ("lone-surrogate", "local\ud800host"),  # CPython cannot even encode it: a PinError all the same
    ("label-64", "a" * 64 + ".example.org"),
    ("name-254", ("a" * 62 + ".") * 3 + "b" * 53 + ".example.org"),
    ("name-64001-dotted", "a." * 32000 + "example.org"),
]


@pytest.mark.parametrize("mode", ["check", "blocking", "connect", "deferred"])
@pytest.mark.parametrize("name,host", BAD_NAMES, ids=[b[0] for b in BAD_NAMES])
def test_unusable_host_names_are_refused_before_any_lookup(runtime, srv, pki, tmp_path, name, host, mode):
    s = srv["rogue"]
    before = s.handshakes
    out = client(runtime, tmp_path, s.port, text=json.dumps(NUL_PINSET), host=host, mode=mode,
                 leaf=pki.path("rogue.0.der"), proc_timeout=30)
    assert_pin_refused(out, "is not a usable host name")
    assert out["failures"] == [], out
    assert s.handshakes == before, "an unusable name got as far as a handshake"
    assert out["seconds"] < 20, out


def test_host_names_at_the_limits_are_looked_up(runtime, srv, pki, tmp_path):
    # 63-character labels and 253 characters (+ a trailing dot) are names:
    # looked up, found under the subdomains entry, and its (bogus) pins refuse.
    host = ("a" * 63 + ".") * 3 + "b" * 49 + ".example.org"
    assert len(host) == 253
    for h in (host, host + "."):
        out = client(runtime, tmp_path, srv["rogue"].port, text=json.dumps(NUL_PINSET), host=h, mode="check",
                     leaf=pki.path("rogue.0.der"))
        assert_pin_refused(out, "no configured pin matched")


@pytest.mark.parametrize("mode", ["blocking", "deferred", "deferred_read"])
def test_ca_failure_is_the_same_pin_error_in_every_mode(runtime, srv, pki, tmp_path, mode):
    # The pin matches (genuine server) but the chain does not validate against
    # cadata (only the rogue root): a PinError with a tls_refused report, in
    # deferred handshakes as in blocking ones (MicroPython's deferred path used
    # to let mbedTLS's ValueError escape without calling on_failure).
    s = fresh(srv, "genuine")
    out = client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode=mode, cadata=[pki.path("rogue-root.der")])
    assert_pin_refused(out, "TLS certificate validation failed")
    assert [r["reason"] for r in out["failures"]] == ["tls_refused"], out
    assert s.app_bytes == b""


@pytest.mark.parametrize("what", ["mismatch", "unpinned", "bad-name"])
def test_refused_wrap_socket_closes_the_tcp_socket(runtime, srv, pki, tmp_path, what):
    # Whatever refuses the connection, the application's TCP socket is closed
    # with it: nothing can be sent to the refused peer afterwards.
    host = {"mismatch": "localhost", "unpinned": "other.example", "bad-name": "localhost\x00.x"}[what]
    s = fresh(srv, "rogue")
    out = client(runtime, tmp_path, s.port, text=pinset_text({"localhost": [pki.genuine.pin, BOGUS]}), host=host)
    assert_pin_refused(out)
    assert out["raw_closed"] is True, out
    time.sleep(0.2)
    assert s.app_bytes == b""
