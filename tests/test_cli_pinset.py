"""certpin pinset new / add / from-server / lint."""
import base64
import datetime
import json
import os

import pytest

import certpin
from certpin_host import lint
from support.cli import run, run_subprocess

P1 = "sha256/" + base64.b64encode(b"\x01" * 32).decode()
P2 = "sha256/" + base64.b64encode(b"\x02" * 32).decode()
P3 = "sha256/" + base64.b64encode(b"\x03" * 32).decode()
C1 = "cert-sha256/" + base64.b64encode(b"\x04" * 32).decode()


def _update_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


# Two signing keys: a pinset without "update", or with a single key, gets a lint warning (issue 8).
UPDATE = {"keys": [_update_key(), _update_key()], "threshold": 1}


def soon(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def load(path):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- new


def test_new_writes_a_pinset_the_device_loads(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "new", path, "API.Example.com.", "--pin", P1, "--pin", P2, "--expires", soon(100))
    assert r.status == 0, r
    text = open(path).read()
    assert text.endswith("}\n") and text.startswith('{\n  "format": 1,\n  "serial": 1,')
    data = json.loads(text)
    assert data == {"format": 1, "serial": 1, "issued": soon(0), "expires": soon(100),
                    "hosts": {"api.example.com": {"pins": [P1, P2]}}}
    ps = certpin.loads(text)
    assert certpin.check is not None and ps is not None
    assert run(capsys, "pinset", "lint", path).status == 0


def test_new_refuses_a_single_pin(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    for argv in (["--pin", P1], ["--pin", P1, "--pin", P1]):
        r = run(capsys, "pinset", "new", path, "api.example.com", *argv)
        assert r.status == 2 and "backup" in r.err, r
        assert not os.path.exists(path)
    r = run(capsys, "pinset", "new", path, "api.example.com", "--pin", P1, "--allow-single-pin")
    assert r.status == 0 and load(path)["hosts"]["api.example.com"]["pins"] == [P1]
    assert "lint: error: api.example.com: only 1 distinct valid pin" in r.err  # written, but flagged


def test_new_refuses_to_overwrite(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2).status == 0
    before = open(path).read()
    r = run(capsys, "pinset", "new", path, "b.example.com", "--pin", P1, "--pin", P2)
    assert r.status == 2 and "already exists" in r.err and "--force" in r.err
    assert open(path).read() == before
    r = run(capsys, "pinset", "new", path, "b.example.com", "--pin", P1, "--pin", P2, "--force")
    assert r.status == 0 and list(load(path)["hosts"]) == ["b.example.com"]


def test_new_flags_and_key_files(capsys, tmp_path, pki):
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "new", path, "example.org", "--pin", P1, "--key", pki.path("genuine.key.pem"),
            "--subdomains", "--report-only")
    assert r.status == 0, r
    assert load(path)["hosts"]["example.org"] == {"pins": [P1, pki.genuine.pin], "subdomains": True,
                                                   "report_only": True}
    assert "lint: warning: example.org: \"report_only\": true" in r.err


@pytest.mark.parametrize("argv, words", [
    (["--pin", "sha256//" + P1[7:], "--pin", P2], "curl"),
    (["--pin", "ab" * 32, "--pin", P2], "hex SHA-256 fingerprint"),
    (["--pin", "sha256/" + base64.b64encode(b"x" * 20).decode(), "--pin", P2], "SHA-1"),
    (["--pin", P1[7:], "--pin", P2], "no prefix"),
    (["--pin", P1, "--pin", P2, "--expires", "2020-01-01"], "not in the future"),
    (["--pin", P1, "--pin", P2, "--expires", "30/06/2027"], "YYYY-MM-DD"),
])
def test_new_rejects_bad_input(capsys, tmp_path, argv, words):
    r = run(capsys, "pinset", "new", str(tmp_path / "p.json"), "api.example.com", *argv)
    assert r.status == 2, r
    assert words in r.err and r.err.startswith("certpin: pinset: ")


@pytest.mark.parametrize("host", ["*.example.com", "exa mple.com", "https://example.com", "bad-.example.com"])
def test_new_rejects_bad_hosts(capsys, tmp_path, host):
    r = run(capsys, "pinset", "new", str(tmp_path / "p.json"), host, "--pin", P1, "--pin", P2)
    assert r.status == 2 and "host" in r.err, r


def test_new_refuses_subdomains_on_public_suffix(capsys, tmp_path):
    r = run(capsys, "pinset", "new", str(tmp_path / "p.json"), "co.uk", "--pin", P1, "--pin", P2, "--subdomains")
    assert r.status == 2 and "public suffix" in r.err


def test_ip_literal_host(capsys, tmp_path):
    path = str(tmp_path / "p.json")
    assert run(capsys, "pinset", "new", path, "127.0.0.1", "--pin", P1, "--pin", P2).status == 0
    assert list(load(path)["hosts"]) == ["127.0.0.1"]


# ---------------------------------------------------------------- add


def test_add_adds_replaces_and_bumps_serial(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2).status == 0
    r = run(capsys, "pinset", "add", path, "b.example.com", "--pin", P2, "--pin", P3)
    assert r.status == 0, r
    assert "serial 1 -> 2" in r.out and "added" in r.out
    data = load(path)
    assert data["serial"] == 2 and set(data["hosts"]) == {"a.example.com", "b.example.com"}
    # (issue 18) an existing host: the pins are appended, as OkHttp's add() does; --replace replaces the entry
    r = run(capsys, "pinset", "add", path, "A.EXAMPLE.COM", "--pin", P3, "--pin", P1, "--expires", soon(50))
    assert r.status == 0 and "appended to host a.example.com: 1 new pin(s), 3 in all" in r.out, r
    data = load(path)
    assert data["serial"] == 3 and data["expires"] == soon(50)
    assert data["hosts"]["a.example.com"] == {"pins": [P1, P2, P3]}
    r = run(capsys, "pinset", "add", path, "a.example.com", "--pin", P3, "--pin", C1, "--replace")
    assert r.status == 0 and "replaced host a.example.com" in r.out, r
    data = load(path)
    assert data["serial"] == 4 and data["hosts"]["a.example.com"] == {"pins": [P3, C1]}
    assert list(data["hosts"]) == sorted(data["hosts"])  # stable order
    certpin.loads(open(path).read())


def test_add_one_spare_to_a_host_and_ports(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2, "--port", "8883").status == 0
    assert load(path)["hosts"]["a.example.com"] == {"pins": [P1, P2], "ports": [8883]}
    # one pin is enough when the host already has its backup
    r = run(capsys, "pinset", "add", path, "a.example.com", "--pin", P3, "--port", "443", "--report-only")
    assert r.status == 0, r
    assert load(path)["hosts"]["a.example.com"] == {"pins": [P1, P2, P3], "report_only": True, "ports": [8883, 443]}
    # --replace takes the flags as given, and a single pin is then refused again
    r = run(capsys, "pinset", "add", path, "a.example.com", "--pin", P3, "--replace")
    assert r.status == 2 and "backup" in r.err and load(path)["serial"] == 2, r
    r = run(capsys, "pinset", "add", path, "b.example.com", "--pin", P1, "--pin", P2, "--port", "0")
    assert r.status == 2 and "port" in r.err, r
    certpin.loads(open(path).read())


def test_add_without_serial_starts_at_one(capsys, tmp_path):
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"format": 1, "hosts": {"a.example.com": {"pins": [P1, P2]}}}))
    assert run(capsys, "pinset", "add", str(path), "b.example.com", "--pin", P1, "--pin", P3).status == 0
    assert load(path)["serial"] == 1


