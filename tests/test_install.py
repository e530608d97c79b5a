"""certpin.install(): every TLS client connection of an application pinned,
through libraries nobody here wrote.

Real clients on the MicroPython unix port (the `requests`, `mip` and `asyncio`
frozen into it, the tls and ssl modules' own calls) against real HTTPS servers
on 127.0.0.1 (tests/support/servers.py): the genuine one, a rogue-CA one and an
attacker presenting the genuine intermediate. The MQTT side (mosquitto and
umqtt.simple) is in test_install_mqtt.py.
"""
import hashlib
import json
import os
import socket

import pytest

from conftest import Runtime
from support.scenario import fresh, pinset_text, run_install_client
from support.servers import HTTPSServer

BACKUP = "sha256/" + "A" * 43 + "="
ATTACKERS = ["rogue", "attacker-gi"]

HELLO = b'print("installed from the genuine index")\n'
EVIL = b'print("installed from the ATTACKER")\n'


def index_files(body):
    # A minimal mip index (micropython-lib's v2 layout): package JSON and one file by hash.
    short = hashlib.sha256(body).hexdigest()[:8]
    package = {"hashes": [["hello.py", short]], "version": "1.0"}
    return {
        "/package/py/hello/latest.json": json.dumps(package).encode(),
        "/file/%s/%s" % (short[:2], short): body,
    }


@pytest.fixture(scope="module")
def servers(pki):
    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf, pki.attacker_with_genuine_intermediate):
        chain, key = leaf.write(pki.dir)
        files = index_files(HELLO if leaf is pki.genuine else EVIL)
        files["/"] = ("hello from %s\n" % leaf.name).encode()
        started[leaf.name] = HTTPSServer(chain, key, files=files, name=leaf.name).start()
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture
def client(pki, tmp_path):
    """client(**cfg) runs one install_client.py scenario (pinset: the genuine
    leaf pin and a backup for localhost, unless pins= or pinset_text= say otherwise)."""
    def run(runtime="micropython", **cfg):
        pins = cfg.pop("pins", None) or [pki.genuine.pin, BACKUP]
        cfg.setdefault("pinset_text", pinset_text({"localhost": pins}))
        return run_install_client(Runtime(runtime), tmp_path, cfg)

    return run


def refused(out, *fragments):
    assert out["ok"] is False and out["type"] == "PinError", out
    for f in fragments:
        assert f in out["message"], (f, out["message"])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def url(server, host="localhost", path="/"):
    return "https://%s:%d%s" % (host, server.port, path)


# ---- requests (frozen into the unix port; it sets CERT_NONE itself) ----

def test_requests_without_install_checks_nothing(client, servers):
    # The problem install() solves: requests talks to the attacker as happily as to the server.
    s = fresh(servers, "rogue")
    out = client(install=False, mode="requests", url=url(s))
    assert out["ok"] and out["reply"] == "hello from rogue\n", out
    assert s.paths == ["/"]


def test_requests_after_install_reaches_the_pinned_server(client, servers):
    out = client(mode="requests", url=url(servers["genuine"]))
    assert out["ok"] and out["status"] == 200 and out["reply"] == "hello from genuine\n", out


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_requests_after_install_refuses_the_attacker_before_the_request(client, servers, pki, attacker):
    s = fresh(servers, attacker)
    out = client(mode="requests", url=url(s))
    refused(out, "localhost", "no configured pin matched", pki.rogue_leaf.pin)
    assert s.received == [] and s.paths == [], "request bytes reached the attacker"


def test_requests_rogue_ca_in_cadata_is_still_refused_by_pins(client, servers, pki):
    # Both CAs trusted (as if the rogue one were in a public store): CA
    # validation passes for the rogue certificate, the pins refuse it.
    cadata = [pki.path("root.der"), pki.path("rogue-root.der")]
    pins = [pki.genuine.pin, pki.intermediate_pin]
    s = fresh(servers, "rogue")
    out = client(mode="requests", url=url(s), cadata=cadata, pins=pins)
    refused(out, "no configured pin matched", pki.rogue_leaf.pin)
    assert s.received == []
    out = client(mode="requests", url=url(servers["genuine"]), cadata=cadata, pins=pins)
    assert out["ok"] and out["reply"] == "hello from genuine\n", out


