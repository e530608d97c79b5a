"""`certpin status`: what a virtual board holds, read with mpremote and ampy (certpin vboard):
its library, pinset, time floor and failure journal, including what still waits in its RAM."""
import json
import os

from support.cli import run_subprocess
from support.vboard_fixtures import make_pinset, vboard  # noqa: F401

# On the board: refuse the attacker N times, as an application's connect() would.
REFUSE = """\
import certpin
for _ in range(%d):
    try:
        certpin.connect("localhost", %d, timeout=10).close()
        print("CONNECTED")
    except certpin.PinError as e:
        print("REFUSED")
"""


def flashed(vboard, tmp_path, pki, fs="lfs2", **extra):
    b = vboard(fs=fs)
    pins = make_pinset(tmp_path / "pins.json", {"localhost": [pki.genuine.pin, pki.rotated.pin]}, serial=4)
    d = json.load(open(pins))
    d.update(extra)
    json.dump(d, open(pins, "w"))
    p = b.flash(pins, "--lib", "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    return b, d


def test_a_board_with_a_clean_journal(vboard, tmp_path, pki):
    b, d = flashed(vboard, tmp_path, pki, report={"url": "https://collector.example/r", "device": "dev-7"})
    r = run_subprocess("status", "--port", b.port, timeout=120)
    assert r.status == 0, r
    assert "certpin 0.1.0 in /lib/certpin (.mpy)" in r.out
    assert "pinset /certpin.json: serial 4, issued -, expires %s" % d["expires"] in r.out
    assert "localhost: %s, %s" % (pki.genuine.pin, pki.rotated.pin) in r.out
    assert "report: url https://collector.example/r, device dev-7" in r.out
    assert "journal /certpin.journal: empty" in r.out
    j = run_subprocess("status", "--port", b.port, "--json", timeout=120).json()
    assert j["pinset"]["serial"] == 4 and j["pinset"]["hosts"]["localhost"]["pins"][0] == pki.genuine.pin
    assert j["library"]["version"] == "0.1.0" and j["journal"]["records"] == [] and j["problems"] == []


def test_refusals_on_the_board_with_what_waits_in_its_ram(vboard, tmp_path, pki, serve):
    b, _ = flashed(vboard, tmp_path, pki)
    rogue = serve(pki.rogue_leaf)
    out = b.run(REFUSE % (3, rogue.port), tmp_path)
    assert out.count("REFUSED") == 3, out
    # mpremote resumes the board: the two repeats still in its RAM are counted
    r = run_subprocess("status", "--port", b.port, timeout=120)
    assert r.status == 1, r
    line = [l for l in r.out.splitlines() if "pin_mismatch" in l][0]
    assert "localhost:%d  3x since" % rogue.port in line and "enforced" in line, r.out
    assert "presented %s" % pki.rogue_leaf.pin in r.out
    j = run_subprocess("status", "--port", b.port, "--json", timeout=120).json()
    (rec,) = j["journal"]["records"]
    assert rec["count"] == 3 and rec["presented"] == [pki.rogue_leaf.pin] and rec["port"] == rogue.port
    # ampy resets the board first: only what reached the journal file (the first refusal)
    r = run_subprocess("status", "--port", b.port, "--tool", "ampy", timeout=120)
    assert r.status == 1 and "localhost:%d  1x since" % rogue.port in r.out, r


def test_a_corrupt_journal_on_the_board(vboard, tmp_path, pki):
    b, _ = flashed(vboard, tmp_path, pki, fs="posix")
    good = {"reason": "pin_mismatch", "host": "localhost", "port": None, "enforced": True,
            "presented": [pki.rogue_leaf.pin], "pins": [pki.genuine.pin], "serial": 4, "version": "0.1.0",
            "count": 2, "first": "2026-06-01T12:00:00Z", "last": "2026-06-01T12:00:09Z", "clock": True}
    with open(os.path.join(b.root, "certpin.journal"), "wb") as f:
        f.write(b"\x00\xff garbage\n" + json.dumps(good).encode() + b"\n{\"count\": 1}\n" + b"[" * 5000 + b"\n")
    r = run_subprocess("status", "--port", b.port, timeout=120)
    assert r.status == 1 and "1 record(s), newest first" in r.out and "2x since" in r.out, r
    assert "Traceback" not in r.out + r.err


def test_no_pinset_an_expired_one_and_no_board(vboard, tmp_path, pki):
    b = vboard()
    r = run_subprocess("status", "--port", b.port, timeout=120)
    assert r.status == 1 and "problem: no pinset at /certpin.json" in r.out, r
    assert "certpin not importable" in r.out  # no library flashed either
    b2, d = flashed(vboard, tmp_path, pki, fs="posix")
    with open(os.path.join(b2.root, "certpin.floor"), "w") as f:
        f.write("2099-06-01\n")  # the floor past expires: the board treats the pinset as expired
    r = run_subprocess("status", "--port", b2.port, timeout=120)
    assert r.status == 1 and "EXPIRED" in r.out and "problem: the pinset expired on %s" % d["expires"] in r.out, r
    r = run_subprocess("status", "--port", "/dev/pts/no-such-board")
    assert r.status == 2 and "no such port" in r.err, r


def test_a_pinset_left_in_bak_or_unreadable_is_reported_as_such(vboard, tmp_path, pki):
    # As the device reads it: certpin.load() puts certpin.json.bak back when certpin.json is missing (an
    # update cut by a power loss); a pinset that exists but cannot be opened is not "missing".
    b, d = flashed(vboard, tmp_path, pki, fs="posix")
    os.rename(os.path.join(b.root, "certpin.json"), os.path.join(b.root, "certpin.json.bak"))
    j = run_subprocess("status", "--port", b.port, "--json", timeout=120).json()
    assert j["pinset"]["serial"] == 4 and j["pinset"]["from_bak"], j
    assert any("certpin.json.bak is there: the device recovers it" in p for p in j["problems"]), j["problems"]
    for n in ("certpin.json", "certpin.json.bak"):  # (reading the journal on the board recovered the .bak)
        if os.path.lexists(os.path.join(b.root, n)):
            os.remove(os.path.join(b.root, n))
    os.symlink("certpin.json", os.path.join(b.root, "certpin.json"))  # a loop: open() fails with ELOOP
    r = run_subprocess("status", "--port", b.port, timeout=120)
    assert r.status == 1 and "cannot read /certpin.json on the board (OSError 40)" in r.out + r.err, r
    assert "no pinset at" not in r.out + r.err and "recovers it" not in r.out + r.err, r
