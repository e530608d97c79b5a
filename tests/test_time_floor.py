"""The time floor (issue 8): expiry that an on-path attacker cannot trigger.

Expiry is judged against a floor kept beside the pinset (certpin.floor) that
only authenticated sources move: a signed update's `issued` (tests/test_update.py)
and the notBefore of a certificate that matched a pin in a handshake that
COMPLETED. Real TLS on 127.0.0.1, both runtimes:
- a genuine renewal moves the floor, once (no flash write when it does not move);
- a forged certificate carrying the genuine public key with notBefore 2099,
  presented by a server that does not hold the key, does not move it (it
  cannot finish the handshake); the key holder presenting the same dates does;
- a clock set to 2099 by a fake NTP server (a real UDP responder) drops no pins.
The adapted expiry tests (floor past `expires`) are in test_device_tls.py and
test_attack_matrix.py.
"""
import datetime
import os
import socket
import struct
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_der_x509_certificate

from support.attack_servers import ForgedKeyServer, forged_leaf
from support.scenario import run_client
from support.servers import TLSServer

UTC = datetime.timezone.utc
BOGUS = "sha256/" + "A" * 43 + "="


def genuine_key(pki):
    return serialization.load_pem_private_key(pki.genuine.key_pem, None)


def pem(der):
    return load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def serve_leaf(pki, tmp_path, der, key_pem, name):
    chain = tmp_path / (name + ".chain.pem")
    chain.write_bytes(pem(der) + pki.intermediate.cert_pem.bytes())
    key = tmp_path / (name + ".key.pem")
    key.write_bytes(key_pem)
    return TLSServer(str(chain), str(key), name=name)  # started by `with`


def floor_file(tmp_path):
    return tmp_path / "certpin.floor"


def test_genuine_renewal_moves_the_floor_once(runtime, pki, tmp_path):
    # The server renews its certificate (same key, a fresh notBefore): after a
    # passed check the floor is that day; a second connection writes nothing.
    day = datetime.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(days=1)
    der = forged_leaf(genuine_key(pki).public_key(), pki.intermediate, day)
    with serve_leaf(pki, tmp_path, der, pki.genuine.key_pem, "renewed") as s:
        out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], floor="2026-01-01", expires="2099-01-01")
        assert out["ok"], out
        assert out["floor_after"] == day.date().isoformat(), out
        st = os.stat(floor_file(tmp_path))
        out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], floor=day.date().isoformat(),
                         expires="2099-01-01")
        assert out["ok"] and out["floor_after"] == day.date().isoformat(), out
    # run_client rewrote the floor file itself (the same text); the library did not touch it again
    assert not os.path.exists(str(floor_file(tmp_path)) + ".tmp")
    assert os.stat(floor_file(tmp_path)).st_size == st.st_size


@pytest.mark.parametrize("cadata", [False, True])
def test_forged_certificate_with_the_genuine_key_does_not_move_the_floor(runtime, pki, tmp_path, cadata):
    # The attacker copies the genuine public key into a certificate dated 2099
    # (here issued by a CA the device trusts, for the cadata case). It cannot
    # sign the handshake with that key, so the handshake fails, and the floor
    # (judged by the pins' own notBefore only after a passed check) stays.
    attacker_key = serialization.load_pem_private_key(pki.rogue_leaf.key_pem, None)
    der = forged_leaf(genuine_key(pki).public_key(), pki.rogue, datetime.datetime(2099, 1, 1, tzinfo=UTC))
    ca = [pki.path("root.der"), pki.path("rogue-root.der")] if cadata else None
    with ForgedKeyServer([der], attacker_key) as s:
        out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], floor="2026-03-01",
                         expires="2026-12-31", cadata=ca)
    assert s.hellos == 1, "the client never reached the forged server"
    assert out["ok"] is False, out
    assert out["floor_after"] == "2026-03-01", out
    if runtime.name == "micropython" and not cadata:
        # The pin check inside the handshake MATCHED (else this were a PinError):
        # only the handshake's own signature check stopped the forgery.
        assert out["type"] != "PinError" and out.get("oserror"), out
    elif cadata:
        # mbedTLS/OpenSSL may also refuse a certificate not valid yet by the clock
        assert out["type"] == "PinError" or out.get("oserror"), out
    # The key holder presenting the same dates does move it (the control).
    der = forged_leaf(genuine_key(pki).public_key(), pki.intermediate, datetime.datetime(2099, 1, 1, tzinfo=UTC))
    with serve_leaf(pki, tmp_path, der, pki.genuine.key_pem, "holder-2099") as s:
        out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], floor="2026-03-01", expires="2026-12-31")
    assert out["ok"] and out["floor_after"] == "2099-01-01", out


class FakeNTP:
    """A real NTP server on 127.0.0.1 (UDP) that answers `when` to every query."""

    def __init__(self, when):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.secs = int((when - datetime.datetime(1900, 1, 1, tzinfo=UTC)).total_seconds())
        self.queries = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                q, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(q) < 48:
                continue
            self.queries += 1
            ts = struct.pack("!II", self.secs & 0xFFFFFFFF, 0)
            reply = bytes([0x24, 1, 6, 0xEC]) + bytes(20) + q[40:48] + ts + ts  # v4 server, stratum 1
            self.sock.sendto(reply, addr)

    def stop(self):
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@pytest.mark.parametrize("cadata", [False, True])
def test_fake_ntp_far_in_the_future_does_not_drop_pins(runtime, pki, serve, tmp_path, cadata):
    # The attacker answers NTP with 2099 and serves a certificate from a CA in
    # cadata. Before issue 8 the clock expired the pinset and CA validation
    # alone let the attacker in; now the floor (before `expires`) decides.
    ntp = FakeNTP(datetime.datetime(2099, 6, 1, tzinfo=UTC))
    try:
        rogue = serve(pki.rogue_leaf)
        ca = [pki.path("root.der"), pki.path("rogue-root.der")] if cadata else None
        out = run_client(runtime, tmp_path, rogue.port, [pki.genuine.pin, BOGUS], expires="2026-12-31",
                         floor="2026-06-01", cadata=ca, ntp=["127.0.0.1", ntp.port])
    finally:
        ntp.stop()
    assert ntp.queries == 1 and out["ntp_date"] == [2099, 6, 1], out
    assert out["ok"] is False and out["type"] == "PinError", out
    assert [r["reason"] for r in out["failures"]] == ["pin_mismatch"], out
    assert rogue.app_bytes == b""
    assert out["floor_after"] == "2026-06-01"
