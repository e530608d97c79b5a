"""The failure journal and reports on the device (issue 17), on CPython and the MicroPython unix port.

Real TLS servers on 127.0.0.1 refuse or pass; the journal beside the pinset
file records the refusals (tests/device/journal_steps.py drives the device
library); reports() hands them over, send_reports() POSTs them to a local
collector (tests/support/collector.py) that answers well or badly. Faults:
a corrupt, truncated, full (ENOSPC) or refusing journal, and on the unix port
a real LittleFS that is full or mounted read-only.
"""
import json
import os

import pytest

from support.collector import Collector
from support.scenario import run_client

BACKUP = "sha256/" + "A" * 43 + "="
NOW = [2026, 6, 1, 12, 0, 0]


def pinset(pki, report=None, hosts=None, serial=7, **entry):
    e = {"pins": [pki.genuine.pin, BACKUP]}
    e.update(entry)
    d = {"format": 1, "serial": serial, "expires": "2099-01-01", "hosts": hosts or {"localhost": e}}
    if report is not None:
        d["report"] = report
    return json.dumps(d)


def run(runtime, tmp_path, steps, name="board", timeout=180):
    d = tmp_path / ("%s-%s" % (name, runtime.name))
    d.mkdir(exist_ok=True)
    cfg = tmp_path / ("steps-%s-%s.json" % (name, runtime.name))
    cfg.write_text(json.dumps(steps))
    p = runtime.run("journal_steps.py", cfg, d, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("[")]
    assert lines, "no result from %s: rc=%s\nstdout=%s\nstderr=%s" % (runtime, p.returncode, p.stdout, p.stderr)
    out = json.loads(lines[-1])
    for r in out:
        assert not (isinstance(r, dict) and r.get("type", "").startswith("unexpected")), r
    return out, d


def write(text, name="certpin.json"):
    return {"op": "write", "name": name, "text": text}


def clock(date=NOW, ticks=0):
    return {"op": "clock", "date": date, "ticks": ticks}


def journal(d):
    """The records in the journal file, as the device wrote them."""
    try:
        text = (d / "certpin.journal").read_text()
    except FileNotFoundError:
        return None
    return [json.loads(line) for line in text.splitlines()]


def refused(r):
    assert r["ok"] is False and r["type"] == "PinError", r
    return r


# ---------------------------------------------------------------- what is recorded


def test_a_refused_connection_is_journaled_beside_the_pinset(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), clock(),
        {"op": "conn", "port": rogue.port},
        {"op": "conn", "port": rogue.port},
        {"op": "connect", "port": rogue.port},
        {"op": "reports"},
    ])
    refused(out[2]) and refused(out[3]) and refused(out[4])
    assert rogue.app_bytes == b""  # recording never lets a byte through
    recs = out[5]["reports"]
    assert len(recs) == 2, recs  # two kinds: through SSLContext (port unknown) and connect() (port known)
    a, b = sorted(recs, key=lambda r: r["port"] or 0)  # (the same second: either order)
    assert a == {
        "reason": "pin_mismatch", "host": "localhost", "port": None, "enforced": True,
        "presented": [pki.rogue_leaf.pin], "pins": [pki.genuine.pin, BACKUP],
        "serial": 7, "version": "0.1.0", "count": 2, "first": "2026-06-01T12:00:00Z",
        "last": "2026-06-01T12:00:00Z", "clock": True, "device": None,
    }, a
    assert b["port"] == rogue.port and b["count"] == 1
    assert sorted(journal(d), key=lambda r: r["port"] or 0) == [{k: v for k, v in r.items() if k != "device"} for r in (a, b)]


def test_a_device_whose_connections_succeed_pays_nothing(runtime, serve, pki, tmp_path):
    good = serve(pki.genuine)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), {"op": "conn", "port": good.port}, {"op": "connect", "port": good.port},
        {"op": "state"}, {"op": "list"},
    ])
    assert out[1]["ok"] and out[2]["ok"], out
    assert out[3]["jr"] is None  # no RAM state before a failure
    if runtime.name == "micropython":  # every loaded-on-use module dropped again
        assert out[3]["modules"] == ["certpin"], out[3]
    assert "certpin.journal" not in out[4]


