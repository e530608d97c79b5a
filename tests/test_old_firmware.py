"""MicroPython 1.19-1.22 (no verify_callback), simulated on the unix port: the
stand-in TLS modules of tests/device/oldfw.py give the old firmware's API
around the real TLS, so every handshake below is real
(tests/device/old_firmware.py drives them).

Where getpeercert(True) gives the leaf (ESP32) it is checked right after the
handshake, before the socket is returned and before any application byte is
written, with the same rules as inside the handshake; only the leaf can be
checked, so pins above it cannot match. Where neither exists the connection is
refused and says why. 1.19 cannot validate a chain at all, 1.20-1.21 take one
CA certificate, 1.22 takes cadata only as a keyword.
"""
import json

import pytest

from conftest import Runtime
from support.attack_servers import RawServer
from support.scenario import fresh, pinset_text
from support.servers import TLSServer

BACKUP = "sha256/" + "A" * 43 + "="
ESP32 = ["1.22", "1.20", "1.19"]  # getpeercert(True) returns the leaf
WITH_CA = ["1.22", "1.20"]  # can validate a chain (cadata)


@pytest.fixture(scope="module")
def servers(pki):
    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf, pki.attacker_with_genuine_intermediate):
        chain, key = leaf.write(pki.dir)
        started[leaf.name] = TLSServer(chain, key, name=leaf.name).start()
    yield started
    for s in started.values():
        s.stop()


def run(tmp_path, firmware, port, pins=None, text=None, cadata=None, **kw):
    cfg = {"firmware": firmware, "port": port, "pinset_text": text or pinset_text({"localhost": pins})}
    if cadata:
        cfg["cadata"] = list(cadata)
    cfg.update(kw)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    p = Runtime("micropython").run("old_firmware.py", str(path))
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def refused(out, kind="PinError", *fragments):
    assert out["ok"] is False and out["type"] == kind, out
    for f in fragments:
        assert f in out["message"], (f, out["message"])


@pytest.mark.parametrize("firmware", ESP32)
def test_getpeercert_fallback_accepts_the_pinned_leaf(servers, pki, tmp_path, firmware):
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.genuine.pin, BACKUP])
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]
    assert out["failures"] == []
    assert out["old_loaded"] is True


@pytest.mark.parametrize("cadata", [False, True])
def test_firmware_with_verify_callback_never_loads_the_old_path(servers, pki, tmp_path, cadata):
    out = run(tmp_path, "real", servers["genuine"].port, [pki.genuine.pin, BACKUP],
              cadata=[pki.path("root.der")] if cadata else None)
    assert out["ok"], out
    assert out["old_loaded"] is False


@pytest.mark.parametrize("firmware", ESP32)
def test_getpeercert_fallback_refuses_before_any_byte(servers, pki, tmp_path, firmware):
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP])
    refused(out, "PinError", "no configured pin matched", pki.rogue_leaf.pin, pki.genuine.pin)
    assert rogue.app_bytes == b""
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is True


@pytest.mark.parametrize("firmware,peercert", [("1.22", "absent"), ("1.20", "none"), ("1.19", "absent")])
def test_neither_callback_nor_getpeercert_is_refused(servers, pki, tmp_path, firmware, peercert):
    # Pico W (1.22 compiles getpeercert out; 1.20-1.21 return None) and the
    # axTLS unix port of 1.19.
    genuine = fresh(servers, "genuine")
    out = run(tmp_path, firmware, genuine.port, [pki.genuine.pin, BACKUP], peercert=peercert)
    refused(out, "Error", "neither verify_callback", "getpeercert", "upgrade to MicroPython >= 1.23")
    assert genuine.app_bytes == b""
    assert [r["reason"] for r in out["failures"]] == ["not_checked"]


@pytest.mark.parametrize("firmware", ESP32)
def test_attacker_with_the_genuine_intermediate_is_refused(servers, pki, tmp_path, firmware):
    # Without cadata nothing vouches for the intermediate the attacker sends:
    # only the leaf counts, and this firmware shows certpin nothing else.
    s = fresh(servers, "attacker-gi")
    out = run(tmp_path, firmware, s.port, [pki.intermediate_pin, pki.root_pin])
    refused(out, "PinError", "only the leaf")
    assert s.app_bytes == b""


@pytest.mark.parametrize("firmware", WITH_CA)
def test_cadata_accepts_the_genuine_chain(servers, pki, tmp_path, firmware):
    # On 1.22 this also shows cadata going by keyword: positionally it is a path (below).
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")])
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]


def test_1_22_takes_a_positional_cadata_for_a_file_path(pki, tmp_path):
    # The trap certpin avoids by passing cadata=: the stand-in reproduces it.
    out = run(tmp_path, "1.22", 1, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")], mode="trap")
    assert out["ok"] is False and out["type"] == "OSError" and out["errno"] == 2, out


@pytest.mark.parametrize("firmware,strings", [("1.22", True), ("1.20", True), ("1.20", False)])
def test_cadata_refuses_a_server_of_another_ca(servers, pki, tmp_path, firmware, strings):
    # 1.20-1.21 report a failed validation as OSError(-0x2700), with mbedTLS's
    # text only where the port keeps error strings: a PinError either way.
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")],
              error_strings=strings)
    refused(out, "PinError", "TLS certificate validation failed")
    if firmware == "1.20":
        assert "-0x2700" in out["message"]
    assert rogue.app_bytes == b""
    assert [r["reason"] for r in out["failures"]] == ["tls_refused"]


