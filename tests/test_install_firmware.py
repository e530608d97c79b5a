"""certpin.install() on real MicroPython builds of older and 32-bit firmware
(../shared/runtimes, via conftest.firmware(); each test skips with the reason
when a build is absent), and on the unix port of `make setup`.

- v1.20: no SSLContext at all, `ussl.wrap_socket` (and `ssl`, the same
  module), `urequests`, `getpeercert(True)`: install() pins through the leaf
  check of certpin/_old.py. (It used to raise "no SSLContext" before putting
  anything in place, and the application's `ssl.wrap_socket` then sent its
  request to an attacker.)
- v1.22 without getpeercert (rp2 and unix builds): every TLS client
  connection refused, cleanly, before any application byte.
- v1.22 with getpeercert (as ESP32), v1.23 (the first verify_callback
  release), v1.28 32-bit, the unix port: pinned.

Every connection below is a real handshake against HTTPS servers on
127.0.0.1 (tests/support/servers.py): the genuine server, a rogue-CA server,
and an attacker sending the genuine intermediate after its own leaf. A
refused connection must leave the server without a single application byte.
"""
import json
import ssl

import pytest

from conftest import Runtime, firmware
from support.scenario import fresh, pinset_text, run_install_client
from support.servers import HTTPSServer, TLSServer

BACKUP = "sha256/" + "A" * 43 + "="
ATTACKERS = ["rogue", "attacker-gi"]

CHECKS = ["mp1.20", "mp1.22-peercert", "mp1.23", "mp1.28-32", "unix"]  # can check the leaf
ALL = CHECKS + ["mp1.22"]  # v1.22 without getpeercert: refuses every connection
NO_SSLCONTEXT = {"mp1.20"}
NO_TLS_MODULE = {"mp1.20", "mp1.22", "mp1.22-peercert"}

# What the application calls: its own ssl/ussl/tls calls and the HTTP library
# the firmware ships (requests, or urequests on v1.20).
MODES = ["ssl_wrap_socket", "ussl", "ssl_context", "tls", "requests"]


def modes_of(fw):
    m = list(MODES)
    if fw in NO_SSLCONTEXT:
        m.remove("ssl_context")
    if fw in NO_TLS_MODULE:
        m.remove("tls")
    return m


CASES = [(fw, mode) for fw in ALL for mode in modes_of(fw)]


def runtime_of(name):
    return Runtime("micropython") if name == "unix" else firmware(name)


@pytest.fixture(scope="module")
def servers(pki):
    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf, pki.attacker_with_genuine_intermediate):
        chain, key = leaf.write(pki.dir)
        started[leaf.name] = HTTPSServer(chain, key, files={"/": ("hello from %s\n" % leaf.name).encode()},
                                         name=leaf.name).start()
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture
def client(pki, tmp_path):
    """client(fw, **cfg): one install_client.py scenario on firmware fw."""
    def run(fw, **cfg):
        pins = cfg.pop("pins", None) or [pki.genuine.pin, BACKUP]
        cfg.setdefault("pinset_text", pinset_text({"localhost": pins}))
        return run_install_client(runtime_of(fw), tmp_path, cfg)

    return run


def scenario(mode, server, host="localhost"):
    if mode == "requests":
        return {"mode": mode, "url": "https://%s:%d/" % (host, server.port)}
    return {"mode": mode, "host": host, "port": server.port}


def untouched(s):
    # Not one application byte reached the server (an HTTPSServer records the
    # request head of every completed handshake, b"" when none came).
    assert s.app_bytes == b"" and s.paths == [], (s.received, s.paths)


def refused(out, kind, *fragments):
    assert out["ok"] is False and out["type"] == kind, out
    for f in fragments:
        assert f in out["message"], (f, out["message"])


# ---- issue 15 item 2: install() pins, or refuses everything, on every firmware ----

@pytest.mark.parametrize("fw,mode", CASES)
def test_install_pins_the_applications_own_calls(client, servers, pki, fw, mode):
    s = fresh(servers, "genuine")
    out = client(fw, **scenario(mode, s))
    assert "install_error" not in out, out
    if fw == "mp1.22":
        # No verify_callback and no getpeercert: nothing to check the pins
        # with, so even the genuine server is refused, and says why.
        refused(out, "Error", "neither verify_callback", "getpeercert", "upgrade to MicroPython >= 1.23")
        untouched(s)
    else:
        assert out["ok"] and "hello from genuine" in out["reply"], out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(fw, **scenario(mode, s))
        if fw == "mp1.22":
            refused(out, "Error", "getpeercert")
        else:
            refused(out, "PinError", "no configured pin matched", pki.rogue_leaf.pin)
        untouched(s)


