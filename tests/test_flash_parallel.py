"""certpin flash onto several virtual boards at once, the board's serial rule, --port auto / --all, progress
(issue 18's production line, issue 16's "a USB flash never sets a board behind")."""
import json
import os
import re
import signal
import threading
import time

import pytest

from support.cli import run
from support.vboard_fixtures import fake_pin, make_pinset, sha256_hex, vboard  # noqa: F401


def _pins(tmp_path, name, serial, n=1):
    hosts = {"h%03d.example.com" % i: [fake_pin("a%d" % i), fake_pin("b%d" % i)] for i in range(n)}
    return make_pinset(tmp_path / name, hosts, serial=serial)


def _place(b, path):
    """Put a pinset on a posix vboard directly (as if flashed long ago)."""
    with open(os.path.join(b.root, "certpin.json"), "wb") as f:
        f.write(open(path, "rb").read())


def _leftovers(root):
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.join(d, n) for n in names if n.endswith((".tmp", ".bak"))]
    return out


def test_parallel_onto_four_boards_one_refusing(vboard, tmp_path, pki, serve):
    boards = [vboard(), vboard(fs="lfs2"), vboard(fs="fat", size=256 * 1024), vboard()]
    new = _pins(tmp_path, "new.json", serial=2)
    ahead = _pins(tmp_path, "ahead.json", serial=9)
    _place(boards[3], ahead)  # this board holds a later release: a USB flash must not set it back
    argv = [a for b in boards for a in ("--port", b.port)]
    p = boards[0].flash(new, "--lib", *argv[2:])
    assert p.returncode == 1, p.stdout + p.stderr
    table = p.stdout[p.stdout.index("results ("):]
    for b in boards[:3]:
        assert re.search(re.escape(b.port) + r" +installed ", table), table
    assert boards[3].port in table and "REFUSED" in table and "9 -> 2" in table, table
    assert "3 of 4 board(s) done, 1 failed or refused" in table
    assert "certpin: flash: %s: serial 2 is lower than the board's serial 9" % boards[3].port in p.stderr
    # every board that installed holds the exact file and the library, read back through the tool
    for b in boards[:3]:
        back = tmp_path / ("back-%s.json" % os.path.basename(b.port))
        b.mpremote("fs", "cp", ":/certpin.json", str(back))
        assert back.read_bytes() == open(new, "rb").read()
        assert "__init__.mpy" in b.mpremote("resume", "fs", "ls", ":/lib/certpin").stdout
    assert sha256_hex(os.path.join(boards[3].root, "certpin.json")) == sha256_hex(ahead)
    assert not os.path.exists(os.path.join(boards[3].root, "lib"))  # refused before anything was written
    assert _leftovers(boards[0].root) == [] and _leftovers(boards[3].root) == []
    # and the library works on a board flashed in parallel
    genuine = serve(pki.genuine)
    pinned = make_pinset(tmp_path / "pinned.json", {"localhost": [pki.genuine.pin, pki.rotated.pin]}, serial=3)
    assert boards[1].flash(pinned).returncode == 0
    out = boards[1].run("import certpin\ns = certpin.connect('localhost', %d, timeout=10)\nprint('CONNECTED')\n"
                        % genuine.port, tmp_path)
    assert "CONNECTED" in out, out


def test_a_board_unplugged_mid_copy_keeps_its_pinset_and_the_others_finish(vboard, tmp_path):
    boards = [vboard() for _ in range(3)]
    old = _pins(tmp_path, "old.json", serial=1)
    for b in boards:
        _place(b, old)
    big = _pins(tmp_path, "big.json", serial=2, n=380)  # ~62 KB: time to pull a cable
    victim = boards[1]
    tmp = os.path.join(victim.root, "certpin.json.tmp")
    pulled = threading.Event()

    def pull():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(tmp) and os.path.getsize(tmp) > 0:
                os.killpg(victim.proc.pid, signal.SIGKILL)  # the board and its serial port are gone
                pulled.set()
                return
            time.sleep(0.002)

    t = threading.Thread(target=pull)
    t.start()
    p = boards[0].flash(big, "--port", victim.port, "--port", boards[2].port, "--timeout", "20")
    t.join()
    assert pulled.is_set(), "the copy to the victim never started"
    assert p.returncode == 2, p.stdout + p.stderr
    assert "2 of 3 board(s) done, 1 failed or refused" in p.stdout, p.stdout
    assert "certpin: flash: %s: " % victim.port in p.stderr
    for b in (boards[0], boards[2]):
        assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(big)
        assert _leftovers(b.root) == []
    assert sha256_hex(os.path.join(victim.root, "certpin.json")) == sha256_hex(old)  # untouched
    assert 0 < os.path.getsize(tmp) < os.path.getsize(big)  # only the temporary copy was cut


