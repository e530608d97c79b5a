"""certpin flash: onto virtual boards through the real tools, atomically, after lint."""
import json
import os
import signal
import subprocess
import time

import pytest

from support.vboard_fixtures import CERTPIN, fake_pin, make_pinset, sha256_hex, vboard  # noqa: F401

CONNECT = """\
import certpin
ps = certpin.load()
for port in %r:
    try:
        s = certpin.connect('localhost', port, timeout=10)
        s.write(b'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')
        print('CONNECTED', port, s.read(200))
        s.close()
    except certpin.PinError as e:
        print('REFUSED', port, e)
"""


def _good_pinset(tmp_path, pki, name="pins.json", serial=1):
    return make_pinset(tmp_path / name, {"localhost": [pki.genuine.pin, pki.rotated.pin]}, serial=serial)


def test_mpremote_flash_lib_and_pinset_then_the_board_connects_pinned(vboard, tmp_path, pki, serve):
    b = vboard()
    pins = _good_pinset(tmp_path, pki)
    p = b.flash(pins, "--lib")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matches" in p.stdout and "installed /certpin.json" in p.stdout
    # read back: on the host side of the posix board, and through the tool
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(pins)
    back = tmp_path / "back.json"
    b.mpremote("fs", "cp", ":/certpin.json", str(back))
    assert back.read_bytes() == open(pins, "rb").read()
    lib = sorted(os.listdir(os.path.join(b.root, "lib", "certpin")))
    assert "__init__.mpy" in lib and not [n for n in lib if n.endswith((".py", ".tmp"))]
    genuine, rogue = serve(pki.genuine), serve(pki.rogue_leaf)
    out = b.run(CONNECT % ([genuine.port, rogue.port],), tmp_path)
    assert "CONNECTED %d b'HTTP/1.0 200 OK" % genuine.port in out, out
    assert "REFUSED %d" % rogue.port in out and pki.genuine.pin in out, out
    assert rogue.app_bytes == b""  # the attacker never saw the request


def test_ampy_flash_onto_littlefs_and_read_back(vboard, tmp_path, pki, serve):
    b = vboard(fs="lfs2")
    pins = _good_pinset(tmp_path, pki)
    p = b.flash(pins, "--lib", "--tool", "ampy")
    assert p.returncode == 0, p.stdout + p.stderr
    assert b.ampy("get", "/certpin.json").stdout.rstrip("\n") == open(pins).read()
    listing = b.ampy("ls", "/lib/certpin").stdout
    assert "/lib/certpin/__init__.mpy" in listing and ".tmp" not in listing
    genuine = serve(pki.genuine)
    out = b.run(CONNECT % ([genuine.port],), tmp_path)
    assert "CONNECTED %d" % genuine.port in out, out


def test_flash_replaces_the_previous_pinset_on_fat(vboard, tmp_path, pki):
    b = vboard(fs="fat", size=256 * 1024)
    assert b.flash(_good_pinset(tmp_path, pki, "a.json", serial=1), "--lib").returncode == 0
    second = _good_pinset(tmp_path, pki, "b.json", serial=2)
    p = b.flash(second)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "/ is VfsFat" in p.stdout and "warning: / is FAT" in p.stdout
    out = b.run("import certpin, os\nprint('serial', certpin.load().serial if hasattr(certpin.load(), 'serial') else '?')\n"
                "print(open('/certpin.json').read())\nprint(os.listdir('/'))\n", tmp_path)
    assert '"serial": 2' in out and ".tmp" not in out