@pytest.mark.parametrize("firmware,cas", [("1.22", ["root.der", "rogue-root.der"]), ("1.20", ["rogue-root.der"])])
def test_a_trusted_rogue_ca_is_refused_by_the_pins(servers, pki, tmp_path, firmware, cas):
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], cadata=[pki.path(c) for c in cas])
    refused(out, "PinError", "no configured pin matched", pki.rogue_leaf.pin)
    assert rogue.app_bytes == b""


@pytest.mark.parametrize("firmware", WITH_CA)
def test_pins_above_the_leaf_cannot_match_here(servers, pki, tmp_path, firmware):
    # A validated chain, but this firmware hands certpin the leaf alone: an
    # intermediate or root pin is refused, and the message says why.
    genuine = fresh(servers, "genuine")
    out = run(tmp_path, firmware, genuine.port, [pki.intermediate_pin, pki.root_pin], cadata=[pki.path("root.der")])
    refused(out, "PinError", "no configured pin matched", "only the leaf", "intermediate or root cannot match here")
    assert genuine.app_bytes == b""


def test_1_19_cannot_use_cadata_and_says_so_before_connecting(servers, pki, tmp_path):
    s = servers["genuine"]
    before = s.handshakes
    out = run(tmp_path, "1.19", s.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")])
    refused(out, "Error", "cadata", "MicroPython 1.20", "drop cadata")
    assert s.handshakes == before


def test_1_20_takes_one_ca_certificate(servers, pki, tmp_path):
    s = servers["genuine"]
    before = s.handshakes
    out = run(tmp_path, "1.20", s.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der"), pki.path("rogue-root.der")])
    refused(out, "Error", "one CA certificate")
    assert s.handshakes == before


@pytest.mark.parametrize("firmware", WITH_CA)
def test_cadata_the_firmware_cannot_load(servers, pki, tmp_path, firmware):
    bad = tmp_path / "bad.der"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot DER\n")
    genuine = fresh(servers, "genuine")
    out = run(tmp_path, firmware, genuine.port, [pki.genuine.pin, BACKUP], cadata=[str(bad)])
    refused(out, "Error", "cadata", "cannot load")
    assert genuine.app_bytes == b""


@pytest.mark.parametrize("firmware", ESP32)
@pytest.mark.parametrize("mode", ["deferred", "nonblocking"])
def test_a_deferred_handshake_is_done_and_checked_in_wrap_socket(servers, pki, tmp_path, firmware, mode):
    # do_handshake_on_connect=False (what asyncio asks, on a non-blocking
    # socket) cannot be honoured without verify_callback: the first write would
    # finish the handshake and send the request in the same call.
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], mode=mode)
    refused(out, "PinError", "no configured pin matched")
    assert rogue.app_bytes == b""
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.genuine.pin, BACKUP], mode=mode)
    assert out["ok"] and "hello from genuine" in out["reply"], out


def test_asyncio_on_1_22(servers, pki, tmp_path):
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, "1.22", rogue.port, [pki.genuine.pin, BACKUP], mode="asyncio")
    refused(out, "PinError", "no configured pin matched")
    assert rogue.app_bytes == b""
    out = run(tmp_path, "1.22", servers["genuine"].port, [pki.genuine.pin, BACKUP], mode="asyncio")
    assert out["ok"] and "hello from genuine" in out["reply"], out


@pytest.mark.parametrize("firmware", ESP32)
def test_connect(servers, pki, tmp_path, firmware):
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.genuine.pin, BACKUP], mode="connect")
    assert out["ok"] and "hello from genuine" in out["reply"], out
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], mode="connect")
    refused(out, "PinError", "no configured pin matched")
    assert rogue.app_bytes == b""


@pytest.mark.parametrize("firmware", ESP32)
def test_a_silent_server_times_out_as_a_network_error(pki, tmp_path, firmware):
    # connect(timeout=) bounds the handshake: an OSError (ETIMEDOUT), not a
    # certpin.Error and not a hang.
    with RawServer("silent") as silent:
        out = run(tmp_path, firmware, silent.port, [pki.genuine.pin, BACKUP], mode="connect", timeout=1)
    assert out["ok"] is False and out["oserror"] is True and out["errno"] == 110, out


@pytest.mark.parametrize("firmware", ESP32)
def test_an_unpinned_host_is_refused_before_the_handshake(servers, pki, tmp_path, firmware):
    s = servers["genuine"]
    before = s.handshakes
    text = pinset_text({"api.example.com": [pki.genuine.pin, BACKUP]})
    out = run(tmp_path, firmware, s.port, text=text)
    refused(out, "PinError", "'localhost' is not in the pinset")
    assert s.handshakes == before


def test_report_only_goes_ahead_and_reports(servers, pki, tmp_path):
    text = pinset_text({"localhost": [pki.genuine.pin, BACKUP]}, report_only=True)
    out = run(tmp_path, "1.20", servers["rogue"].port, text=text)
    assert out["ok"] and "hello from rogue" in out["reply"], out
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is False


def test_a_port_with_ussl_only(servers, pki, tmp_path):
    # 1.19 without the ssl -> ussl weak link: certpin finds ussl itself.
    out = run(tmp_path, "1.19", servers["genuine"].port, [pki.genuine.pin, BACKUP], ssl_alias=False)
    assert out["ok"] and "hello from genuine" in out["reply"], out
