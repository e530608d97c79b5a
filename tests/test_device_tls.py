"""Pinned TLS on the device library, under CPython and the MicroPython unix port.

Every test is a real TLS handshake over loopback against servers with a
generated PKI (tests/support/pki.py). The same scenario script runs on both
runtimes (the `runtime` fixture).
"""
import pytest

from support.scenario import fresh, run_client
from support.servers import TLSServer

BOGUS = "sha256/" + "A" * 43 + "="


@pytest.fixture(scope="module")
def servers(pki):
    started = {}
    for leaf in (pki.genuine, pki.rogue_leaf, pki.attacker_with_genuine_intermediate):
        chain, key = leaf.write(pki.dir)
        started[leaf.name] = TLSServer(chain, key, name=leaf.name).start()
    yield started
    for s in started.values():
        s.stop()



def assert_refused(out, *fragments):
    assert out["ok"] is False, out
    assert out["type"] == "PinError", out
    for f in fragments:
        assert f in out["message"], (f, out["message"])


def test_successful_check_leaf_pin(runtime, servers, pki, tmp_path):
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS])
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]
    assert out["failures"] == []


def test_connect_helper(runtime, servers, pki, tmp_path):
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS], mode="connect")
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]


def test_unsuccessful_check_wrong_pins_names_everything(runtime, servers, pki, tmp_path):
    s = fresh(servers, "rogue")
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS])
    assert_refused(out, "localhost", pki.rogue_leaf.pin, pki.genuine.pin, BOGUS, "depth 0")
    assert s.app_bytes == b"", "the request reached a server whose pins did not match"
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is True and rec["host"] == "localhost"


def test_unpinned_host_is_refused_before_handshake(runtime, servers, pki, tmp_path):
    s = servers["genuine"]
    before = s.handshakes
    text = '{"format": 1, "hosts": {"api.example.com": {"pins": ["%s", "%s"]}}}' % (pki.genuine.pin, BOGUS)
    out = run_client(runtime, tmp_path, s.port, text=text)
    assert_refused(out, "'localhost' is not in the pinset", "api.example.com")
    assert s.handshakes == before


def test_rogue_ca_trusted_via_cadata_is_refused_by_pins(runtime, servers, pki, tmp_path):
    # The device trusts both CAs (as if the rogue CA were in a public trust
    # store); CA validation passes for the rogue certificate, only the pins refuse it.
    s = fresh(servers, "rogue")
    cadata = [pki.path("root.der"), pki.path("rogue-root.der")]
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, pki.intermediate_pin], cadata=cadata)
    assert_refused(out, "no configured pin matched", pki.rogue_leaf.pin)
    assert s.app_bytes == b""
    # ... and the genuine server passes under the same settings.
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, pki.intermediate_pin], cadata=cadata)
    assert out["ok"], out


@pytest.mark.parametrize("level", ["root", "intermediate"])
def test_ca_pins_need_cadata(runtime, servers, pki, tmp_path, level):
    pin = pki.root_pin if level == "root" else pki.intermediate_pin
    port = servers["genuine"].port
    out = run_client(runtime, tmp_path, port, [pin, BOGUS])
    assert_refused(out, "only the leaf", pin)
    out = run_client(runtime, tmp_path, port, [pin, BOGUS], cadata=[pki.path("root.der")])
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]


def test_cadata_as_bytearray(runtime, servers, pki, tmp_path):
    # The README promises bytes or bytearray; MicroPython's TLS takes only bytes
    # (a bytearray was a stray TypeError). The rogue server is still refused.
    cadata = [pki.path("root.der")]
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS], cadata=cadata,
                     cadata_bytearray=True)
    assert out["ok"], out
    s = fresh(servers, "rogue")
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], cadata=cadata, cadata_bytearray=True)
    assert_refused(out)
    assert s.app_bytes == b""


def test_attacker_leaf_with_genuine_intermediate(runtime, servers, pki, tmp_path):
    # Without cadata the genuine intermediate reaches the check at depth 1,
    # but only the leaf may match: refused.
    s = fresh(servers, "attacker-gi")
    out = run_client(runtime, tmp_path, s.port, [pki.intermediate_pin, BOGUS])
    assert_refused(out, pki.rogue_leaf.pin)
    # With cadata the chain does not validate: refused by CA validation.
    out = run_client(runtime, tmp_path, s.port, [pki.intermediate_pin, BOGUS], cadata=[pki.path("root.der")])
    assert out["ok"] is False and out["type"] == "PinError", out
    assert s.app_bytes == b""


@pytest.mark.parametrize("mode", ["deferred", "deferred_read", "asyncio"])
def test_deferred_handshake_refused(runtime, servers, pki, tmp_path, mode):
    s = fresh(servers, "rogue")
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], mode=mode)
    assert out["ok"] is False, out
    assert "PinError" in out["type"], out
    assert pki.rogue_leaf.pin in out["message"]
    assert s.app_bytes == b""