@pytest.mark.parametrize("fw", ALL)
def test_a_failed_install_refuses_every_client_before_any_byte(client, servers, fw):
    # The README's boot.py recipe on a device without /certpin.json:
    # install() raises, main.py runs all the same, and its connections must
    # not go out unpinned (nor start a handshake at all).
    for mode in modes_of(fw):
        s = fresh(servers, "rogue")
        before = s.tcp_bytes
        out = client(fw, default_pinset=True, install_may_fail=True, **scenario(mode, s))
        assert out["install_error"][0] == "PinsetError", out
        refused(out, "PinsetError", "install() failed, so every TLS client connection is refused")
        assert s.tcp_bytes == before, mode
        untouched(s)


@pytest.mark.parametrize("fw", ALL)
def test_firmware_api_is_kept(client, servers, fw):
    # install() puts the stand-in under every name the firmware's module has
    # and offers no SSLContext where the firmware has none.
    out = client(fw, mode="api")
    assert out["ok"], out
    has_ctx, ussl_has_ctx, same, cert_required, has_wrap, name = json.loads(out["reply"])
    assert has_ctx is ussl_has_ctx is (fw not in NO_SSLCONTEXT)
    assert same is (fw in NO_TLS_MODULE)  # ssl is the stand-in itself where the firmware's ssl is the C module
    assert cert_required == 2 and has_wrap
    assert name == ("certpin._install" if fw in NO_TLS_MODULE else "ssl")


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22-peercert", "mp1.22", "unix"])
def test_others_ca_on_old_firmware(client, servers, pki, fw):
    # A host outside the pinset (localhost; the pinset has api.example.com
    # only), CA-validated against cadata: on firmware without verify_callback
    # through the firmware's own CA validation. (A name, not 127.0.0.1: the
    # mbedTLS of v1.20-v1.22 matches no IP address in a certificate.)
    cfg = dict(others="ca", cadata=[pki.path("root.der")], pins=None,
               pinset_text=pinset_text({"api.example.com": [pki.genuine.pin, BACKUP]}))
    s = fresh(servers, "genuine")
    out = client(fw, **scenario("ssl_wrap_socket", s), **cfg)
    assert "install_error" not in out, out
    assert out["ok"] and "hello from genuine" in out["reply"], out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(fw, **scenario("ssl_wrap_socket", s), **cfg)
        refused(out, "PinError", "localhost", "CA validation")
        untouched(s)


def test_others_ca_on_v1_20_takes_one_ca_certificate(client, servers, pki):
    out = client("mp1.20", others="ca", cadata=[pki.path("root.der"), pki.path("rogue-root.der")],
                 install_may_fail=True, **scenario("ssl_wrap_socket", fresh(servers, "genuine")))
    assert out["install_error"][0] == "Error" and "one CA certificate" in out["install_error"][1], out
    refused(out, "Error", "every TLS client connection is refused")


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22"])
def test_server_side_passes_through_on_old_firmware(client, pki, fw):
    # ussl.wrap_socket(server_side=True, cert=, key=): the firmware's own C
    # function, untouched; the device's client to it is pinned. (v1.22
    # without getpeercert refuses that client, so it serves the refusal.)
    from test_install import free_port

    server = [pki.path("genuine.0.der"), pki.path("genuine.key.der")]
    out = client(fw, mode="ussl_server", host="localhost", port=free_port(), server=server)
    if fw == "mp1.22":
        refused(out, "Error", "getpeercert")
        assert out["served"] and "hello" not in json.dumps(out["served"]), out
    else:
        assert out["ok"] and "hello from the ussl server" in out["reply"], out
        assert out["served"] == ["GET / HTTP/1.0\r\n"], out


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22-peercert"])
def test_client_certificate_is_presented_on_old_firmware(client, pki, fw):
    # Mutual TLS through install() (ussl.wrap_socket(cert=, key=)): the pinned
    # connection still presents the application's client certificate.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain, key = pki.genuine.write(pki.dir)
    ctx.load_cert_chain(chain, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=pki.intermediate_der)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with TLSServer(ctx=ctx, name="mtls") as s:
        cert = [pki.path("rotated.0.der"), pki.path("rotated.key.der")]
        out = client(fw, mode="ussl", host="localhost", port=s.port, client_cert=cert)
        assert out["ok"] and "hello from mtls" in out["reply"], out
        out = client(fw, mode="ussl", host="localhost", port=s.port)
        assert out["ok"] is False, out  # the server refuses a client without a certificate