def test_the_journal_code_is_dropped_after_a_failure_and_its_ram_state_is_small(serve, pki, tmp_path):
    from conftest import Runtime

    rogue = serve(pki.rogue_leaf)
    out, d = run(Runtime("micropython"), tmp_path, [
        write(pinset(pki)), {"op": "conn", "port": rogue.port}, {"op": "state"},
    ])
    refused(out[1])
    assert out[2]["modules"] == ["certpin"], out[2]
    assert out[2]["jr"] == {"writes": 1, "tokens": 3, "kinds": 1}


def test_report_only_and_an_expired_pinset_say_whether_the_pins_were_enforced(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out = run_client(runtime, tmp_path, rogue.port, pins=[pki.genuine.pin, BACKUP], report_only=True)
    assert out["ok"], out
    (rec,) = out["failures"]
    assert rec["reason"] == "pin_mismatch" and rec["enforced"] is False

    # Expired (floor past expiry): with cadata CA validation alone decides (not
    # enforced), without the pins still are, and the message says the same.
    good = serve(pki.genuine)
    for ca, enforced, says in ((None, True, "pins still enforced"), ([pki.path("root.der")], False, "CA validation only")):
        out = run_client(runtime, tmp_path, good.port, pins=[pki.genuine.pin, BACKUP], expires="2026-01-31",
                         floor="2026-03-01", cadata=ca, name="exp%d" % enforced)
        assert out["ok"], out
        (rec,) = out["failures"]
        assert rec["reason"] == "pinset_expired" and rec["enforced"] is enforced and says in rec["message"], rec


def test_report_only_is_journaled_as_not_enforced_with_a_cadata_chain(runtime, serve, pki, tmp_path):
    # With cadata every certificate of the validated chain is hashed: all are recorded, leaf first.
    rogue = serve(pki.rogue_leaf)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki, report_only=True)),
        {"op": "conn", "port": rogue.port, "cadata": [pki.path("rogue-root.der")]},
        {"op": "reports"},
    ])
    assert out[1]["ok"], out[1]
    (rec,) = out[2]["reports"]
    assert rec["enforced"] is False and rec["presented"][0] == pki.rogue_leaf.pin
    assert len(rec["presented"]) == 2 and rec["presented"][1] == pki.rogue_root_pin, rec


def test_an_unset_clock_is_said_so(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), clock([2000, 1, 1, 0, 5, 0]), {"op": "conn", "port": rogue.port}, {"op": "reports"},
    ])
    (rec,) = out[3]["reports"]
    assert rec["clock"] is False and rec["first"] == "2000-01-01T00:05:00Z"


