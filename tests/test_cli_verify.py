"""certpin verify against live TLS servers on 127.0.0.1."""
import base64
import datetime
import json
import socket

import pytest

from support.cli import run, run_subprocess

SPARE = "sha256/" + base64.b64encode(b"\x07" * 32).decode()
SPARE2 = "sha256/" + base64.b64encode(b"\x08" * 32).decode()


def soon(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def pinset(tmp_path, hosts, expires=None, name="pins.json"):
    doc = {"format": 1, "serial": 1, "hosts": hosts}
    if expires:
        doc["expires"] = expires
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_genuine_server_accepted(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}}, expires=soon(120))
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem"), "--json")
    assert r.status == 0, r
    report = r.json()
    assert report["ok"] is True and report["device_library"] is True
    (h,) = report["hosts"]
    assert h["status"] == "accepted" and h["verified"] is True
    assert h["matched_pin"] == pki.genuine.pin and h["matched_depth"] == 0
    assert h["backup_pins"] == [SPARE]
    assert h["pinset_days_left"] == 120 and h["cert_days_left"] > 1000
    assert h["warnings"] == []
    assert [c["spki_sha256"] for c in h["chain"]][:2] == [pki.genuine.pin, pki.intermediate_pin]


def test_genuine_text_report(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem"))
    assert r.status == 0, r
    assert "ok           localhost: %s matched at depth 0" % pki.genuine.pin in r.out
    assert "backup pin(s) not in the chain: " + SPARE in r.out
    assert "1 accepted, 0 refused" in r.out


def test_rogue_ca_trusted_with_cafile_is_refused_by_the_pins(capsys, tmp_path, pki, serve):
    s = serve(pki.rogue_leaf)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("rogue-root.pem"), "--json")
    assert r.status == 1, r
    (h,) = r.json()["hosts"]
    assert h["verified"] is True  # the CA check passed: only the pins refuse it
    assert h["status"] == "refused" and h["matched_pin"] is None
    assert h["backup_pins"] == []  # the spare rule is judged against the genuine chain only
    assert pki.rogue_leaf.pin in h["error"] and pki.genuine.pin in h["error"]
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("rogue-root.pem"))
    assert r.status == 1 and r.out.startswith("REFUSED      localhost: no configured pin matched")


def test_closed_port_is_unreachable(capsys, tmp_path, pki):
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    port = closed_port()
    r = run(capsys, "verify", path, "--connect-to", "::127.0.0.1:%d" % port)
    assert r.status == 1
    assert "UNREACHABLE  localhost: cannot connect to 127.0.0.1:%d: connection refused by 127.0.0.1:%d" % (
        port, port) in r.out
    assert "Traceback" not in r.err


def test_intermediate_pin_counts_only_with_ca_validation(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.intermediate_pin, SPARE]}})
    # (issue 18: --cafile no longer makes verify model a CA-validating device; --cadata does)
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cadata", pki.path("root.pem"), "--json")
    assert r.status == 0, r
    (h,) = r.json()["hosts"]
    assert h["matched_depth"] == 1 and any("cadata" in w for w in h["warnings"])
    # A device without cadata: leaf only, whether or not this machine's trust store verifies the chain.
    for extra in ([], ["--cafile", pki.path("root.pem")]):
        r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--json", *extra)
        assert r.status == 1, (extra, r)
        (h,) = r.json()["hosts"]
        assert h["status"] == "refused" and h["device"] == "leaf-only"
        assert "only a device that validates the chain" in h["error"] and "--cadata" in h["error"]
    # --leaf-only judges as a device without cadata even though the chain verifies.
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem"), "--leaf-only")
    assert r.status == 1 and "REFUSED" in r.out


def test_root_pin_with_cadata(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.root_pin, SPARE]}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cadata", pki.path("root.pem"), "--json")
    assert r.status == 0, r
    assert r.json()["hosts"][0]["matched_depth"] == 2  # the trust anchor, as a device with cadata sees it


def test_attacker_with_genuine_intermediate_refused(capsys, tmp_path, pki, serve):
    s = serve(pki.attacker_with_genuine_intermediate)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.intermediate_pin, SPARE]}})
    for extra in ([], ["--cafile", pki.path("root.pem")], ["--cafile", pki.path("rogue-root.pem")],
                  ["--cadata", pki.path("root.pem")], ["--cadata", pki.path("rogue-root.pem")]):
        r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, *extra)
        assert r.status == 1, (extra, r)