def test_add_refuses_missing_or_broken_file(capsys, tmp_path):
    r = run(capsys, "pinset", "add", str(tmp_path / "none.json"), "a.example.com", "--pin", P1, "--pin", P2)
    assert r.status == 2 and "no such file" in r.err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run(capsys, "pinset", "add", str(bad), "a.example.com", "--pin", P1, "--pin", P2)
    assert r.status == 2 and "not valid JSON" in r.err
    assert bad.read_text() == "{not json"


def test_add_refuses_single_pin(capsys, tmp_path):
    path = str(tmp_path / "pins.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2).status == 0
    r = run(capsys, "pinset", "add", path, "b.example.com", "--pin", P1)
    assert r.status == 2 and "backup" in r.err
    assert load(path)["serial"] == 1


# ---------------------------------------------------------------- from-server


def test_from_server_leaf_with_backups(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    b1, b2 = str(tmp_path / "b1.pem"), str(tmp_path / "b2.pem")
    assert run(capsys, "keygen", b1).status == 0
    b1_pin = run(capsys, "pin", b1).out.splitlines()[1].split()[1]
    assert run(capsys, "keygen", b2, "--type", "rsa").status == 0
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("root.pem"),
            "--backup", b1, "--backup", b2, "--expires", soon(90))
    assert r.status == 0, r
    data = load(path)
    pins = data["hosts"]["localhost"]["pins"]
    assert pins[0] == pki.genuine.pin and len(pins) == 3 and b1_pin in pins
    assert data["serial"] == 1 and data["expires"] == soon(90)
    assert run(capsys, "pinset", "lint", path).status == 0


def test_from_server_levels(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    b1 = str(tmp_path / "b1.pem")
    run(capsys, "keygen", b1)
    expected = {"intermediate": pki.intermediate_pin, "root": pki.root_pin}
    for level, pin in expected.items():
        path = str(tmp_path / (level + ".json"))
        r = run(capsys, "pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("root.pem"),
                "--backup", b1, "--level", level)
        assert r.status == 0, r
        assert load(path)["hosts"]["localhost"]["pins"][0] == pin
        assert "cadata" in r.err  # says plainly that CA pins need cadata on the device


def test_from_server_updates_existing_file(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    b1 = str(tmp_path / "b1.pem")
    run(capsys, "keygen", b1)
    path = str(tmp_path / "pins.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2).status == 0
    r = run(capsys, "pinset", "from-server", path, "127.0.0.1:%d" % s.port, "--cafile", pki.path("root.pem"),
            "--backup", b1)
    assert r.status == 0, r
    data = load(path)
    assert data["serial"] == 2 and set(data["hosts"]) == {"a.example.com", "127.0.0.1"}


def test_from_server_connect_to_and_ports(capsys, tmp_path, pki, serve):
    """--connect-to (issue 18, replaces --connect): the pinned name is checked at another address; a port
    other than 443 is written as the host's "ports" (what `certpin verify` checks)."""
    s = serve(pki.genuine)
    b1 = str(tmp_path / "b1.pem")
    run(capsys, "keygen", b1)
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "from-server", path, "localhost:8883", "--connect-to",
            "localhost:8883:127.0.0.1:%d" % s.port, "--cafile", pki.path("root.pem"), "--backup", b1)
    assert r.status == 0, r
    entry = load(path)["hosts"]["localhost"]
    assert entry["pins"][0] == pki.genuine.pin and entry["ports"] == [8883]
    r = run(capsys, "verify", path, "--connect-to", "localhost:8883:127.0.0.1:%d" % s.port, "--json")
    assert r.status == 0 and [h["port"] for h in r.json()["hosts"]] == [8883], r
    r = run(capsys, "pinset", "from-server", path, "localhost", "--connect", "127.0.0.1", "--backup", b1)
    assert r.status == 2 and "--connect-to localhost:443:127.0.0.1:443" in r.err, r


def test_from_server_refuses_unverified_and_missing_backup(capsys, tmp_path, pki, serve):
    s = serve(pki.rogue_leaf)
    b1 = str(tmp_path / "b1.pem")
    run(capsys, "keygen", b1)
    path = str(tmp_path / "pins.json")
    r = run(capsys, "pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("root.pem"),
            "--backup", b1)
    assert r.status == 2 and "did not verify" in r.err
    r = run(capsys, "pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("rogue-root.pem"))
    assert r.status == 2 and "--backup" in r.err
    assert not os.path.exists(path)


def test_from_server_refuses_backup_that_is_in_use(capsys, tmp_path, pki, serve):
    s = serve(pki.genuine)
    r = run(capsys, "pinset", "from-server", str(tmp_path / "p.json"), "localhost:%d" % s.port,
            "--cafile", pki.path("root.pem"), "--backup", pki.path("genuine.key.pem"))
    assert r.status == 2 and "not in use" in r.err


def test_from_server_end_to_end(tmp_path, pki, serve):
    s = serve(pki.genuine)
    b1 = str(tmp_path / "b1.pem")
    assert run_subprocess("keygen", b1).status == 0
    path = str(tmp_path / "pins.json")
    r = run_subprocess("pinset", "from-server", path, "localhost:%d" % s.port, "--cafile", pki.path("root.pem"),
                       "--backup", b1, "--expires", soon(60))
    assert r.status == 0, r
    assert run_subprocess("pinset", "lint", path).status == 0


# ---------------------------------------------------------------- lint


def lint_text(capsys, tmp_path, obj_or_text, *flags):
    path = tmp_path / "l.json"
    path.write_text(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    r = run(capsys, "pinset", "lint", str(path), "--json", *flags)
    return r, r.json()["findings"]


def good(**hosts):
    return {"format": 1, "serial": 3, "expires": soon(200), "update": UPDATE,
            "hosts": hosts or {"api.example.com": {"pins": [P1, P2]}}}


def test_lint_clean(capsys, tmp_path):
    r, findings = lint_text(capsys, tmp_path, good())
    assert r.status == 0 and findings == [] and r.json()["ok"] is True
    path = tmp_path / "l.json"
    r = run(capsys, "pinset", "lint", str(path))
    assert r.status == 0 and "0 error(s), 0 warning(s)" in r.out


def has(findings, level, words, host=None):
    return any(f["level"] == level and words in f["message"] and (host is None or f["host"] == host)
               for f in findings)


@pytest.mark.parametrize("entry, words", [
    ({"pins": [P1]}, "distinct valid pin"),
    ({"pins": [P1, P1]}, "distinct valid pin"),
    ({"pins": ["sha256//" + P1[7:], P2]}, "curl"),
    ({"pins": ["ab:" * 31 + "ab", P2]}, "hex SHA-256 fingerprint"),
    ({"pins": ["a1" * 20, P2]}, "hex SHA-1"),
    ({"pins": ["sha256/" + base64.b64encode(b"y" * 20).decode(), P2]}, "SHA-1 length"),
    ({"pins": ["sha1/" + base64.b64encode(b"y" * 20).decode(), P2]}, "SHA-1 pin"),
    ({"pins": [P1[7:], P2]}, "no prefix"),
    ({"pins": ["sha256/" + "cd" * 32, P2]}, "hex digest"),
    ({"pins": ["sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", P2]}, "not valid base64"),
    ({"pins": ["sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=", P2]}, "not canonical base64"),
    ({"pins": ["sha256/" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(), P2]}, "base64url"),
    ({"pins": [P1, P2], "subdomain": True}, "unknown key"),
    ({"pins": [P1, P2], "subdomains": "yes"}, "true or false"),
    ({"pins": []}, "empty"),
    ({"pins": P1}, "list"),
])
def test_lint_host_errors(capsys, tmp_path, entry, words):
    r, findings = lint_text(capsys, tmp_path, good(**{"api.example.com": entry}))
    assert r.status == 1, findings
    assert has(findings, "error", words, "api.example.com"), findings


@pytest.mark.parametrize("host, words", [
    ("API.example.com", "not lowercase"),
    ("api.example.com.", "trailing dot"),
    ("*.example.com", "wildcard"),
    ("exa_mple.com", "not a valid DNS name"),
    ("api.example.com:443", "port"),
    ("999.1.1.1", "neither"),
])
def test_lint_invalid_hostnames(capsys, tmp_path, host, words):
    r, findings = lint_text(capsys, tmp_path, good(**{host: {"pins": [P1, P2]}}))
    assert r.status == 1
    assert has(findings, "error", words, host), findings


def test_lint_duplicate_hosts(capsys, tmp_path):
    r, findings = lint_text(capsys, tmp_path, good(**{"api.example.com": {"pins": [P1, P2]},
                                                      "API.Example.com.": {"pins": [P2, P3]}}))
    assert r.status == 1 and has(findings, "error", "same host"), findings
    text = '{"format": 1, "hosts": {"a.example.com": {"pins": ["%s", "%s"]}, "a.example.com": {"pins": ["%s", "%s"]}}}' % (
        P1, P2, P2, P3)
    r, findings = lint_text(capsys, tmp_path, text)
    assert r.status == 1 and has(findings, "error", "duplicate JSON key 'a.example.com'"), findings


def test_lint_expiry(capsys, tmp_path):
    past = good()
    past["expires"] = soon(-3)
    r, findings = lint_text(capsys, tmp_path, past)
    assert r.status == 1 and has(findings, "error", "in the past"), findings
    far = good()
    far["expires"] = soon(600)
    r, findings = lint_text(capsys, tmp_path, far)
    assert r.status == 0 and has(findings, "warning", "600 days away"), findings
    r, findings = lint_text(capsys, tmp_path, far, "--max-days", "700")
    assert findings == []
    r, findings = lint_text(capsys, tmp_path, far, "--strict")
    assert r.status == 1
    near = good()
    near["expires"] = soon(10)
    r, findings = lint_text(capsys, tmp_path, near)
    assert r.status == 0 and has(findings, "warning", "only 10 days away"), findings
    bad = good()
    bad["expires"] = "2027-02-30"
    r, findings = lint_text(capsys, tmp_path, bad)
    assert r.status == 1 and has(findings, "error", "expires"), findings


def test_lint_subdomains_on_public_suffix(capsys, tmp_path):
    # the maintained Public Suffix List (private section too: hobby-IoT dynamic DNS and free domains)
    for suffix in ("com", "co.uk", "github.io", "ddns.net", "eu.org", "duckdns.org", "kawasaki.jp"):
        r, findings = lint_text(capsys, tmp_path, good(**{suffix: {"pins": [P1, P2], "subdomains": True}}))
        assert r.status == 1 and has(findings, "error", "public suffix", suffix), findings
        assert has(findings, "error", "Public Suffix List", suffix)
    for name in ("example.co.uk", "mything.ddns.net", "foo.eu.org"):
        r, findings = lint_text(capsys, tmp_path, good(**{name: {"pins": [P1, P2], "subdomains": True}}))
        assert r.status == 0 and findings == [], (name, findings)


@pytest.mark.parametrize("suffix", ["ddns.net", "eu.org", "co.uk"])
def test_new_and_add_refuse_subdomains_on_the_public_suffix_list(capsys, tmp_path, suffix):
    path = str(tmp_path / "p.json")
    r = run(capsys, "pinset", "new", path, suffix, "--pin", P1, "--pin", P2, "--subdomains")
    assert r.status == 2 and "public suffix" in r.err, r
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", P1, "--pin", P2).status == 0
    r = run(capsys, "pinset", "add", path, suffix, "--pin", P1, "--pin", P2, "--subdomains")
    assert r.status == 2 and "public suffix" in r.err, r


def test_lint_ports(capsys, tmp_path):
    r, findings = lint_text(capsys, tmp_path, good(**{"mqtt.example.com": {"pins": [P1, P2], "ports": [8883, 443]}}))
    assert r.status == 0 and findings == [], findings
    for bad, words in (([], "1 to 16"), ([0], "not a port"), ([443, 443], "twice"), (["443"], "not a port"),
                       (443, "must be a list")):
        r, findings = lint_text(capsys, tmp_path, good(**{"mqtt.example.com": {"pins": [P1, P2], "ports": bad}}))
        assert r.status == 1 and has(findings, "error", words, "mqtt.example.com"), (bad, findings)
        assert has(findings, "error", "a device refuses this file"), findings  # the device loader agrees


def test_lint_report_only_and_missing_serial_expires_are_warnings(capsys, tmp_path):
    r, findings = lint_text(capsys, tmp_path, {"format": 1, "hosts": {"a.example.com": {"pins": [P1, P2],
                                                                                       "report_only": True}}})
    assert r.status == 0, findings
    assert has(findings, "warning", "report_only", "a.example.com")
    assert has(findings, "warning", "serial") and has(findings, "warning", "expires")


@pytest.mark.parametrize("doc, words", [
    ({"format": 2, "hosts": {"a.example.com": {"pins": [P1, P2]}}}, "\"format\" must be 1"),
    ({"hosts": {"a.example.com": {"pins": [P1, P2]}}}, "missing \"format\""),
    ({"format": 1, "serial": -1, "hosts": {"a.example.com": {"pins": [P1, P2]}}}, "serial"),
    ({"format": 1, "serial": 1, "hosts": {}}, "empty"),
    ({"format": 1, "serial": 1, "host": {}}, "unknown top-level key 'host'"),
    ([1, 2], "JSON object"),
    ("{\"format\": 1,", "not valid JSON"),
])
def test_lint_top_level_errors(capsys, tmp_path, doc, words):
    r, findings = lint_text(capsys, tmp_path, doc if not isinstance(doc, str) else doc)
    assert r.status == 1
    assert has(findings, "error", words), findings


def test_lint_runs_device_loader(capsys, tmp_path, monkeypatch):
    # Whatever the device library refuses, lint reports (even a rule lint itself lacks).
    def refuse(text):
        raise certpin.PinsetError("hosts.a.example.com.pins[0]: invented device rule")

    monkeypatch.setattr(certpin, "loads", refuse)
    r, findings = lint_text(capsys, tmp_path, good())
    assert r.status == 1
    assert has(findings, "error", "a device refuses this file (lint found no other problem): "
                                  "hosts.a.example.com.pins[0]: invented device rule"), findings


def test_lint_agrees_with_device_on_refusals(tmp_path):
    # Every file the device refuses must give at least one lint error.
    docs = [
        {"format": 1, "hosts": {"a.example.com": {"pins": ["sha256/" + "A" * 43 + "=", P2], "x": 1}}},
        {"format": 1, "expires": "2027-13-01", "hosts": {"a.example.com": {"pins": [P1, P2]}}},
        {"format": 1, "hosts": {"a.example.com": {"pins": ["md5/abc", P2]}}},
        {"format": "1", "hosts": {"a.example.com": {"pins": [P1, P2]}}},
        {"format": 1, "serial": True, "hosts": {"a.example.com": {"pins": [P1, P2]}}},
        {"format": 1, "hosts": {"a.example.com": {"pins": [P1, P2], "subdomains": 1}}},
        {"format": 1, "hosts": {"a.example.com": {"pins": [P1.lower(), P2]}}},
        {"format": 1, "hosts": {"a.example.com": {"pins": [P1 + " ", P2]}}},
        {"format": 1, "hosts": {"a.example.com": {"pins": ["sha256/" + P1[7:-1] + "==", P2]}}},
        {"format": 1, "hosts": {"": {"pins": [P1, P2]}, "a..b": {"pins": [P1, P2]}}},
        {"format": 1, "expires": "2027-1-1", "hosts": {"a.example.com": {"pins": [P1, P2]}}},
    ]
    for doc in docs:
        text = json.dumps(doc)
        with pytest.raises(certpin.Error):  # each of these is refused by the device ...
            certpin.loads(text)
        own = [f for f in lint.lint_pinset_text(text) if f.level == "error" and "a device refuses" not in f.message]
        assert own, doc  # ... and lint's own rules say why, specifically


@pytest.mark.parametrize("date", ["\uff12\uff10\uff12\uff17-\uff10\uff16-\uff13\uff10", "\u0662\u0660\u0662\u0667-06-30",
                                  "2027-06-30\n"])
def test_lint_and_flash_refuse_dates_a_device_refuses(capsys, tmp_path, date):
    # Fullwidth or Arabic-Indic digits: CPython's isdigit/int/\d take them,
    # MicroPython's do not, so a device refuses the file. Lint and flash must
    # say so instead of calling it clean (issue 9, item 5).
    from certpin_host.cmd_flash import check_pinset
    from certpin_host.errors import UserError

    doc = good()
    doc["expires"] = date
    with pytest.raises(certpin.PinsetError, match="expires"):
        certpin.loads(json.dumps(doc))
    r, findings = lint_text(capsys, tmp_path, doc)
    assert r.status == 1
    assert has(findings, "error", "ASCII digits"), findings
    path = tmp_path / "fw.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(UserError, match="device would refuse"):
        check_pinset(str(path), force=True, log=lambda m: None)


def test_lint_api_for_flash(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(good()))
    assert lint.lint_file(str(path)) == []
    findings = lint.lint_file(str(tmp_path / "missing.json"))
    assert findings[0].level == "error" and findings[0].host is None and "no such file" in findings[0].message
    f = lint.lint_pinset_text(json.dumps(good(**{"a.example.com": {"pins": [P1]}})))
    assert lint.has_errors(f) and f[0].host == "a.example.com"


def test_lint_missing_file_is_a_usage_error(capsys, tmp_path):
    r = run(capsys, "pinset", "lint", str(tmp_path / "nope.json"))
    assert r.status == 2 and "no such file" in r.err


def test_pins_whose_base64_starts_with_a_slash_are_valid(capsys, tmp_path):
    # 1 pin in 64 has base64 starting with "/": "sha256//..." with 44 characters after
    # "sha256/" is a valid pin, not curl's form (which has 45).
    slash = "sha256/" + base64.b64encode(b"\xfc" + b"\x00" * 31).decode()
    assert slash.startswith("sha256//")
    r, findings = lint_text(capsys, tmp_path, good(**{"a.example.com": {"pins": [slash, P2]}}))
    assert r.status == 0 and findings == [], findings
    certpin.loads(json.dumps(good(**{"a.example.com": {"pins": [slash, P2]}})))
    path = str(tmp_path / "p.json")
    assert run(capsys, "pinset", "new", path, "a.example.com", "--pin", slash, "--pin", P2).status == 0
    r, findings = lint_text(capsys, tmp_path, good(**{"a.example.com": {"pins": ["sha256//" + P1[7:] + ";sha256//" + P2[7:], P3]}}))
    assert r.status == 1 and has(findings, "error", "separated by ';'")


def test_pinset_without_subcommand_is_a_usage_error(capsys):
    r = run(capsys, "pinset")
    assert r.status == 2 and "missing subcommand" in r.err and "from-server" in r.err