def test_a_pinset_failing_lint_is_refused_and_force_overrides_governance_only(vboard, tmp_path, pki):
    b = vboard()
    single = make_pinset(tmp_path / "single.json", {"localhost": [pki.genuine.pin]})  # no backup pin
    p = b.flash(single)
    assert p.returncode == 1
    assert p.stderr.startswith("certpin: flash: ") and "--force" in p.stderr
    assert "lint: " in p.stdout
    assert not os.path.exists(os.path.join(b.root, "certpin.json"))
    p = b.flash(single, "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    assert os.path.exists(os.path.join(b.root, "certpin.json"))
    # what the device itself would refuse is never flashed, --force or not
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": 1, "hosts": {"localhost": {"pins": ["sha256/short"], "typo": 1}}}))
    p = b.flash(broken, "--force")
    assert p.returncode == 1 and "device would refuse" in p.stderr, p.stderr
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(single)


def _big_pinset(tmp_path, n=380):  # ~62 KB: near the 64 KB a device accepts
    hosts = {"h%04d.example.com" % i: [fake_pin("a%d" % i), fake_pin("b%d" % i)] for i in range(n)}
    return make_pinset(tmp_path / "big.json", hosts, serial=9)


def _flash_killed_when(b, pinset, tool, started, poll):
    """Run `certpin flash` and SIGKILL it and its tool (the whole process group)
    as soon as started() is true (within 60 s); the flash must not end first."""
    p = subprocess.Popen(CERTPIN + ["flash", pinset, "--port", b.port, "--tool", tool], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not started():
            assert p.poll() is None, "flash ended before the copy started: %r" % (p.communicate(),)
            time.sleep(poll)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        p.stdout.close()
        p.stderr.close()


@pytest.mark.parametrize("tool", ["mpremote", "ampy"])
def test_killed_copy_leaves_the_previous_pinset_and_the_next_flash_no_temp_file(vboard, tmp_path, pki, tool):
    b = vboard()
    old = _good_pinset(tmp_path, pki)
    assert b.flash(old).returncode == 0
    big = _big_pinset(tmp_path)
    dest = os.path.join(b.root, "certpin.json")
    tmp = dest + ".tmp"
    # the tool and certpin die mid-copy: a pulled cable
    _flash_killed_when(b, big, tool, lambda: os.path.exists(tmp) and os.path.getsize(tmp) > 0, 0.005)
    assert os.path.exists(tmp), "the copy never started"
    assert 0 < os.path.getsize(tmp) < os.path.getsize(big), "not killed part way"
    assert sha256_hex(dest) == sha256_hex(old)  # the previous pinset is untouched
    out = b.run("import json\nprint(sorted(json.load(open('/certpin.json'))['hosts']))\n", tmp_path)
    assert "['localhost']" in out
    # the next flash removes the leftover and installs the new pinset
    second = _good_pinset(tmp_path, pki, "second.json", serial=2)
    p = b.flash(second, "--tool", tool)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "interrupted flash" in p.stdout
    assert not os.path.exists(tmp)
    assert sha256_hex(dest) == sha256_hex(second)


def test_lib_falls_back_to_py_when_the_board_takes_another_mpy_version(vboard, tmp_path, monkeypatch):
    from certpin_host import flash

    b = vboard()
    log = []
    assert flash.flash(b.port, None, lib=True, log=log.append)["mpy"] is True
    monkeypatch.setattr(flash, "mpy_cross_version", lambda: (5, 0))  # as if mpy-cross were older than the board
    r = flash.flash(b.port, None, lib=True, log=log.append)
    assert r["mpy"] is False
    assert any("as .py" in line and "v5.0" in line for line in log), log
    names = sorted(os.listdir(os.path.join(b.root, "lib", "certpin")))
    assert names and all(n.endswith(".py") for n in names), names  # the .mpy files would be shadowed: removed
    out = b.run("import certpin\nprint('FILE', certpin.__file__)\n", tmp_path)
    assert "FILE /lib/certpin/__init__.py" in out


def test_a_copy_that_does_not_match_is_never_renamed(vboard, tmp_path, pki, monkeypatch):
    from certpin_host import flash

    b = vboard()
    old = _good_pinset(tmp_path, pki)
    assert b.flash(old).returncode == 0
    new = _good_pinset(tmp_path, pki, "new.json", serial=2)
    monkeypatch.setattr(flash, "sha256_file", lambda path: "0" * 64)  # as if the bytes were damaged on the way
    with pytest.raises(flash.FlashError) as e:
        flash.flash(b.port, new, log=lambda m: None)
    assert e.value.status == 1 and "differs" in str(e.value)
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(old)
    assert not os.path.exists(os.path.join(b.root, "certpin.json.tmp"))


def test_no_such_port_is_a_user_mistake(tmp_path, pki):
    p = subprocess.run(CERTPIN + ["flash", _good_pinset(tmp_path, pki), "--port", "/dev/ttyNOPE0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.startswith("certpin: flash: ") and "Traceback" not in p.stderr


@pytest.mark.parametrize("tool, hosts", [("mpremote", 380), ("ampy", 40)])
def test_killed_copy_on_littlefs_leaves_the_previous_pinset(vboard, tmp_path, pki, tool, hosts):
    """On a LittleFS image: the tool is killed at the board's first write of the new copy."""
    b = vboard(fs="lfs2")
    old = _good_pinset(tmp_path, pki)
    assert b.flash(old).returncode == 0
    big = _big_pinset(tmp_path, hosts)
    before = os.stat(b.image).st_mtime_ns
    # the copy has started writing: pull the cable
    _flash_killed_when(b, big, tool, lambda: os.stat(b.image).st_mtime_ns != before, 0.002)
    back = tmp_path / "back.json"
    b.mpremote("fs", "cp", ":/certpin.json", str(back))  # (a soft reset first: the unclosed copy is lost)
    assert sha256_hex(back) == sha256_hex(old)
    second = _good_pinset(tmp_path, pki, "second.json", serial=2)
    p = b.flash(second, "--tool", tool)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "interrupted flash" in p.stdout, p.stdout  # the temporary file was there, and is gone now
    assert ".tmp" not in b.mpremote("fs", "ls", ":/").stdout


def test_dest_in_a_new_directory(vboard, tmp_path, pki):
    b = vboard(fs="lfs2")
    pins = _good_pinset(tmp_path, pki)
    p = b.flash(pins, "--dest", "/config/certpin/pins.json", "--lib")
    assert p.returncode == 0, p.stdout + p.stderr
    out = b.run("import certpin\nprint('LOADED', certpin.load('/config/certpin/pins.json') is not None)\n", tmp_path)
    assert "LOADED True" in out, out


def test_a_full_filesystem_fails_cleanly(vboard, tmp_path, pki):
    b = vboard(fs="lfs2", size=64 * 1024)  # 16 blocks: no room for a 62 KB pinset next to the old one
    old = _good_pinset(tmp_path, pki)
    assert b.flash(old).returncode == 0
    p = b.flash(_big_pinset(tmp_path))
    assert p.returncode == 2 and "No space left" in p.stderr, p.stdout + p.stderr
    assert "removed the temporary files" in p.stdout
    back = tmp_path / "back.json"
    b.mpremote("fs", "cp", ":/certpin.json", str(back))
    assert sha256_hex(back) == sha256_hex(old)
    assert ".tmp" not in b.mpremote("resume", "fs", "ls", ":/").stdout