def test_a_pinset_from_loads_keeps_no_journal(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out = run_client(runtime, tmp_path, rogue.port, pins=[pki.genuine.pin, BACKUP])
    assert out["ok"] is False and [f["reason"] for f in out["failures"]] == ["pin_mismatch"]
    assert not [n for n in os.listdir(str(tmp_path)) if "journal" in n]


def test_refused_updates_are_journaled_with_their_rule(runtime, pki, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, d = run(runtime, tmp_path, [
        write(pinset(pki, serial=3)), clock(),
        {"op": "update", "hex": b"not a bundle".hex()},
        {"op": "update", "hex": b"{}".hex()},
        {"op": "fetch", "url": "http://127.0.0.1:%d/fleet.jws" % port, "timeout": 5},
        {"op": "reports"},
    ])
    assert out[2]["reason"] == out[3]["reason"] == "not_jws" and out[4]["reason"] == "fetch", out
    a, b = sorted(out[5]["reports"], key=lambda r: r["rule"], reverse=True)
    assert a["reason"] == "update_refused" and a["rule"] == "not_jws" and a["count"] == 2 and a["url"] is None
    assert b["rule"] == "fetch" and b["host"] == "127.0.0.1" and b["port"] == port
    assert b["url"] == "http://127.0.0.1:%d/fleet.jws" % port and b["serial"] == 3


def test_install_refusals_are_journaled(serve, pki, tmp_path):
    # install() is MicroPython-only: a host outside the pinset, refused.
    from conftest import Runtime

    out, d = run(Runtime("micropython"), tmp_path, [
        write(pinset(pki)),
        {"op": "install_unpinned", "host": "elsewhere.example"},
        {"op": "reports"},
    ])
    assert out[1]["type"] == "PinError" and "not in the pinset" in out[1]["message"], out[1]
    (rec,) = out[2]["reports"]
    assert rec["reason"] == "not_pinned" and rec["host"] == "elsewhere.example" and rec["enforced"] is True
    # others="ca": a host outside the pinset whose chain fails CA validation (the rogue CA's)
    rogue = serve(pki.rogue_leaf)
    out, d = run(Runtime("micropython"), tmp_path, [
        write(pinset(pki, hosts={"pinned.example": {"pins": [pki.genuine.pin, BACKUP]}})),
        {"op": "install_unpinned", "host": "localhost", "port": rogue.port, "others": "ca",
         "cadata": [pki.path("root.der")]},
        {"op": "reports"},
    ], name="ca")
    assert out[1]["type"] == "PinError" and "CA validation" in out[1]["message"], out[1]
    (rec,) = out[2]["reports"]
    assert rec["reason"] == "tls_refused" and rec["host"] == "localhost" and rec["pins"] == []


# ---------------------------------------------------------------- coalescing and wear


def test_one_attempt_a_second_for_an_hour_writes_the_flash_six_times(runtime, pki, tmp_path):
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), clock(),
        {"op": "fail", "leaf": pki.path("rogue.0.der"), "n": 3600, "step": 1000},
        {"op": "state"}, {"op": "reports"},
    ], timeout=600)
    assert out[2]["refused"] == 3600, out[2]
    assert out[3]["jr"]["writes"] == 6, out[3]  # at 0 s, then every 10 minutes
    (rec,) = out[4]["reports"]
    assert rec["count"] == 3600 and rec["first"] == "2026-06-01T12:00:00Z" and rec["last"] == "2026-06-01T12:59:59Z"
    (on_flash,) = journal(d)
    # what a power cut now would lose: the repeats of the last 10 minutes, no more
    assert 3600 - 600 <= on_flash["count"] < 3600, on_flash


def test_a_new_key_every_attempt_is_rate_limited_and_the_journal_stays_bounded(runtime, pki, tmp_path):
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), clock(),
        {"op": "fail", "leaf": pki.path("rogue.0.der"), "n": 3600, "step": 1000, "rotate": True},
        {"op": "state"}, {"op": "list"},
    ], timeout=600)
    assert out[2]["refused"] == 3600
    writes = out[3]["jr"]["writes"]
    assert writes <= 20, out[3]  # 4 at once, then one every 5 minutes: 16
    assert os.path.getsize(str(d / "certpin.journal")) <= 4096
    recs = journal(d)
    assert 5 <= len(recs) <= 16 and len({r["presented"][0] for r in recs}) == len(recs)


def test_distinct_failures_coalesce_by_host_key_and_reason(runtime, serve, pki, tmp_path):
    rogue, gi = serve(pki.rogue_leaf), serve(pki.attacker_with_genuine_intermediate)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), clock(),
        {"op": "conn", "port": rogue.port}, {"op": "conn", "port": gi.port}, {"op": "conn", "port": rogue.port},
        {"op": "reports"},
    ])
    (rec,) = out[5]["reports"]  # both servers present the rogue leaf: same host, key and reason
    assert rec["count"] == 3 and rec["presented"] == [pki.rogue_leaf.pin]


# ---------------------------------------------------------------- reports() and send_reports()