@pytest.mark.parametrize("mode", ["deferred", "asyncio"])
def test_deferred_handshake_genuine(runtime, servers, pki, tmp_path, mode):
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS], mode=mode)
    assert out["ok"], out
    assert "hello from genuine" in out["reply"]


def test_report_only_reports_and_goes_ahead(runtime, servers, pki, tmp_path):
    s = fresh(servers, "rogue")
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], report_only=True)
    assert out["ok"], out
    assert "hello from rogue" in out["reply"]
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is False
    assert pki.rogue_leaf.pin in rec["message"]


# Expiry is judged against the time floor (certpin.floor beside the pinset,
# docs/updates.md), never against the clock: these tests give the device a
# floor past `expires`. They used the raw clock before issue 8.
PAST_FLOOR = "2026-02-01"


def test_expired_pinset_without_cadata_keeps_enforcing(runtime, servers, pki, tmp_path):
    out = run_client(runtime, tmp_path, servers["rogue"].port, [pki.genuine.pin, BOGUS], expires="2026-01-31",
                     floor=PAST_FLOOR)
    assert_refused(out, pki.rogue_leaf.pin)
    reasons = [r["reason"] for r in out["failures"]]
    assert reasons == ["pinset_expired", "pin_mismatch"], out
    assert "2026-01-31" in out["failures"][0]["message"]
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS], expires="2026-01-31",
                     floor=PAST_FLOOR)
    assert out["ok"], out
    assert [r["reason"] for r in out["failures"]] == ["pinset_expired"]


def test_expired_pinset_with_cadata_falls_back_to_ca(runtime, servers, pki, tmp_path):
    root = [pki.path("root.der")]
    # Pins that no longer match (rotated key): CA validation alone now decides.
    out = run_client(runtime, tmp_path, servers["genuine"].port, [BOGUS, pki.rotated.pin], expires="2026-01-31", cadata=root,
                     floor=PAST_FLOOR)
    assert out["ok"], out
    assert [r["reason"] for r in out["failures"]] == ["pinset_expired"]
    # A certificate the CA did not issue is still refused.
    out = run_client(runtime, tmp_path, servers["rogue"].port, [BOGUS, pki.rotated.pin], expires="2026-01-31", cadata=root,
                     floor=PAST_FLOOR)
    assert out["ok"] is False and out["type"] == "PinError", out


def test_clock_far_ahead_does_not_expire_the_pinset(runtime, servers, pki, tmp_path):
    # A clock an attacker set to 2099 (unauthenticated NTP) with cadata trusting
    # a rogue CA: the floor is before `expires`, so the pins still refuse it.
    cadata = [pki.path("root.der"), pki.path("rogue-root.der")]
    s = fresh(servers, "rogue")
    out = run_client(runtime, tmp_path, s.port, [pki.genuine.pin, BOGUS], expires="2026-12-31", cadata=cadata,
                     fake_date=(2099, 1, 1), floor="2026-06-01")
    assert_refused(out, pki.rogue_leaf.pin)
    assert [r["reason"] for r in out["failures"]] == ["pin_mismatch"]
    assert s.app_bytes == b""


def test_unset_clock_does_not_judge_expiry(runtime, servers, pki, tmp_path):
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS],
                     expires="2026-01-31", fake_date=(2000, 1, 1))
    assert out["ok"], out
    assert out["failures"] == []


def test_future_expiry_is_silent(runtime, servers, pki, tmp_path):
    out = run_client(runtime, tmp_path, servers["genuine"].port, [pki.genuine.pin, BOGUS], expires="2099-12-31")
    assert out["ok"] and out["failures"] == [], out


def test_host_spelling_and_subdomain_entry(runtime, servers, pki, tmp_path):
    port = servers["genuine"].port
    out = run_client(runtime, tmp_path, port, [pki.genuine.pin, BOGUS], host="LocalHost.")
    assert out["ok"], out


def test_malformed_pinset_refused(runtime, servers, pki, tmp_path):
    text = '{"format": 1, "hosts": {"localhost": {"pins": ["%s"], "subdomain": true}}}' % pki.genuine.pin
    out = run_client(runtime, tmp_path, servers["genuine"].port, text=text)
    assert out["ok"] is False and out["type"] == "PinsetError", out
    assert "subdomain" in out["message"]


def test_cert_fingerprint_pin(runtime, servers, pki, tmp_path):
    from support.pki import cert_pin

    out = run_client(runtime, tmp_path, servers["genuine"].port, [cert_pin(pki.genuine.der), BOGUS])
    assert out["ok"], out
    out = run_client(runtime, tmp_path, servers["rogue"].port, [cert_pin(pki.genuine.der), BOGUS])
    assert_refused(out, cert_pin(pki.genuine.der))
