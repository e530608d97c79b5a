"""MicroPython 1.19-1.22 (no verify_callback): on the real v1.20 and v1.22
builds of ../shared/runtimes ("mp1.20", "mp1.22", "mp1.22-peercert"; skipped
with the reason when absent), and simulated on the unix port where no build
exists (1.19, 1.21, a port without mbedTLS error strings): the stand-in TLS
modules of tests/device/oldfw.py give the old firmware's API around the real
TLS. Every handshake below is real (tests/device/old_firmware.py drives them).

Where getpeercert(True) gives the leaf (every v1.20; v1.21-v1.22 where mbedTLS
keeps the peer certificate, as on ESP32) it is checked right after the
handshake, before the socket is returned and before any application byte is
written, with the same rules as inside the handshake. Only the leaf is shown:
a pin above it counts only with cadata whose every certificate is pinned for
the host (the validated chain then ends at a pinned key). Where neither
exists the connection is refused and says why. 1.19 cannot validate a chain
at all, 1.20-1.21 take one CA certificate, 1.22 takes cadata only as a keyword.
"""
import json

import pytest

from conftest import Runtime, firmware
from support.attack_servers import RawServer
from support.pki import cert_pin
from support.scenario import fresh, pinset_text
from support.servers import TLSServer

BACKUP = "sha256/" + "A" * 43 + "="
REAL = ["mp1.22-peercert", "mp1.20"]  # real builds whose getpeercert(True) returns the leaf
ESP32 = ["1.22", "1.20", "1.19"] + REAL  # getpeercert(True) returns the leaf
WITH_CA = ["1.22", "1.20"] + REAL  # can validate a chain (cadata)


@pytest.fixture(scope="module")
def servers(pki):
    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf, pki.attacker_with_genuine_intermediate):
        chain, key = leaf.write(pki.dir)
        started[leaf.name] = TLSServer(chain, key, name=leaf.name).start()
    yield started
    for s in started.values():
        s.stop()


def run(tmp_path, fw, port, pins=None, text=None, cadata=None, **kw):
    # fw: a real build ("mp1.20", a conftest.FIRMWARE key), "real" (the unix
    # port as it is), or the firmware the stand-ins simulate ("1.22", ...).
    real = fw.startswith("mp")
    cfg = {"firmware": "real" if real or fw == "cpython" else fw, "port": port,
           "pinset_text": text or pinset_text({"localhost": pins})}
    if cadata:
        cfg["cadata"] = list(cadata)
    cfg.update(kw)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    p = (firmware(fw) if real else Runtime("cpython" if fw == "cpython" else "micropython")).run("old_firmware.py", str(path))
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


@pytest.mark.parametrize("firmware,peercert", [("1.22", "absent"), ("1.21", "none"), ("1.19", "absent"),
                                               ("mp1.22", "real")])
def test_neither_callback_nor_getpeercert_is_refused(servers, pki, tmp_path, firmware, peercert):
    # Pico W and unix builds of 1.21-1.22, whose mbedTLS 2.28 does not keep the
    # peer certificate (1.22 compiles getpeercert out, 1.21 returns None),
    # and the axTLS unix port of 1.19. (Every 1.20 has the leaf: mbedTLS 2.16.)
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


@pytest.mark.parametrize("firmware", ["1.22", "mp1.22"])
def test_1_22_takes_a_positional_cadata_for_a_file_path(pki, tmp_path, firmware):
    # The trap certpin avoids by passing cadata=: the real build has it, and the stand-in reproduces it.
    out = run(tmp_path, firmware, 1, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")], mode="trap")
    assert out["ok"] is False and out["type"] == "OSError" and out["errno"] == 2, out


@pytest.mark.parametrize("firmware,strings", [("1.22", True), ("1.20", True), ("1.20", False),
                                              ("mp1.22-peercert", True), ("mp1.20", True)])
def test_cadata_refuses_a_server_of_another_ca(servers, pki, tmp_path, firmware, strings):
    # 1.20-1.21 report a failed validation as OSError(-0x2700), with mbedTLS's
    # text only where the port keeps error strings: a PinError either way.
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")],
              error_strings=strings)
    refused(out, "PinError", "TLS certificate validation failed")
    if firmware.endswith("1.20"):
        assert "-0x2700" in out["message"]
    assert rogue.app_bytes == b""
    assert [r["reason"] for r in out["failures"]] == ["tls_refused"]