def test_reports_clear_hands_the_records_over(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki, report={"device": "fleet-a-17"})), {"op": "conn", "port": rogue.port},
        {"op": "reports", "clear": True}, {"op": "reports"}, {"op": "list"},
        {"op": "device_id", "value": "sensor-3"}, {"op": "conn", "port": rogue.port}, {"op": "reports"},
    ])
    (rec,) = out[2]["reports"]
    assert rec["device"] == "fleet-a-17" and rec["count"] == 1
    assert out[3]["reports"] == [] and "certpin.journal" not in out[4]
    (rec,) = out[7]["reports"]  # a new record after the hand-over, with the application's device id
    assert rec["count"] == 1 and rec["device"] == "sensor-3"


def test_send_reports_posts_json_and_drops_only_what_a_2xx_acknowledged(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    with Collector("ok") as c:
        out, d = run(runtime, tmp_path, [
            write(pinset(pki, report={"url": c.url()})), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "send"}, {"op": "list"}, {"op": "send"},
        ])
    assert out[3] == {"ok": True, "sent": 1, "ms": out[3]["ms"]}, out[3]
    assert "certpin.journal" not in out[4] and out[5]["sent"] == 0
    (rec,) = c.records()
    assert rec["reason"] == "pin_mismatch" and rec["presented"] == [pki.rogue_leaf.pin] and "device" in rec
    head = c.requests[0].decode()
    assert head.startswith("POST /reports HTTP/1.0\r\n") and "Content-Type: application/json" in head
    assert "User-Agent: certpin/0.1.0" in head


@pytest.mark.parametrize("mode", ["error", "stall", "slowread", "garbage", "close", "refused"])
def test_a_collector_that_fails_costs_at_most_timeout_and_loses_nothing(runtime, serve, pki, tmp_path, mode):
    rogue = serve(pki.rogue_leaf)
    c = Collector(mode).start()
    url = c.url()
    if mode == "refused":
        c.stop()
    try:
        out, d = run(runtime, tmp_path, [
            write(pinset(pki, report={"url": url})), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "conn", "port": rogue.port},
            {"op": "send", "timeout": 2}, {"op": "reports"},
        ])
    finally:
        c.stop()
    r = out[4]
    assert r["ok"] is False and r["type"] == "Error" and "the journal keeps them" in r["message"], r
    assert r["ms"] < 2000 + 1500, r  # the timeout, and the bookkeeping around it
    (rec,) = out[5]["reports"]
    assert rec["count"] == 2  # nothing lost
    assert journal(d)[0]["count"] >= 1


def test_send_reports_routes_per_host_and_pins_a_collector_in_the_pinset(runtime, serve, pki, tmp_path):
    # The genuine TLS collector is "localhost" (in the pinset: its pins apply);
    # reports about another host go to a plain collector named by that host's entry.
    rogue = serve(pki.rogue_leaf)
    chain, key = pki.genuine.write(pki.dir)
    with Collector("ok", tls=(chain, key)) as pinned, Collector("ok") as plain:
        hosts = {"localhost": {"pins": [pki.genuine.pin, BACKUP]},
                 "127.0.0.1": {"pins": [pki.genuine.pin, BACKUP], "report": {"url": plain.url("/other")}}}
        out, d = run(runtime, tmp_path, [
            write(pinset(pki, report={"url": pinned.url()}, hosts=hosts)), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "conn", "port": rogue.port, "host": "127.0.0.1"},
            {"op": "send"}, {"op": "reports"},
        ])
    assert out[4]["sent"] == 2, out[4]
    assert [r["host"] for r in pinned.records()] == ["localhost"]
    assert [r["host"] for r in plain.records()] == ["127.0.0.1"] and plain.paths == ["/other"]
    assert out[5]["reports"] == []


def test_a_collector_presenting_the_attackers_key_is_refused_and_journaled(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    chain, key = pki.rogue_leaf.write(pki.dir)
    with Collector("ok", tls=(chain, key)) as evil:
        out, d = run(runtime, tmp_path, [
            write(pinset(pki, report={"url": evil.url()})), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "send"}, {"op": "reports"},
        ])
    assert out[3]["ok"] is False and "no configured pin matched" in out[3]["message"], out[3]
    assert evil.bodies == []
    recs = out[4]["reports"]  # the original record kept, and the collector's own refusal with its port
    assert [r["port"] for r in recs] == [None, evil.port] and all(r["reason"] == "pin_mismatch" for r in recs)


