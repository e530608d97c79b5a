"""`certpin reports`: reads what devices reported, never trusts it, and with --live tells a
key rotation from an interception by asking the real servers (TLS servers on 127.0.0.1)."""
import json
import os

import pytest

from support.cli import run, run_subprocess
from test_journal import BACKUP, pinset
from test_journal import run as device_steps

GOOD = {"reason": "pin_mismatch", "host": "api.example.com", "port": 443, "enforced": True,
        "presented": ["sha256/" + "B" * 43 + "="], "pins": [BACKUP], "serial": 7, "version": "0.1.0",
        "count": 3, "first": "2026-06-01T12:00:00Z", "last": "2026-06-01T12:30:00Z", "clock": True,
        "device": "dev-1"}


def rec(**kw):
    r = dict(GOOD)
    r.update(kw)
    return r


def write(path, *lines):
    with open(str(path), "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def test_summary_per_host_and_key_with_devices_times_and_serials(capsys, tmp_path):
    f = write(tmp_path / "r.jsonl",
              [rec(), rec(device="dev-2", serial=8, first="2026-06-02T00:00:00Z", last="2026-06-03T00:00:00Z")],
              rec(presented=["sha256/" + "C" * 43 + "="], count=1),
              rec(reason="update_refused", rule="bad_signature", presented=[], port=None,
                  url="https://updates.example.com/f.jws", host="updates.example.com"))
    r = run(capsys, "reports", f)
    assert r.status == 1, r
    assert "4 record(s) from 2 device(s) in 1 file(s)" in r.out
    block = r.out.split("api.example.com  presented sha256/BBBB")[1].split("\n\n")[0]
    assert "6 failure(s) on 2 device(s) (dev-1, dev-2)" in block
    assert "2026-06-01T12:00:00Z .. 2026-06-03T00:00:00Z" in block and "serial(s) 7, 8" in block
    assert "update_refused (bad_signature)" in r.out
    j = run(capsys, "reports", f, "--json").json()
    assert j["records"] == 4 and j["skipped"] == 0 and j["devices"] == 2
    g = [g for g in j["groups"] if g["presented"] == GOOD["presented"][0]][0]
    assert g["devices"] == ["dev-1", "dev-2"] and g["count"] == 6 and g["serials"] == [7, 8]


def test_a_record_sent_twice_counts_once(capsys, tmp_path):
    # The device's first send was acknowledged too late; it sent the record again, grown.
    f = write(tmp_path / "r.jsonl", [rec(count=3)], [rec(count=5, last="2026-06-01T13:00:00Z")])
    j = run(capsys, "reports", f, "--json").json()
    assert j["records"] == 1 and j["groups"][0]["count"] == 5


HOSTILE = [
    "not json at all",
    "\x1b[2J\x1b[31mred",
    "[" * 100000,
    json.dumps(rec(host="evil\x1b[31m.example")),
    json.dumps(rec(device="\x1b]0;owned\x07")),
    json.dumps(rec(presented=["sha256/\x1b[31m" + "A" * 36 + "="])),
    json.dumps(rec(count="3")),
    json.dumps(rec(count=-1)),
    json.dumps(rec(count=10 ** 40)),
    json.dumps(rec(port=70000)),
    json.dumps(rec(first="2026-06-02T00:00:00Z", last="2026-06-01T00:00:00Z")),
    json.dumps(rec(first="yesterday")),
    json.dumps(rec(pins="sha256/x")),
    json.dumps(rec(presented=[GOOD["presented"][0]] * 17)),
    json.dumps(rec(url="http://x/" + "a" * 600)),
    json.dumps(rec(reason="Pin Mismatch!")),
    json.dumps({"reports": [GOOD]}),
    json.dumps(None),
    json.dumps("a string"),
    json.dumps(rec(enforced="yes")),
    json.dumps({k: v for k, v in GOOD.items() if k != "version"}),
]


def test_malformed_and_hostile_reports_are_skipped_with_a_count_never_printed(capsys, tmp_path):
    f = write(tmp_path / "r.jsonl", *HOSTILE)
    with open(f, "ab") as fh:
        fh.write(b"\xff\xfe binary \x00\x01\n")
        fh.write(json.dumps([GOOD, {"count": 1}]).encode() + b"\n")
    r = run(capsys, "reports", f)
    assert r.status == 1, r
    assert "1 record(s) from 1 device(s)" in r.out and "%d malformed report(s) skipped" % (len(HOSTILE) + 2) in r.out
    assert "\x1b" not in r.out + r.err and "owned" not in r.out and "evil" not in r.out
    assert "Traceback" not in r.err


def test_files_directories_and_exit_status(capsys, tmp_path):
    d = tmp_path / "collected"
    d.mkdir()
    write(d / "a.jsonl", [GOOD])
    (d / "sub").mkdir()
    write(d / "sub" / "b.json", [rec(device="dev-9")])
    empty = write(tmp_path / "empty.jsonl")
    assert run(capsys, "reports", empty).status == 0
    r = run(capsys, "reports", str(d))
    assert r.status == 1 and "2 record(s) from 2 device(s) in 2 file(s)" in r.out
    r = run(capsys, "reports", str(tmp_path / "missing.jsonl"))
    assert r.status == 2 and "no such file" in r.err and "no report file could be read" in r.err
    r = run(capsys, "reports", str(tmp_path / "missing.jsonl"), str(d))  # one unreadable, one fine
    assert r.status == 1 and "no such file" in r.err


def test_one_json_document_too(capsys, tmp_path):
    p = tmp_path / "body.json"
    p.write_text(json.dumps([GOOD, rec(device="dev-2")], indent=2))
    assert run(capsys, "reports", str(p), "--json").json()["records"] == 2


def test_live_tells_a_rotation_from_an_interception(runtime, serve, pki, tmp_path):
    """Records made by a real device: one refused the attacker (on the path to the
    genuine server), one refused the genuine server after it rotated to a key
    the devices do not pin. --live asks the servers as they are now."""
    genuine, rogue, rotated = serve(pki.genuine), serve(pki.rogue_leaf), serve(pki.rotated)
    pins = {"localhost": {"pins": [pki.genuine.pin, BACKUP]}}
    out, _ = device_steps(runtime, tmp_path, [
        {"op": "write", "name": "certpin.json", "text": pinset(pki, hosts=pins)},
        {"op": "conn", "port": rogue.port},  # the path to localhost leads to the attacker
        {"op": "reports", "clear": True},
    ], name="intercepted")
    intercepted = out[2]["reports"]
    out, _ = device_steps(runtime, tmp_path, [
        {"op": "write", "name": "certpin.json", "text": pinset(pki, hosts=pins)},
        {"op": "connect", "port": rotated.port},  # connect(): the record carries the port
        {"op": "reports", "clear": True},
    ], name="rotated")
    rotation = out[2]["reports"]
    assert intercepted[0]["port"] is None and rotation[0]["port"] == rotated.port
    f = write(tmp_path / "collected.jsonl", intercepted, rotation)
    # The interception's record names no port: --port says where localhost's real server listens.
    r = run_subprocess("reports", f, "--live", "--port", genuine.port)
    assert r.status == 3, r
    rogue_block = r.out.split("presented %s" % pki.rogue_leaf.pin)[1].split("\n\n")[0]
    assert "the server does not present it (it presents %s (a key the devices pin)): interception suspected" \
        % pki.genuine.pin in rogue_block, r.out
    rotated_block = r.out.split("presented %s" % pki.rotated.pin)[1].split("\n\n")[0]
    assert "the server presents this key now: a rotation without a pin update; ship a pin" in rotated_block
    assert "--pin %s" % pki.rotated.pin in rotated_block
    j = run_subprocess("reports", f, "--live", "--port", genuine.port, "--json").json()
    verdicts = {g["presented"]: g["live"]["verdict"] for g in j["groups"]}
    assert verdicts == {pki.rogue_leaf.pin: "interception", pki.rotated.pin: "rotation"}
    # The rotation alone: exit 1 (ship a pin), not 3.
    assert run_subprocess("reports", write(tmp_path / "rot.jsonl", rotation), "--live").status == 1


def test_live_with_an_unreachable_server_says_so(capsys, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = write(tmp_path / "r.jsonl", [rec(host="127.0.0.1", port=port)])
    r = run(capsys, "reports", f, "--live", "--timeout", "3")
    assert r.status == 1 and "connection refused" in r.out, r


# ---------------------------------------------------------------- the pinset's "report" section


def _lint(capsys, tmp_path, pki, name, **changes):
    from support.vboard_fixtures import make_pinset

    path = make_pinset(tmp_path / (name + ".json"), {"localhost": [pki.genuine.pin, pki.rotated.pin]})
    d = json.load(open(path))
    for k, v in changes.items():
        if k == "host_report":
            d["hosts"]["localhost"]["report"] = v
        else:
            d[k] = v
    json.dump(d, open(path, "w"))
    return run(capsys, "pinset", "lint", path), path


def test_lint_and_the_device_check_the_report_section(capsys, tmp_path, pki):
    import certpin

    r, _ = _lint(capsys, tmp_path, pki, "pinned", report={"url": "https://localhost:8443/reports"})
    assert "report" not in r.out, r  # a collector in the pinset: nothing to say
    r, _ = _lint(capsys, tmp_path, pki, "plain", report={"url": "http://10.0.0.5/r", "device": "dev-1"})
    assert "plain HTTP" in r.out and "erase them by answering 200" in r.out, r
    r, _ = _lint(capsys, tmp_path, pki, "unpinned", report={"url": "https://collector.example.com/r"})
    assert "collector.example.com is not in the pinset" in r.out, r
    for name, change, says in (
        ("badurl", {"report": {"url": "ftp://x/r"}}, "must start with http:// or https://"),
        ("badkey", {"report": {"uri": "https://localhost/r"}}, "unknown key 'uri'"),
        ("hostdevice", {"host_report": {"url": "https://localhost/r", "device": "d"}}, "unknown key 'device'"),
        ("nourl", {"host_report": {}}, "missing \"url\""),
        ("baddevice", {"report": {"device": "a b"}}, "1 to 64 printable ASCII"),
    ):
        r, path = _lint(capsys, tmp_path, pki, name, **change)
        assert r.status == 1 and says in r.out, (name, r)
        with pytest.raises(certpin.PinsetError):  # the device refuses the same file
            certpin.load(path)
