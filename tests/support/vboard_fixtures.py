"""Virtual boards for tests: `certpin vboard` run as a subprocess, and helpers to drive
it with the real tools (mpremote, ampy, certpin flash).

Import the fixtures into a test module: ``from support.vboard_fixtures import vboard, make_pinset``.
"""
import base64
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

BIN = os.path.dirname(sys.executable)
CERTPIN = [sys.executable, "-m", "certpin_host"]
MPREMOTE = [sys.executable, "-m", "mpremote"]
AMPY = [os.path.join(BIN, "ampy")]


class VBoard:
    """A running `certpin vboard` process."""

    def __init__(self, root, fs="posix", size=None, extra=()):
        self.root = str(root)
        self.fs = fs
        argv = CERTPIN + ["vboard", "--root", self.root, "--fs", fs] + list(extra)
        if size:
            argv += ["--size", str(size)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.port = None
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r"vboard: port (\S+)", line)
            if m:
                self.port = m.group(1)
                break
        if not self.port:
            self.stop()
            raise RuntimeError("vboard did not start: %r %r" % (lines, self.proc.stderr.read()))

    @property
    def image(self):
        return os.path.join(self.root, "flash-%s.img" % self.fs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    # -- driving it with the real tools -------------------------------------------------
    def mpremote(self, *args, timeout=60, check=True):
        p = subprocess.run(MPREMOTE + ["connect", self.port] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("mpremote %s failed: %s %s" % (args, p.stdout, p.stderr))
        return p

    def run(self, code, tmp_path, timeout=60, resume=True):
        """Run MicroPython code on the board (mpremote run); returns stdout."""
        path = os.path.join(str(tmp_path), "board-script-%d.py" % time.monotonic_ns())
        with open(path, "w") as f:
            f.write(code)
        args = (["resume"] if resume else []) + ["run", path]
        return self.mpremote(*args, timeout=timeout).stdout

    def ampy(self, *args, timeout=60, check=True):
        p = subprocess.run(AMPY + ["--port", self.port] + list(args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("ampy %s failed: %s %s" % (args, p.stdout, p.stderr))
        return p

    def flash(self, *args, timeout=120):
        return subprocess.run(CERTPIN + ["flash"] + [str(a) for a in args] + ["--port", self.port],
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def vboard(tmp_path):
    """vboard(fs="posix", size=None) -> a started VBoard rooted in a fresh directory; stopped after the test."""
    boards = []

    def start(fs="posix", size=None, root=None, extra=()):
        root = root or tmp_path / ("board-%d" % len(boards))
        b = VBoard(root, fs, size, extra)
        boards.append(b)
        return b

    yield start
    for b in boards:
        b.stop()


def fake_pin(seed):
    """A well-formed pin of no real key."""
    return "sha256/" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def make_pinset(path, hosts, serial=1, expires=None):
    """hosts: {name: [pins]}; writes a pinset that lints clean when each host has two pins."""
    if expires is None:  # half a year ahead: lint warns about a past or far-away expiry
        expires = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=180)).isoformat()
    data = {"format": 1, "serial": serial, "expires": expires,
            "hosts": {h: {"pins": list(p)} for h, p in hosts.items()}}
    with open(str(path), "w") as f:
        json.dump(data, f, indent=1)
    return str(path)


def sha256_hex(path):
    with open(str(path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