def test_send_reports_without_any_url_says_so(runtime, serve, pki, tmp_path):
    out, d = run(runtime, tmp_path, [write(pinset(pki)), {"op": "send"}])
    assert out[1]["ok"] is False and "no url given" in out[1]["message"] and "report.url" in out[1]["message"]


# ---------------------------------------------------------------- a journal in trouble


def test_a_corrupt_or_truncated_journal_heals_and_never_breaks_a_refusal(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    good_line = json.dumps({"reason": "pin_mismatch", "host": "old.example", "port": None, "enforced": True,
                            "presented": [BACKUP], "pins": [BACKUP], "serial": 1, "version": "0.1.0",
                            "count": 4, "first": "2026-01-01T00:00:00Z", "last": "2026-01-02T00:00:00Z",
                            "clock": True})
    for name, text in (
        ("garbage", "\x00\x01 not json at all \ufffd\n{]]]\n"),
        ("truncated", good_line + "\n" + good_line[:57]),
        ("hostile", '{"count": "9", "reason": 1}\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n' + good_line + "\n"),
        ("huge", good_line + "\n" + "x" * 20000 + "\n"),
    ):
        out, d = run(runtime, tmp_path, [
            write(pinset(pki)), write(text, "certpin.journal"), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "reports"},
        ], name=name)
        refused(out[3])
        recs = out[4]["reports"]
        assert recs[-1]["host"] == "localhost" and recs[-1]["count"] == 1, (name, recs)
        kept = [r for r in recs if r["host"] == "old.example"]
        assert len(kept) == (0 if name == "garbage" else 1), (name, recs)
        assert [r["host"] for r in journal(d)] == [r["host"] for r in recs]  # the file healed


def test_a_full_filesystem_drops_the_record_and_nothing_else(runtime, serve, pki, tmp_path):
    # certpin.journal.tmp -> /dev/full: the journal's next write fails with
    # ENOSPC, as on a full flash. The refusal and the update refusal stand,
    # the record is dropped, the failed temporary file is removed: the
    # journal works again at the next failure.
    rogue = serve(pki.rogue_leaf)
    for first in ("conn", "update"):
        d = tmp_path / ("full-%s-%s" % (first, runtime.name))
        d.mkdir()
        os.symlink("/dev/full", str(d / "certpin.journal.tmp"))
        step = {"op": "conn", "port": rogue.port} if first == "conn" else {"op": "update", "hex": b"x".hex()}
        out, d = run(runtime, tmp_path, [
            write(pinset(pki)), step, {"op": "list"}, {"op": "conn", "port": rogue.port}, {"op": "reports"},
        ], name="full-" + first)
        if first == "conn":
            refused(out[1])
        else:
            assert out[1]["reason"] == "not_jws", out[1]
        assert "certpin.journal" not in out[2] and "certpin.journal.tmp" not in out[2], out[2]
        refused(out[3])
        (rec,) = out[4]["reports"]
        assert rec["reason"] == "pin_mismatch" and rec["count"] == 1, rec


def test_a_journal_that_cannot_be_written_never_breaks_an_update(runtime, tmp_path):
    from support import jws

    k = jws.new_key()
    cur, new = jws.pinset(1, [k], threshold=1), jws.pinset(2, [k], threshold=1)
    bundle = json.dumps({"payload": jws.b64url(new), "signatures": [jws.signature(k, jws.b64url(new))]}).encode()
    out, d = run(runtime, tmp_path, [
        write(cur.decode()), {"op": "mkdir", "name": "certpin.journal.tmp"},
        {"op": "update", "hex": b"garbage".hex()}, {"op": "update", "hex": bundle.hex()},
        {"op": "read", "name": "certpin.json"}, {"op": "list"},
    ])
    assert out[2]["reason"] == "not_jws" and out[3]["ok"], out
    assert out[4] == new.decode()
    assert "certpin.journal" not in out[5]


