"""certpin vboard: the unix port behind a pty behaves like a board for mpremote and ampy."""
import os
import signal
import subprocess
import sys
import time

import pytest

from support.vboard_fixtures import CERTPIN, vboard  # noqa: F401  (fixture)


def test_posix_root_is_the_boards_slash_and_lib_is_on_sys_path(vboard, tmp_path):
    b = vboard()
    with open(os.path.join(b.root, "hello.txt"), "w") as f:
        f.write("from the host\n")
    # plain mpremote soft-resets the board first (the relay restarts the unix port)
    out = b.mpremote("exec", "import os, sys; print(sorted(os.listdir('/')), os.getcwd(), sys.path); "
                     "print(open('/hello.txt').read())").stdout
    assert "['hello.txt']" in out
    assert "'/lib'" in out and "from the host" in out
    # ... and `resume` skips the reset
    assert b.mpremote("resume", "exec", "print(6 * 7)").stdout.strip() == "42"


def test_mpremote_cp_rename_and_read_back_on_posix(vboard, tmp_path):
    b = vboard()
    src = tmp_path / "data.bin"
    src.write_bytes(bytes(range(256)) * 20)
    b.mpremote("fs", "cp", str(src), ":/data.tmp", "+", "exec", "import os; os.rename('/data.tmp', '/data.bin')")
    assert (open(os.path.join(b.root, "data.bin"), "rb").read()) == src.read_bytes()
    assert not os.path.exists(os.path.join(b.root, "data.tmp"))
    back = tmp_path / "back.bin"
    b.mpremote("resume", "fs", "cp", ":/data.bin", str(back))
    assert back.read_bytes() == src.read_bytes()


def test_ampy_works_because_the_board_soft_reboots(vboard, tmp_path):
    b = vboard()
    src = tmp_path / "a.txt"
    src.write_text("ampy was here\n")
    b.ampy("put", str(src), "/a.txt")  # every ampy command soft-resets the board first
    assert b.ampy("get", "/a.txt").stdout.rstrip("\n") == "ampy was here"  # ampy adds a newline
    assert "/a.txt" in b.ampy("ls").stdout
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('path', sys.path)\n")
    assert "'/lib'" in b.ampy("run", str(script)).stdout


@pytest.mark.parametrize("fs", ["lfs2", "fat"])
def test_image_filesystem_persists_across_restarts(vboard, tmp_path, fs):
    root = tmp_path / "flash"
    b = vboard(fs=fs, size=256 * 1024, root=root)
    assert os.path.getsize(b.image) == 256 * 1024
    out = b.run("import vfs, os\n"
                "print(type(vfs.mount()[0][0]).__name__)\n"
                "with open('/old', 'w') as f: f.write('old')\n"
                "with open('/new', 'w') as f: f.write('new')\n"
                "os.rename('/new', '/old')\n"  # over an existing file, as flash does
                "print(open('/old').read(), os.listdir('/'))\n", tmp_path)
    assert ("VfsLfs2" if fs == "lfs2" else "VfsFat") in out
    assert "new ['old']" in out
    b.stop()
    b2 = vboard(fs=fs, root=root)  # the same image: mounted, not formatted again
    assert "new" in b2.run("print(open('/old').read())", tmp_path)


def test_ctrl_c_interrupts_running_code(vboard, tmp_path):
    b = vboard()
    b.mpremote("exec", "--no-follow", "while True:\n    pass\n")
    t = time.monotonic()
    # mpremote's first act is Ctrl-C: the relay turns it into SIGINT for the busy unix port
    assert b.mpremote("resume", "exec", "print('free')", timeout=20).stdout.strip() == "free"
    assert time.monotonic() - t < 10


def test_stops_cleanly_on_sigterm_and_removes_its_temporary_root(tmp_path):
    p = subprocess.Popen(CERTPIN + ["vboard", "--port-file", str(tmp_path / "port")], stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        lines = [p.stdout.readline() for _ in range(2)]
        root = lines[0].split()[2]
        assert os.path.isdir(root)
        assert (tmp_path / "port").read_text().strip() == lines[1].split()[2]
        children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1  # the unix port
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.stdout.close()
    assert not os.path.exists(root)
    assert not (tmp_path / "port").exists()
    assert not os.path.exists("/proc/%s" % children[0]), "the unix port outlived the vboard"


@pytest.mark.parametrize("argv, message", [
    (["--size", "1000"], "--size applies to --fs lfs2 or fat"),
    (["--fs", "lfs2", "--size", "1000"], "multiple of 4096"),
])
def test_user_mistakes_exit_2_with_a_message(tmp_path, argv, message):
    p = subprocess.run(CERTPIN + ["vboard", "--root", str(tmp_path / "b")] + argv, capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 2
    assert p.stderr.startswith("certpin: vboard: ") and message in p.stderr


def test_missing_interpreter_is_a_clear_error(tmp_path):
    env = dict(os.environ, MICROPYTHON=str(tmp_path / "nope"))
    p = subprocess.run(CERTPIN + ["vboard"], capture_output=True, text=True, timeout=20, env=env)
    assert p.returncode == 2 and "MICROPYTHON=" in p.stderr and "Traceback" not in p.stderr


def _read_until(s, marker, timeout=10):
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        data += s.read(s.in_waiting or 1)
    return data


def test_ctrl_d_at_the_friendly_prompt_soft_reboots_like_a_board(vboard):
    import serial  # pyserial, which mpremote and ampy use

    b = vboard()
    with serial.Serial(b.port, 115200, timeout=0.2) as s:
        s.write(b"\r\x02")  # Ctrl-B: friendly REPL
        assert b">>> " in _read_until(s, b">>> ")
        s.write(b"x = 42\r")
        _read_until(s, b"x = 42\r\n>>> ")
        s.write(b"\x04")  # Ctrl-D: a board soft-reboots (the unix port would just exit)
        out = _read_until(s, b"soft reboot\r\n")
        out += _read_until(s, b">>> ")
        assert b"soft reboot" in out and b"MicroPython" in out and out.endswith(b">>> "), out
        s.write(b"print('x' in globals(), 6 * 7)\r")  # a fresh interpreter: x is gone
        assert b"False 42" in _read_until(s, b"False 42"), "no fresh interpreter after the reboot"


def test_heapsize_sets_the_boards_gc_heap(vboard, tmp_path):
    b = vboard(extra=["--heapsize", "96k"])
    out = b.run("import gc\ngc.collect()\nprint('HEAP', gc.mem_free() + gc.mem_alloc())\n", tmp_path)
    heap = int(out.split("HEAP")[1].split()[0])
    assert 80 * 1024 < heap <= 96 * 1024, heap