def test_requests_unpinned_host_refused_before_any_byte(client, servers):
    s = servers["genuine"]
    before = (s.connections, s.tcp_bytes, s.handshakes)
    out = client(mode="requests", url=url(s, host="127.0.0.1"))
    refused(out, "'127.0.0.1' is not in the pinset", "localhost", 'others="ca"')
    # requests opened the TCP connection; not one byte (no ClientHello) followed.
    assert s.tcp_bytes == before[1] and s.handshakes == before[2], (before, s.connections, s.tcp_bytes)


# ---- mip (downloads through requests) ----

def test_mip_install_from_the_genuine_index(client, servers, tmp_path):
    target = tmp_path / "lib"
    target.mkdir()
    out = client(mode="mip", url=url(servers["genuine"], path=""), target=str(target))
    assert out["ok"] and out["reply"] == HELLO.decode(), out
    assert (target / "hello.py").read_bytes() == HELLO


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_mip_install_refused_when_the_index_is_the_attacker(client, servers, pki, tmp_path, attacker):
    s = fresh(servers, attacker)
    target = tmp_path / "lib"
    target.mkdir()
    out = client(mode="mip", url=url(s, path=""), target=str(target))
    refused(out, "localhost", pki.rogue_leaf.pin)
    assert s.received == [] and s.paths == []
    assert os.listdir(target) == []


def test_mip_without_install_installs_the_attackers_code(client, servers, tmp_path):
    # Control: the same index served by the attacker, no install(): its code lands on the device.
    target = tmp_path / "lib"
    target.mkdir()
    out = client(install=False, mode="mip", url=url(fresh(servers, "rogue"), path=""), target=str(target))
    assert out["ok"] and out["reply"] == EVIL.decode(), out


# ---- asyncio streams (ssl=True builds ssl.SSLContext itself) ----

def test_asyncio_open_connection_ssl_true(client, servers, pki):
    out = client(mode="asyncio", host="localhost", port=servers["genuine"].port)
    assert out["ok"] and "hello from genuine" in out["reply"], out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(mode="asyncio", host="localhost", port=s.port)
        refused(out, "localhost", "no configured pin matched", pki.rogue_leaf.pin)
        assert s.received == []


# ---- the tls and ssl modules' own entry points ----

@pytest.mark.parametrize("mode", ["tls", "ssl_context", "ssl_wrap_socket", "ussl"])
def test_tls_and_ssl_entry_points(client, servers, pki, mode):
    out = client(mode=mode, host="localhost", port=servers["genuine"].port)
    assert out["ok"] and "hello from genuine" in out["reply"], out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(mode=mode, host="localhost", port=s.port)
        refused(out, "no configured pin matched")
        assert s.received == []


def test_references_taken_before_install_are_pinned(client, servers):
    # A module that imported tls, ssl, SSLContext and wrap_socket before
    # install(), and the main script holding tls: every path is pinned.
    cfg = dict(before=["early_refs"], main_tls=True, mode="early_refs", host="localhost")
    out = client(port=servers["genuine"].port, **cfg)
    assert out["ok"] and json.loads(out["reply"]) == ["ok"] * 5, out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(port=s.port, **cfg)
        assert out["ok"] and json.loads(out["reply"]) == ["PinError"] * 5, out
        assert s.received == []


def test_uninstall_restores_the_modules(client, servers):
    cfg = dict(before=["early_refs"], main_tls=True, mode="early_module_names")
    out = client(**cfg)
    # installed: certpin's stand-in everywhere (module, class, ssl's global, __main__), and as ussl
    assert out["ok"] and json.loads(out["reply"]) == ["certpin._install", True, True, True, True, True], out
    out = client(uninstall=True, **cfg)
    assert out["ok"] and json.loads(out["reply"]) == ["tls", True, True, True, True, False], out
    s = fresh(servers, "rogue")
    out = client(uninstall=True, mode="requests", url=url(s))
    assert out["ok"] and out["reply"] == "hello from rogue\n", out  # unpinned again, as before install()