def test_unverified_leaf_pin_is_accepted_with_a_warning(capsys, tmp_path, pki, serve):
    # A device without cadata checks the leaf only; verify agrees, and says the chain did not verify.
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--json")
    assert r.status == 0, r
    (h,) = r.json()["hosts"]
    assert h["verified"] is False and h["verify_error"] and any("does not verify" in w for w in h["warnings"])
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--strict")
    assert r.status == 1 and "--strict" in r.out


def test_no_real_backup_pin_is_a_warning(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    # Both pins are in the served chain: neither is a spare.
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, pki.intermediate_pin]}})
    args = ["verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem")]
    r = run(capsys, *args, "--json")
    assert r.status == 0
    (h,) = r.json()["hosts"]
    assert h["backup_pins"] == [] and any("no backup pin" in w for w in h["warnings"])
    assert run(capsys, *args, "--strict").status == 1


def test_pinset_expiry_warning(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}}, expires=soon(10))
    args = ["verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem")]
    r = run(capsys, *args)
    assert r.status == 0 and "the pinset expires in 10 days" in r.out
    assert run(capsys, *args, "--strict").status == 1
    assert run(capsys, *args, "--strict", "--warn-days", "5").status == 0


def test_report_only_mismatch_is_accepted_with_warning(capsys, tmp_path, pki, serve):
    s = serve(pki.rogue_leaf)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE], "report_only": True}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--json")
    assert r.status == 0, r
    (h,) = r.json()["hosts"]
    assert h["status"] == "report-only" and h["warnings"]


def test_many_hosts_concurrently_with_progress(capsys, tmp_path, pki, serve):
    good = serve(pki.genuine)
    hosts = {"localhost": {"pins": [pki.genuine.pin, SPARE]},
             "127.0.0.1": {"pins": [pki.genuine.pin, SPARE]}}
    for i in range(2, 8):  # nothing listens there (the server is bound to 127.0.0.1 only)
        hosts["127.0.0.%d" % i] = {"pins": [pki.genuine.pin, SPARE]}
    path = pinset(tmp_path, hosts)
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % good.port, "--cafile", pki.path("root.pem"), "--timeout", "3")
    assert r.status == 1
    assert "[8/8]" in r.err  # progress on stderr
    assert "ok           localhost" in r.out and "ok           127.0.0.1" in r.out
    assert r.out.count("UNREACHABLE") == 6 and "UNREACHABLE  127.0.0.7: cannot connect to 127.0.0.7" in r.out
    assert "2 accepted, 6 refused or unreachable" in r.out


def test_host_override_keeps_sni_and_entry(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, "--connect-to", "::127.0.0.1:%d" % s.port, "--cafile", pki.path("root.pem"),
            "--json")
    assert r.status == 0, r
    assert r.json()["hosts"][0]["verified"] is True


def test_bad_pinset_files(capsys, tmp_path):
    r = run(capsys, "verify", str(tmp_path / "none.json"))
    assert r.status == 2 and "no such file" in r.err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "hosts": {"a.example.com": {"pins": ["sha256/nope"]}}}))
    r = run(capsys, "verify", str(bad))
    assert r.status == 2 and "a device would refuse this pinset" in r.err and "lint" in r.err


@pytest.mark.parametrize("leaf, cafile, status", [("genuine", "root.pem", 0), ("rogue_leaf", "rogue-root.pem", 1)])
def test_end_to_end_subprocess(tmp_path, pki, serve, leaf, cafile, status):
    s = serve(getattr(pki, leaf))
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run_subprocess("verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path(cafile))
    assert r.status == status, r
    assert "Traceback" not in r.err


def test_closed_port_end_to_end(tmp_path, pki):
    path = pinset(tmp_path, {"127.0.0.1": {"pins": [pki.genuine.pin, SPARE]}})
    r = run_subprocess("verify", path, "--connect-to", ":::%d" % closed_port(), "--json")
    assert r.status == 1
    (h,) = json.loads(r.out)["hosts"]
    assert h["status"] == "unreachable" and "connection refused" in h["error"]


def test_bad_cafile_is_a_usage_error_not_per_host(capsys, tmp_path, pki):
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, "--cafile", str(tmp_path / "none.pem"))
    assert r.status == 2 and "--cafile" in r.err and r.out == ""


# ---------------------------------------------------------------- issue 18: no false "ok"