@pytest.mark.parametrize("firmware,cas", [("1.22", ["root.der", "rogue-root.der"]), ("1.20", ["rogue-root.der"]),
                                          ("mp1.22-peercert", ["root.der", "rogue-root.der"]), ("mp1.20", ["rogue-root.der"])])
def test_a_trusted_rogue_ca_is_refused_by_the_pins(servers, pki, tmp_path, firmware, cas):
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], cadata=[pki.path(c) for c in cas])
    refused(out, "PinError", "no configured pin matched", pki.rogue_leaf.pin)
    assert rogue.app_bytes == b""


@pytest.mark.parametrize("firmware", WITH_CA)
def test_pins_above_the_leaf_count_only_when_all_of_cadata_is_pinned(servers, pki, tmp_path, firmware):
    # A validated chain, but this firmware hands certpin the leaf alone: an
    # intermediate pin cannot be seen; cadata's root is not pinned, so the
    # validated chain need not hold a pinned key. Refused, and the message says why.
    genuine = fresh(servers, "genuine")
    out = run(tmp_path, firmware, genuine.port, [pki.intermediate_pin, BACKUP], cadata=[pki.path("root.der")])
    refused(out, "PinError", "no configured pin matched", "only the leaf",
            "counts only when every certificate in cadata is pinned for localhost", "cadata certificate 1 of 1 is not")
    assert genuine.app_bytes == b""
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and "every certificate in cadata" in rec["message"]


# ---- issue 15 item 8: root and intermediate pins with cadata ----

@pytest.mark.parametrize("firmware", WITH_CA + ["real", "cpython"])
@pytest.mark.parametrize("anchor,pin", [("root", "spki"), ("root", "cert"), ("intermediate", "spki")])
def test_a_pinned_anchor_as_the_only_cadata_is_accepted(servers, pki, tmp_path, firmware, anchor, pin):
    # Every certificate in cadata is pinned: mbedTLS validated the chain
    # (CERT_REQUIRED) up to one of them, so the chain holds a pinned key.
    # ("real": the unix port, and CPython, which see the chain: the same verdict.)
    der = pki.root_der if anchor == "root" else pki.intermediate_der
    p = cert_pin(der) if pin == "cert" else (pki.root_pin if anchor == "root" else pki.intermediate_pin)
    out = run(tmp_path, firmware, servers["genuine"].port, [p, BACKUP], cadata=[pki.path(anchor + ".der")])
    assert out["ok"] and "hello from genuine" in out["reply"], out
    assert out["failures"] == []


@pytest.mark.parametrize("firmware", WITH_CA + ["real", "cpython"])
@pytest.mark.parametrize("attacker", ["rogue", "attacker-gi"])
def test_a_pinned_anchor_refuses_a_rogue_chain(servers, pki, tmp_path, firmware, attacker):
    # The attacker's chain does not validate against the pinned root: mbedTLS
    # refuses it before certpin could; no application byte either way.
    s = fresh(servers, attacker)
    out = run(tmp_path, firmware, s.port, [pki.root_pin, BACKUP], cadata=[pki.path("root.der")])
    assert out["ok"] is False and out["type"] == "PinError", out
    assert "TLS certificate validation failed" in out["message"] or "no configured pin matched" in out["message"], out
    assert s.app_bytes == b""


@pytest.mark.parametrize("firmware", WITH_CA)
def test_a_pinned_anchor_does_not_vouch_for_an_unpinned_cadata(servers, pki, tmp_path, firmware):
    # cadata holds a CA that is not pinned (the rogue one, as if it were in a
    # public store): the rogue server validates against it, and its chain
    # holds no pinned key. Only the leaf is visible here, so the pinned root
    # cannot count. Refused, saying why.
    s = fresh(servers, "rogue")
    out = run(tmp_path, firmware, s.port, [pki.root_pin, BACKUP], cadata=[pki.path("rogue-root.der")])
    refused(out, "PinError", "no configured pin matched", pki.rogue_leaf.pin, "every certificate in cadata",
            "cadata certificate 1 of 1 is not")
    assert s.app_bytes == b""


