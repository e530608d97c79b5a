"""certpin.install() under an MQTT client nobody here wrote, against a real broker.

The broker is Debian's mosquitto with a TLS listener on loopback (its own
config file, started and stopped here); the client is PyPI's
micropython-umqtt.simple 1.3.4, which calls the module-level
`ussl.wrap_socket(sock, **ssl_params)` (no `ussl` exists on v1.23+ firmware
until install() provides it). Connect, subscribe, publish and receive through
the pinned connection; a broker presenting the attacker's certificate is
refused before the client's CONNECT is sent.
"""
import json
import os

import pytest

from conftest import ROOT, Runtime
from support.mqtt import Mosquitto, fetch_umqtt, mosquitto_binary
from support.scenario import pinset_text, run_install_client

BACKUP = "sha256/" + "A" * 43 + "="
CLIENT_ID = "certpin-device"


@pytest.fixture(scope="module")
def mosquitto():
    path = mosquitto_binary()
    if not path:
        pytest.skip("Debian's mosquitto broker is not installed (apt-get install -y mosquitto; "
                    ".ci/apt-install mosquitto does it when run as root)")
    return path


@pytest.fixture(scope="module")
def umqtt(tmp_path_factory):
    venv = os.path.join(ROOT, ".venv")
    cache = os.path.join(venv, "certpin-test-cache") if os.path.isdir(venv) else str(tmp_path_factory.mktemp("cache"))
    return fetch_umqtt(cache)


@pytest.fixture
def broker(mosquitto, pki, tmp_path):
    started = []

    def start(leaf):
        chain, key = leaf.write(pki.dir)
        b = Mosquitto(mosquitto, chain, key, str(tmp_path), name=leaf.name).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def mqtt(umqtt, tmp_path, port, pins, install=True, sni=True):
    cfg = {"pinset_text": pinset_text({"localhost": pins}), "mode": "mqtt", "host": "localhost",
           "port": port, "install": install, "sni": sni}
    return run_install_client(Runtime("micropython"), tmp_path, cfg, extra_path=[umqtt])


def test_umqtt_publish_and_receive_through_the_pinned_connection(broker, umqtt, pki, tmp_path):
    b = broker(pki.genuine)
    out = mqtt(umqtt, tmp_path, b.port, [pki.genuine.pin, BACKUP])
    assert out["ok"], (out, b.log())
    assert json.loads(out["reply"]) == [["certpin/test", "hello through the pinned connection"]]
    log = b.log()
    assert "as %s" % CLIENT_ID in log and "Received PUBLISH from %s" % CLIENT_ID in log, log


@pytest.mark.parametrize("attacker", ["rogue", "attacker-gi"])
def test_umqtt_refuses_a_broker_with_the_attackers_certificate(broker, umqtt, pki, tmp_path, attacker):
    leaf = pki.rogue_leaf if attacker == "rogue" else pki.attacker_with_genuine_intermediate
    b = broker(leaf)
    out = mqtt(umqtt, tmp_path, b.port, [pki.genuine.pin, BACKUP])
    assert out["ok"] is False and out["type"] == "PinError", out
    assert "no configured pin matched" in out["message"] and pki.rogue_leaf.pin in out["message"]
    log = b.log()
    # The broker saw the device abort the handshake (the pin check's fatal
    # alert); no CONNECT, which names the client, reached it.
    assert "alert access denied" in log and CLIENT_ID not in log, log


def test_umqtt_without_server_hostname_is_refused_with_the_fix(broker, umqtt, pki, tmp_path):
    b = broker(pki.genuine)
    out = mqtt(umqtt, tmp_path, b.port, [pki.genuine.pin, BACKUP], sni=False)
    assert out["ok"] is False and out["type"] == "PinError", out
    assert "ssl_params={'server_hostname': host}" in out["message"]
    assert CLIENT_ID not in b.log()


def test_umqtt_without_install_finds_no_ussl(broker, umqtt, pki, tmp_path):
    # Why this old client needs install() (or a shim) on firmware >= 1.23 at all.
    out = mqtt(umqtt, tmp_path, broker(pki.genuine).port, [BACKUP], install=False)
    assert out["ok"] is False and out["type"] == "ImportError" and "ussl" in out["message"], out