def test_contexts_made_before_install_fail_loudly(client, servers):
    s = fresh(servers, "rogue")
    out = client(before=["early_ctx"], install_may_fail=True, mode="tls", host="localhost", port=s.port)
    kind, message = out["install_error"]
    assert kind == "Error" and "early_ctx.CTX" in message and "early_ctx.CLIENT" in message, out
    assert "boot.py" in message
    # ... and everything install() can reach is pinned all the same.
    refused(out, "no configured pin matched")
    assert s.received == []


def test_reinstall_replaces_the_policy(client, servers, pki):
    first = pinset_text({"localhost": [pki.rogue_leaf.pin, BACKUP]})
    second = pinset_text({"localhost": [pki.genuine.pin, BACKUP]})
    out = client(pinset_text=first, reinstall_text=second, mode="tls", host="localhost", port=servers["genuine"].port)
    assert out["ok"], out
    s = fresh(servers, "rogue")
    out = client(pinset_text=first, reinstall_text=second, mode="tls", host="localhost", port=s.port)
    refused(out, "no configured pin matched")


# ---- hosts outside the pinset: others="ca" ----

def test_others_ca_validates_unpinned_hosts_against_cadata(client, servers, pki):
    # The pinset has localhost only; 127.0.0.1 is outside it (the test
    # certificates name both), so it gets CA validation against the genuine root.
    cfg = dict(others="ca", cadata=[pki.path("root.der")])
    out = client(mode="requests", url=url(servers["genuine"], host="127.0.0.1"), **cfg)
    assert out["ok"] and out["reply"] == "hello from genuine\n", out
    for attacker in ATTACKERS:
        s = fresh(servers, attacker)
        out = client(mode="requests", url=url(s, host="127.0.0.1"), **cfg)
        refused(out, "127.0.0.1", "CA validation")
        assert s.received == []
    # pinned hosts are still pinned: the rogue CA in cadata does not let the attacker in
    cfg["cadata"].append(pki.path("rogue-root.der"))
    s = fresh(servers, "rogue")
    out = client(mode="requests", url=url(s), **cfg)
    refused(out, "no configured pin matched")
    assert s.received == []


def test_others_ca_deferred_handshake(client, servers, pki):
    cfg = dict(others="ca", cadata=[pki.path("root.der")], host="127.0.0.1")
    out = client(mode="asyncio", port=servers["genuine"].port, **cfg)
    assert out["ok"] and "hello from genuine" in out["reply"], out
    s = fresh(servers, "rogue")
    out = client(mode="asyncio", port=s.port, **cfg)
    refused(out, "127.0.0.1", "CA validation")
    assert s.received == []


def test_others_ca_without_cadata_refuses_everything(client, servers):
    out = client(others="ca", install_may_fail=True, mode="requests", url=url(servers["genuine"]))
    kind, message = out["install_error"]
    assert kind == "Error" and 'others="ca" needs cadata' in message, out
    # the failed install() still stands between the application and the network
    assert out["ok"] is False and out["type"] == "Error", out
    assert "install() failed, so every TLS client connection is refused" in out["message"]
    assert 'needs cadata' in out["message"]


def test_bad_others_value_refuses_everything(client, servers):
    s = fresh(servers, "genuine")
    before = s.tcp_bytes
    out = client(others="allow", install_may_fail=True, mode="tls", host="localhost", port=s.port)
    assert out["install_error"][0] == "Error" and "others" in out["install_error"][1], out
    assert out["ok"] is False and "every TLS client connection is refused" in out["message"], out
    assert s.tcp_bytes == before


# ---- what a client context refuses outright; servers pass through ----

def test_client_contexts_refuse_what_cannot_be_pinned(client, servers):
    out = client(mode="probe", port=servers["genuine"].port)
    assert out["ok"], out
    dtls, callback, server_side, nul, server_ctx = json.loads(out["reply"])
    assert dtls[0] == "Error" and "DTLS" in dtls[1]
    assert callback[0] == "Error" and "verify_callback" in callback[1]
    assert server_side[0] == "Error" and "PROTOCOL_TLS_SERVER" in server_side[1]
    assert nul[0] == "PinError" and "is not a usable host name" in nul[1]
    assert server_ctx == ["ok", "SSLContext"]