@pytest.mark.parametrize("fw", ["mp1.22-peercert", "mp1.23", "mp1.28-32", "unix"])
def test_asyncio_under_install(client, servers, pki, fw):
    out = client(fw, mode="asyncio", host="localhost", port=servers["genuine"].port)
    assert out["ok"] and "hello from genuine" in out["reply"], out
    s = fresh(servers, "rogue")
    out = client(fw, mode="asyncio", host="localhost", port=s.port)
    refused(out, "PinError", "no configured pin matched")
    untouched(s)


# ---- issue 15 item 3: classes derived from the firmware's SSLContext ----

SUBCLASS_FW = ["mp1.22-peercert", "mp1.23", "mp1.28-32", "unix"]
SUBCLASS_NAMES = ["early_sub.Ctx (a class", "early_sub.Deeper (a class", "early_sub.Holder.ctx_class (a class",
                  "early_sub.BOX.ctx_class (a class", "early_sub.EARLY (an instance of Ctx",
                  "early_sub.SERVER (an instance of Deeper", "early_sub.Sneaky (a class"]


@pytest.mark.parametrize("fw", SUBCLASS_FW)
@pytest.mark.parametrize("target", ["genuine"] + ATTACKERS)
def test_subclasses_made_before_install_refuse_and_are_named(client, servers, pki, fw, target):
    # Each class trusts the CA of the server it talks to: without install()'s
    # refusal every one of them would connect (test_subclasses_connect_without_install).
    s = fresh(servers, target)
    before = s.tcp_bytes
    out = client(fw, before=["early_sub"], install_may_fail=True, reinstall=True, mode="subclasses",
                 host="localhost", port=s.port, sub_ca=ca_of(pki, target))
    kind, message = out["install_error"]
    assert kind == "Error", out
    for name in SUBCLASS_NAMES:
        assert name in message, (name, message)
    assert "boot.py" in message
    # install() never returns successfully while such a class is reachable
    assert out["reinstall_error"] and out["reinstall_error"][0] == "Error", out
    assert "early_sub.Ctx" in out["reinstall_error"][1]
    assert out["ok"], out
    results = json.loads(out["reply"])
    names = ["Ctx", "Deeper", "Hidden", "Hidden", "Ctx", "Deeper", "Sneaky"]
    assert len(results) == len(names), results
    for (kind, msg), name in zip(results, names):
        assert kind == "Error" and name + " derives from the firmware's SSLContext" in msg, results
    # refused before the handshake: not even a ClientHello
    assert s.tcp_bytes == before
    untouched(s)


@pytest.mark.parametrize("fw", SUBCLASS_FW)
def test_install_that_names_subclasses_still_pins_everything_else(client, servers, pki, fw):
    # The policy stands for every other path: the application's ssl calls are pinned.
    out = client(fw, before=["early_sub"], install_may_fail=True, mode="ssl_wrap_socket", host="localhost",
                 port=servers["genuine"].port)
    assert out["install_error"][0] == "Error" and out["ok"], out
    s = fresh(servers, "rogue")
    out = client(fw, before=["early_sub"], install_may_fail=True, mode="ssl_wrap_socket", host="localhost",
                 port=s.port)
    refused(out, "PinError", "no configured pin matched")
    untouched(s)


def ca_of(pki, target):
    return pki.path("root.der" if target == "genuine" else "rogue-root.der")


@pytest.mark.parametrize("fw", SUBCLASS_FW)
def test_subclasses_connect_without_install(client, servers, pki, fw):
    # Control: what install() has to stop. These contexts are the firmware's;
    # each trusts the rogue CA, and without install() it talks to the attacker.
    s = fresh(servers, "rogue")
    out = client(fw, before=["early_sub"], install=False, mode="subclasses", host="localhost", port=s.port,
                 sub_ca=ca_of(pki, "rogue"))
    results = json.loads(out["reply"])
    assert [r[0] for r in results] == ["ok"] * 6, results
    assert s.app_bytes