def test_littlefs_full_and_read_only(serve, pki, tmp_path):
    # A real LittleFS2 on the unix port: filled up (ENOSPC), then mounted read-only (EROFS).
    from conftest import Runtime

    mp = Runtime("micropython")
    rogue = serve(pki.rogue_leaf)
    out, d = run(mp, tmp_path, [
        write(pinset(pki)), {"op": "lfs", "size": 64 * 1024, "copy": ["certpin.json"]},
        {"op": "fill"}, {"op": "conn", "port": rogue.port}, {"op": "list"}, {"op": "reports"},
    ], name="lfsfull")
    assert out[2]["errno"] == 28, out[2]
    refused(out[3])
    assert "certpin.journal" not in out[4] and "certpin.journal.tmp" not in out[4], out[4]
    assert out[5]["reports"] == []

    out, d = run(mp, tmp_path, [
        write(pinset(pki)), {"op": "lfs", "size": 64 * 1024, "copy": ["certpin.json"], "readonly": True},
        {"op": "conn", "port": rogue.port}, {"op": "update", "hex": b"x".hex()}, {"op": "writes"},
        {"op": "reports", "clear": True},
    ], name="lfsro")
    refused(out[2])
    assert out[3]["reason"] == "not_jws" and out[4] == 0, out
    assert [r["reason"] for r in out[5]["reports"]] == []


@pytest.mark.parametrize("name", ["mp1.20", "mp1.22-peercert", "mp1.23", "mp1.28-32"])
def test_real_firmware_builds_journal_a_refusal(name, serve, pki, tmp_path):
    # Older firmware (ussl only, no verify_callback: certpin/_old.py) and the 32-bit build.
    from conftest import firmware

    rt = firmware(name)
    rogue = serve(pki.rogue_leaf)
    out, d = run(rt, tmp_path, [
        write(pinset(pki)), clock(), {"op": "conn", "port": rogue.port}, {"op": "conn", "port": rogue.port},
        {"op": "update", "hex": b"x".hex()}, {"op": "reports", "clear": True}, {"op": "list"},
    ], name=name)
    refused(out[2]) and refused(out[3])
    recs = sorted(out[5]["reports"], key=lambda r: r["reason"])
    assert [r["reason"] for r in recs] == ["pin_mismatch", "update_refused"], recs
    assert recs[0]["count"] == 2 and recs[0]["presented"] == [pki.rogue_leaf.pin] and recs[0]["enforced"] is True
    assert "certpin.journal" not in out[6]


def test_a_deferred_handshake_refusal_is_journaled(runtime, serve, pki, tmp_path):
    rogue = serve(pki.rogue_leaf)
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), {"op": "conn", "port": rogue.port, "deferred": True}, {"op": "reports"},
    ])
    refused(out[1])
    (rec,) = out[2]["reports"]
    assert rec["reason"] == "pin_mismatch" and rec["presented"] == [pki.rogue_leaf.pin]