def test_an_expired_pinset_is_a_failure(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}}, expires=soon(-340))
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port)
    assert r.status == 1, r
    assert "FAILED" in r.out and "expired 340 days ago" in r.out and "the pinset has expired" in r.out
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--json")
    doc = r.json()
    assert r.status == 1 and doc["ok"] is False and doc["pinset_errors"] and doc["hosts"][0]["accepted"] is True


def test_a_ca_pin_alone_fails_unless_the_device_has_cadata(capsys, tmp_path, pki, serve):
    """The README's device has no cadata: a host whose only matching pin is a CA certificate is refused."""
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.root_pin, pki.intermediate_pin]}})
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cafile", pki.path("root.pem"))
    assert r.status == 1 and r.out.startswith("REFUSED      localhost: "), r
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cadata", pki.path("root.pem"))
    assert r.status == 0 and "matched at depth" in r.out, r
    # the CA the device is given decides: another one refuses the handshake
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cadata", pki.path("rogue-root.pem"), "--json")
    assert r.status == 1 and "does not verify against --cadata" in r.json()["hosts"][0]["error"], r
    # DER cadata, as a device is given it
    r = run(capsys, "verify", path, "--connect-to", ":::%d" % s.port, "--cadata", pki.path("root.der"))
    assert r.status == 0, r


@pytest.mark.parametrize("cadata", [False, True])
def test_a_typo_in_the_pinned_name_is_a_failure(capsys, tmp_path, pki, serve, cadata):
    s = serve(pki.genuine)
    path = pinset(tmp_path, {"locahlost": {"pins": [pki.genuine.pin, SPARE]}})
    extra = ["--cadata", pki.path("root.pem")] if cadata else []
    r = run(capsys, "verify", path, "--connect-to", "::127.0.0.1:%d" % s.port, "--json", *extra)
    assert r.status == 1, r
    (h,) = r.json()["hosts"]
    assert h["status"] == "refused" and h["matched_pin"] is None
    if cadata:
        assert "does not verify against --cadata" in h["error"] and "locahlost" in h["error"], h
    else:
        assert "not valid for locahlost" in h["error"] and "localhost" in h["name_error"], h
    # the right name at the same address is fine, an IP literal too (the leaf names 127.0.0.1)
    ok = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]},
                           "127.0.0.1": {"pins": [pki.genuine.pin, SPARE]}}, name="ok.json")
    r = run(capsys, "verify", ok, "--connect-to", "::127.0.0.1:%d" % s.port, *extra)
    assert r.status == 0, r


def test_an_api_and_an_mqtt_broker_on_their_own_ports_in_one_run(capsys, tmp_path, pki, serve):
    api, broker, rogue = serve(pki.genuine), serve(pki.genuine), serve(pki.rogue_leaf)
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]},
                             "127.0.0.1": {"pins": [pki.genuine.pin, SPARE], "ports": [8883, 443]}})
    rules = ["--connect-to", "localhost:443:127.0.0.1:%d" % api.port,
             "--connect-to", "127.0.0.1:8883:127.0.0.1:%d" % broker.port,
             "--connect-to", "127.0.0.1:443:127.0.0.1:%d" % rogue.port]
    r = run(capsys, "verify", path, *rules, "--json")
    assert r.status == 1, r
    got = {(h["host"], h["port"]): (h["status"], h["address"]) for h in r.json()["hosts"]}
    assert got == {("localhost", 443): ("accepted", "127.0.0.1:%d" % api.port),
                   ("127.0.0.1", 8883): ("accepted", "127.0.0.1:%d" % broker.port),
                   ("127.0.0.1", 443): ("refused", "127.0.0.1:%d" % rogue.port)}, got
    r = run(capsys, "verify", path, *rules)
    assert "ok           localhost: " in r.out and "ok           127.0.0.1:8883: " in r.out, r
    assert "REFUSED      127.0.0.1:443: " in r.out


@pytest.mark.parametrize("argv, words", [
    (["--host", "127.0.0.1"], "--host/--port were replaced by --connect-to"),
    (["--port", "8443"], "--connect-to ::ADDR:8443"),
    (["--connect-to", "a:b"], "4 fields"),
    (["--cadata", "x.pem", "--leaf-only"], "contradict"),
])
def test_replaced_and_wrong_flags_are_usage_errors(capsys, tmp_path, pki, argv, words):
    path = pinset(tmp_path, {"localhost": {"pins": [pki.genuine.pin, SPARE]}})
    r = run(capsys, "verify", path, *argv)
    assert r.status == 2 and words in r.err and r.err.startswith("certpin: verify: "), r