@pytest.mark.parametrize("firmware", ["1.22", "mp1.22-peercert"])
def test_an_extra_unpinned_ca_in_cadata_is_refused(servers, pki, tmp_path, firmware):
    # v1.22 takes a list: the genuine root pinned, the rogue root not. The
    # validated chain may end at either, and certpin cannot see which, so even
    # the genuine server is refused (the unix port, 1.23+, sees the chain and
    # accepts it: test_a_pinned_root_among_unpinned_cas_inside_the_handshake).
    cadata = [pki.path("root.der"), pki.path("rogue-root.der")]
    for name in ("genuine", "rogue", "attacker-gi"):
        s = fresh(servers, name)
        out = run(tmp_path, firmware, s.port, [pki.root_pin, BACKUP], cadata=cadata)
        assert out["ok"] is False and out["type"] == "PinError", (name, out)
        assert s.app_bytes == b""
        if name != "attacker-gi":  # that chain does not validate at all
            assert "cadata certificate 2 of 2 is not" in out["message"], (name, out["message"])


@pytest.mark.parametrize("firmware", ["real", "mp1.23", "cpython"])
def test_a_pinned_root_among_unpinned_cas_inside_the_handshake(servers, pki, tmp_path, firmware):
    # Firmware >= 1.23 (the unix port, the real v1.23) and CPython see the
    # validated chain itself: the genuine chain ends at the pinned root and
    # passes; the rogue one does not.
    cadata = [pki.path("root.der"), pki.path("rogue-root.der")]
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.root_pin, BACKUP], cadata=cadata)
    assert out["ok"] and out["old_loaded"] is False, out
    s = fresh(servers, "rogue")
    out = run(tmp_path, firmware, s.port, [pki.root_pin, BACKUP], cadata=cadata)
    refused(out, "PinError", "no configured pin matched")
    assert s.app_bytes == b""


def test_1_19_cannot_use_cadata_and_says_so_before_connecting(servers, pki, tmp_path):
    s = servers["genuine"]
    before = s.handshakes
    out = run(tmp_path, "1.19", s.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der")])
    refused(out, "Error", "cadata", "MicroPython 1.20", "drop cadata")
    assert s.handshakes == before


@pytest.mark.parametrize("firmware", ["1.20", "mp1.20"])
def test_1_20_takes_one_ca_certificate(servers, pki, tmp_path, firmware):
    s = servers["genuine"]
    before = s.handshakes
    out = run(tmp_path, firmware, s.port, [pki.genuine.pin, BACKUP], cadata=[pki.path("root.der"), pki.path("rogue-root.der")])
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


@pytest.mark.parametrize("firmware", ["1.22", "mp1.22-peercert"])
def test_asyncio_on_1_22(servers, pki, tmp_path, firmware):
    rogue = fresh(servers, "rogue")
    out = run(tmp_path, firmware, rogue.port, [pki.genuine.pin, BACKUP], mode="asyncio")
    refused(out, "PinError", "no configured pin matched")
    assert rogue.app_bytes == b""
    out = run(tmp_path, firmware, servers["genuine"].port, [pki.genuine.pin, BACKUP], mode="asyncio")
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


@pytest.mark.parametrize("firmware", ["1.20", "mp1.20"])
def test_report_only_goes_ahead_and_reports(servers, pki, tmp_path, firmware):
    text = pinset_text({"localhost": [pki.genuine.pin, BACKUP]}, report_only=True)
    out = run(tmp_path, firmware, servers["rogue"].port, text=text)
    assert out["ok"] and "hello from rogue" in out["reply"], out
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is False


def test_a_port_with_ussl_only(servers, pki, tmp_path):
    # 1.19 without the ssl -> ussl weak link: certpin finds ussl itself.
    out = run(tmp_path, "1.19", servers["genuine"].port, [pki.genuine.pin, BACKUP], ssl_alias=False)
    assert out["ok"] and "hello from genuine" in out["reply"], out