def test_a_line_that_parses_into_another_shape_is_dropped_not_fatal(runtime, serve, pki, tmp_path):
    # MicroPython's json is lax: a damaged line can parse. A record whose fields
    # have the wrong types must not break the journal's writes for good.
    rogue = serve(pki.rogue_leaf)
    bad = {"reason": "pin_mismatch", "host": 7, "port": "x", "enforced": True, "presented": [1, {}],
           "pins": [None], "serial": 1, "version": "0.1.0", "count": 2, "first": "a", "last": "b"}
    out, d = run(runtime, tmp_path, [
        write(pinset(pki)), write(json.dumps(bad) + "\n", "certpin.journal"),
        {"op": "fetch", "url": "http://127.0.0.1:1:x/b.jws", "timeout": 2},
        {"op": "conn", "port": rogue.port}, {"op": "reports"},
    ])
    assert out[2]["reason"] == "fetch"
    refused(out[3])
    recs = out[4]["reports"]
    assert sorted(r["reason"] for r in recs) == ["pin_mismatch", "update_refused"], recs
    assert [r["port"] for r in recs if r["reason"] == "update_refused"] == [None]
    assert len(journal(d)) == 2


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22", "mp1.22-peercert", "mp1.23"])
def test_send_reports_over_https_on_older_firmware(fw, serve, pki, tmp_path):
    # Real builds (../shared/runtimes). A collector outside the pinset over https (TLS that checks
    # nothing, as documented) and a pinned one: firmware without verify_callback (< 1.23) does its
    # TLS through certpin/_old.py, as fetch_update() does (sibling of that fix: send_reports made
    # a firmware SSLContext that v1.20 does not have, and every report stayed undelivered).
    from conftest import firmware

    rt = firmware(fw)
    rogue = serve(pki.rogue_leaf)
    chain, key = pki.genuine.write(pki.dir)
    with Collector("ok", tls=(chain, key)) as c:
        hosts = {"localhost": {"pins": [pki.genuine.pin, BACKUP]}}
        out, d = run(rt, tmp_path, [
            # the report url names 127.0.0.1, not in the pinset; then localhost, pinned
            write(pinset(pki, report={"url": c.url().replace("localhost", "127.0.0.1")}, hosts=hosts)), clock(),
            {"op": "conn", "port": rogue.port}, {"op": "send"}, {"op": "reports"},
            {"op": "conn", "port": rogue.port}, {"op": "send", "url": c.url()},
            {"op": "reports"},
        ])
    assert out[3]["ok"] and out[3]["sent"] == 1, (fw, out[3])
    assert out[4]["reports"] == []
    if fw == "mp1.22":  # no getpeercert: a pinned collector's key cannot be checked, and it is refused
        assert out[6]["ok"] is False and "the journal keeps them" in out[6]["message"], out[6]
        assert out[7]["reports"], out[7]
    else:
        assert out[6]["ok"] and out[6]["sent"] == 1, (fw, out[6])
        assert out[7]["reports"] == []
    # what reached the collector: each delivered record once; nothing over the connection refused on 1.22
    assert len([r for b in c.bodies if b for r in json.loads(b)]) == (1 if fw == "mp1.22" else 2), c.bodies


@pytest.mark.parametrize("missing", [("_report.py",), ("_refuse.py", "_report.py")])
def test_a_library_missing_its_refusal_modules_still_refuses_with_pin_errors(runtime, serve, pki, tmp_path, missing):
    # A flash that can no longer read certpin/_refuse.py and _report.py (or a library copied in
    # part): a refused connection and a failed check() are PinErrors naming what cannot be loaded,
    # never an ImportError or OSError the application does not expect (found by the power-cut
    # test of the catch-up walk on FAT: an ImportError left fetch_update()); a genuine server
    # still connects.
    import shutil

    rogue, genuine = serve(pki.rogue_leaf), serve(pki.genuine)
    lib = tmp_path / "lib"
    shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware_lib", "certpin"),
                    lib / "certpin", ignore=shutil.ignore_patterns("__pycache__", *missing))
    ps = tmp_path / "certpin.json"
    ps.write_text(pinset(pki))
    leaf = tmp_path / "rogue.der"
    leaf.write_bytes(pki.rogue_leaf.der)
    if runtime.name == "cpython":  # -S: without site-packages, whose editable install maps certpin.* to the repo
        import subprocess
        import sys

        p = subprocess.run([sys.executable, "-S", os.path.join(os.path.dirname(os.path.abspath(__file__)), "device",
                                                               "partial_library.py"),
                            str(lib), str(ps), str(rogue.port), str(genuine.port), str(leaf)],
                           capture_output=True, text=True, timeout=60)
    else:
        p = runtime.run("partial_library.py", lib, ps, rogue.port, genuine.port, leaf)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, (p.stdout, p.stderr)
    out = json.loads(lines[-1])
    assert out["check"][0] == "PinError" and "certpin/_report cannot be loaded" in out["check"][1], out
    assert out["rogue"][0] == "PinError" and "certpin/_re" in out["rogue"][1] and "cannot be loaded" in out["rogue"][1], out
    assert out["genuine"] == "ok", out
