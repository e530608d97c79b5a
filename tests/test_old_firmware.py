"""Firmware without verify_callback (MicroPython < 1.23), simulated on the unix
port with a stand-in `tls` module around the real one (tests/device/old_firmware.py):
with getpeercert(True) the leaf is checked right after the handshake, before
the socket is returned; with neither, the connection is refused and says why."""
import json

import pytest

from conftest import Runtime

BACKUP = "sha256/" + "A" * 43 + "="


def run(tmp_path, port, pins, peercert):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"port": port, "pins": pins, "peercert": peercert}))
    p = Runtime("micropython").run("old_firmware.py", str(path))
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture
def servers(serve, pki):
    return serve(pki.genuine), serve(pki.rogue_leaf)


def test_getpeercert_fallback_accepts_the_pinned_leaf(servers, pki, tmp_path):
    genuine, _ = servers
    out = run(tmp_path, genuine.port, [pki.genuine.pin, BACKUP], pki.path("genuine.0.der"))
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]


def test_getpeercert_fallback_refuses_before_any_byte(servers, pki, tmp_path):
    _, rogue = servers
    out = run(tmp_path, rogue.port, [pki.genuine.pin, BACKUP], pki.path("rogue.0.der"))
    assert out["ok"] is False and out["type"] == "PinError", out
    assert pki.rogue_leaf.pin in out["message"]
    assert rogue.app_bytes == b""


def test_neither_callback_nor_getpeercert_is_refused(servers, pki, tmp_path):
    genuine, _ = servers
    out = run(tmp_path, genuine.port, [pki.genuine.pin, BACKUP], None)
    assert out["ok"] is False and out["type"] == "Error", out
    assert "neither verify_callback" in out["message"] and "getpeercert" in out["message"]
    assert genuine.app_bytes == b""