def test_no_server_hostname_is_refused(client, servers):
    s = fresh(servers, "genuine")
    before = s.tcp_bytes
    out = client(mode="ussl", host=None, port=s.port)
    refused(out, "server_hostname", "ssl_params")
    assert s.tcp_bytes == before


def test_server_side_passes_through(client, pki):
    # An asyncio TLS server on the device (ssl.SSLContext(PROTOCOL_TLS_SERVER))
    # keeps working under install(); the device's client to it is pinned.
    port = free_port()
    server = [pki.path("genuine.0.der"), pki.path("genuine.key.der")]
    out = client(mode="asyncio_server", host="localhost", port=port, server=server)
    assert out["ok"] and "hello from the micropython server, you sent GET / HTTP/1.0" in out["reply"], out
    out = client(mode="asyncio_server", host="localhost", port=port, server=server,
              pins=[pki.rotated.pin, BACKUP])
    refused(out, "no configured pin matched", pki.genuine.pin)


def test_ussl_server_side_passes_through(client, pki):
    # The module-level ussl.wrap_socket(server_side=True, cert=, key=) of old
    # libraries, served on a thread; the client on the same device is pinned.
    port = free_port()
    server = [pki.path("genuine.0.der"), pki.path("genuine.key.der")]
    out = client(mode="ussl_server", host="localhost", port=port, server=server)
    assert out["ok"] and "hello from the ussl server" in out["reply"], out
    assert out["served"] == ["GET / HTTP/1.0\r\n"], out


def test_client_certificate_is_still_presented(client, pki):
    # Mutual TLS (as MQTT brokers in the cloud require): the server demands a
    # certificate from the genuine CA; the pinned connection sends it.
    import ssl

    from support.servers import TLSServer

    chain, key = pki.genuine.write(pki.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    # The device sends its leaf only (MicroPython loads one DER certificate):
    # the server trusts the issuing intermediate directly.
    ctx.load_verify_locations(cadata=pki.intermediate_der)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with TLSServer(ctx=ctx, name="mtls") as s:
        cert = [pki.path("rotated.0.der"), pki.path("rotated.key.der")]
        out = client(mode="ussl", host="localhost", port=s.port, client_cert=cert)
        assert out["ok"] and "hello from mtls" in out["reply"], out
        out = client(mode="ussl", host="localhost", port=s.port)
        assert out["ok"] is False, out  # the server refuses a client without a certificate


def test_cpython_install_is_micropython_only(client):
    out = client(runtime="cpython", mode="tls", host="localhost", port=1)
    assert out["runtime"] == "cpython"
    assert out["ok"] is False and out["type"] == "Error" and "MicroPython-only" in out["message"], out


@pytest.mark.parametrize("fw", ["micropython", "mp1.23"])
def test_an_update_applies_to_install_at_once(fw, pki, serve, tmp_path):
    # install() loaded /certpin.json; a signed update replaces that file: the application's next
    # connections are pinned to the new pinset, not to the one install() loaded at boot (it kept
    # the old Pinset until the next install() call before).
    from conftest import firmware
    from support import jws

    rt = Runtime("micropython") if fw == "micropython" else firmware(fw)
    old, new = serve(pki.genuine), serve(pki.rotated)
    key = jws.new_key()
    hosts = lambda pin: {"localhost": {"pins": [pin, BACKUP]}}  # noqa: E731
    (tmp_path / "certpin.json").write_bytes(jws.pinset(1, [key], hosts=hosts(pki.genuine.pin)))
    (tmp_path / "b.jws").write_bytes(jws.bundle(jws.pinset(2, [key], hosts=hosts(pki.rotated.pin)), [key]))
    p = rt.run("install_update.py", tmp_path, tmp_path / "b.jws", old.port, new.port)
    assert p.stdout.strip().splitlines()[-1:] == ['["ok", "refused", "refused", "ok"]'], p.stdout + p.stderr