@pytest.mark.parametrize("fw", SUBCLASS_FW)
def test_uninstall_gives_subclasses_back_their_wrap_socket(client, servers, pki, fw):
    out = client(fw, before=["early_sub"], install_may_fail=True, uninstall=True, mode="subclasses",
                 host="localhost", port=servers["genuine"].port, sub_ca=ca_of(pki, "genuine"))
    results = json.loads(out["reply"])
    # as before install(): the firmware's contexts connect
    assert [r[0] for r in results] == ["ok"] * 6, results
    assert "derives from" not in json.dumps(results)


@pytest.mark.parametrize("fw", SUBCLASS_FW)
def test_a_subclass_made_after_install_is_pinned(client, servers, pki, fw):
    out = client(fw, mode="late_subclass", host="localhost", port=servers["genuine"].port)
    assert out["ok"] and "hello from genuine" in out["reply"], out
    s = fresh(servers, "rogue")
    out = client(fw, mode="late_subclass", host="localhost", port=s.port)
    refused(out, "PinError", "no configured pin matched")
    untouched(s)


@pytest.mark.parametrize("fw", SUBCLASS_FW)
def test_a_failed_install_still_makes_subclasses_refuse(client, servers, pki, fw):
    # install() fails on the pinset (no /certpin.json) after it made those
    # classes refuse: they stay refused like every other client (fail closed).
    s = fresh(servers, "rogue")
    before = s.tcp_bytes
    out = client(fw, before=["early_sub"], default_pinset=True, install_may_fail=True, mode="subclasses",
                 host="localhost", port=s.port, sub_ca=ca_of(pki, "rogue"))
    assert out["install_error"][0] == "PinsetError", out
    results = json.loads(out["reply"])
    assert len(results) == 7 and all(k == "Error" and "derives from" in m for k, m in results), results
    assert s.tcp_bytes == before
    untouched(s)


# ---- references install() rebinds: class and object attributes ----

@pytest.mark.parametrize("fw", CHECKS)
def test_references_held_as_class_and_object_attributes_are_pinned(client, servers, fw):
    # Holder.tls_module, Holder.ctx_class, Holder.wrap (v1.19-v1.22's C
    # wrap_socket) and OBJ.inner.tls_module, all taken before install().
    n = 2 + (fw not in NO_SSLCONTEXT) + (fw in NO_TLS_MODULE)
    out = client(fw, before=["early_attrs"], mode="early_attrs", host="localhost", port=servers["genuine"].port)
    assert "install_error" not in out and out["ok"], out
    assert json.loads(out["reply"]) == ["ok"] * n, out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(fw, before=["early_attrs"], mode="early_attrs", host="localhost", port=s.port)
        assert json.loads(out["reply"]) == ["PinError"] * n, out
        untouched(s)


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22-peercert"])
def test_others_ca_by_ip_address_is_refused_on_old_mbedtls(client, servers, pki, fw):
    # The mbedTLS of v1.20-v1.22 (2.16, 2.28) matches no IP address in a
    # certificate: a host outside the pinset reached by IP fails CA
    # validation there (refused, saying so), though the certificate names
    # 127.0.0.1 and v1.23+ accepts it (test_install.py).
    s = fresh(servers, "genuine")
    out = client(fw, others="ca", cadata=[pki.path("root.der")], **scenario("ssl_wrap_socket", s, host="127.0.0.1"))
    refused(out, "PinError", "127.0.0.1", "CA validation")
    untouched(s)


@pytest.mark.parametrize("version,peercert", [("1.19", "leaf"), ("1.21", "leaf"), ("1.21", "none")])
def test_install_on_firmware_without_a_build_here(client, servers, pki, version, peercert):
    # v1.19 and v1.21 (no SSLContext) through the stand-ins of oldfw.py on the
    # unix port: pinned where getpeercert(True) gives the leaf, every
    # connection refused where it returns None (v1.21 on rp2 and unix).
    for mode in ("ssl_wrap_socket", "ussl"):
        s = fresh(servers, "genuine")
        out = client("unix", oldfw=[version, peercert], **scenario(mode, s))
        assert "install_error" not in out, out
        if peercert == "none":
            refused(out, "Error", "getpeercert", "does not keep it")
            untouched(s)
        else:
            assert out["ok"] and "hello from genuine" in out["reply"], out
        s = fresh(servers, "rogue")
        out = client("unix", oldfw=[version, peercert], **scenario(mode, s))
        assert out["ok"] is False and out["type"] in ("PinError", "Error"), out
        untouched(s)