def test_the_serial_rule_of_a_usb_flash(vboard, tmp_path):
    b = vboard()
    v2 = _pins(tmp_path, "v2.json", serial=2)
    assert b.flash(v2).returncode == 0
    # lower: refused, also as a bundle payload would be; --force overrides (a recovery)
    v1 = _pins(tmp_path, "v1.json", serial=1)
    p = b.flash(v1)
    assert p.returncode == 1 and "serial 1 is lower than the board's serial 2" in p.stderr, p.stdout + p.stderr
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(v2)
    # the board's serial with other contents: refused (two releases under one serial)
    other2 = make_pinset(tmp_path / "other2.json", {"x.example.com": [fake_pin("x"), fake_pin("y")]}, serial=2)
    p = b.flash(other2)
    assert p.returncode == 1 and "is the board's own serial, with other contents" in p.stderr, p.stderr
    # the same bytes again: nothing to do
    p = b.flash(v2)
    assert p.returncode == 0 and "already holds exactly this pinset" in p.stdout and "installed" not in p.stdout
    # no serial over a board that has one
    doc = json.load(open(v2))
    del doc["serial"]
    noserial = tmp_path / "noserial.json"
    noserial.write_text(json.dumps(doc))
    p = b.flash(noserial)
    assert p.returncode == 1 and "no serial" in p.stderr, p.stderr
    p = b.flash(v1, "--force")
    assert p.returncode == 0 and "installing it anyway (--force)" in p.stdout, p.stdout + p.stderr
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(v1)
    # a higher serial goes on; a board pinset no device could load is replaced
    assert b.flash(_pins(tmp_path, "v3.json", serial=3)).returncode == 0
    with open(os.path.join(b.root, "certpin.json"), "w") as f:
        f.write('{"format": 1, "serial": 99, "hosts": {}}')
    p = b.flash(v2)
    assert p.returncode == 0 and "cannot be loaded" in p.stdout, p.stdout + p.stderr


def test_a_bak_left_by_a_cut_install_counts_for_the_serial_rule(vboard, tmp_path):
    b = vboard()
    v5 = _pins(tmp_path, "v5.json", serial=5)
    with open(os.path.join(b.root, "certpin.json.bak"), "wb") as f:
        f.write(open(v5, "rb").read())
    p = b.flash(_pins(tmp_path, "v4.json", serial=4))
    assert p.returncode == 1 and "certpin.json.bak is there" in p.stdout and "lower" in p.stderr, p.stdout + p.stderr
    p = b.flash(_pins(tmp_path, "v6.json", serial=6))
    assert p.returncode == 0, p.stdout + p.stderr
    assert not os.path.exists(os.path.join(b.root, "certpin.json.bak"))


class _Port:
    def __init__(self, device, vid=0x2E8A, pid=0x0005):
        self.device, self.vid, self.pid = device, vid, pid
        self.manufacturer, self.product, self.description, self.serial_number = "MicroPython", "Board", "", "x"

    def __lt__(self, other):
        return self.device < other.device


def _fake_usb(monkeypatch, devices):
    """The USB enumeration only (there is no USB here): serial.tools.list_ports.comports lists these ports;
    the flash itself talks to real virtual boards."""
    import serial.tools.list_ports

    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a: list(devices))


def test_port_auto_and_all(vboard, tmp_path, capsys, monkeypatch):
    pins = _pins(tmp_path, "p.json", serial=1)
    _fake_usb(monkeypatch, [_Port("/dev/ttyS0", vid=None, pid=None)])  # a UART without USB ids: not a board
    r = run(capsys, "flash", pins, "--port", "auto")
    assert r.status == 2 and "no board found" in r.err, r
    a, b = vboard(), vboard()
    _fake_usb(monkeypatch, [_Port(a.port), _Port(b.port), _Port("/dev/ttyS0", vid=None, pid=None)])
    r = run(capsys, "flash", pins, "--port", "auto")
    assert r.status == 2 and "2 boards are attached" in r.err and a.port in r.err and b.port in r.err, r
    assert not os.path.exists(os.path.join(a.root, "certpin.json"))
    r = run(capsys, "flash", pins, "--all")
    assert r.status == 0 and "2 of 2 board(s) done" in r.out, r
    for x in (a, b):
        assert sha256_hex(os.path.join(x.root, "certpin.json")) == sha256_hex(pins)
    _fake_usb(monkeypatch, [_Port(b.port)])
    p2 = _pins(tmp_path, "p2.json", serial=2)
    r = run(capsys, "flash", p2, "--port", "auto")
    assert r.status == 0 and "installed /certpin.json" in r.out, r
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(p2)
    for argv, words in ((["--all", "--port", b.port], "not both"), (["--port", b.port, "--port", b.port], "twice"),
                        ([], "give --port")):
        r = run(capsys, "flash", p2, *argv)
        assert r.status == 2 and words in r.err, (argv, r)


def test_progress_in_bytes_on_stderr_only_when_asked_or_on_a_tty(vboard, tmp_path):
    b = vboard()
    big = _pins(tmp_path, "big.json", serial=1, n=100)
    p = b.flash(big)
    assert p.returncode == 0 and "board(s)" not in p.stderr, p.stderr  # not a tty: quiet
    p = b.flash(_pins(tmp_path, "big2.json", serial=2, n=100), "--progress")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "flash: [########################] " in p.stderr and " KB of " in p.stderr, p.stderr


@pytest.mark.parametrize("tool", ["ampy"])
def test_parallel_with_ampy(vboard, tmp_path, tool):
    boards = [vboard(), vboard(fs="lfs2")]
    pins = _pins(tmp_path, "p.json", serial=1)
    p = boards[0].flash(pins, "--tool", tool, "--port", boards[1].port)
    assert p.returncode == 0 and "2 of 2 board(s) done" in p.stdout, p.stdout + p.stderr
    back = tmp_path / "back.json"
    boards[1].mpremote("fs", "cp", ":/certpin.json", str(back))
    assert back.read_bytes() == open(pins, "rb").read()
