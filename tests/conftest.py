"""Shared fixtures: test PKI, TLS servers on 127.0.0.1, the two device runtimes."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE_LIB = os.path.join(ROOT, "firmware_lib")
DEVICE_SCRIPTS = os.path.join(ROOT, "tests", "device")
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.pki import PKI  # noqa: E402
from support.servers import TLSServer  # noqa: E402


def micropython_path():
    """The unix port: $MICROPYTHON, else the one in this venv, else PATH."""
    env = os.environ.get("MICROPYTHON")
    if env and os.path.exists(env):
        return env
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(here):
        return here
    return shutil.which("micropython")


@pytest.fixture(scope="session")
def micropython():
    path = micropython_path()
    if not path:
        pytest.fail("no MicroPython unix port: run `make setup` or set MICROPYTHON=/path/to/micropython")
    return path


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def serve(pki):
    """serve(leaf, **kw) -> a started TLSServer for that identity; stopped after the test."""
    started = []

    def start(leaf, **kw):
        chain, key = leaf.write(pki.dir)
        s = TLSServer(chain, key, name=kw.pop("name", leaf.name), **kw).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# Real MicroPython builds of older and 32-bit firmware (../shared/runtimes, see
# its README): where they are absent (a user's clone) the tests on them skip.
SHARED_RUNTIMES = os.environ.get("CERTPIN_RUNTIMES") or os.path.join(ROOT, "..", "shared", "runtimes")
FIRMWARE = {
    "mp1.20": "micropython-1.20",  # ussl.wrap_socket only, getpeercert(True)
    "mp1.22": "micropython-1.22",  # ssl.SSLContext without verify_callback, no getpeercert
    "mp1.22-peercert": "micropython-1.22-peercert",  # the same with getpeercert(True), as ESP32
    "mp1.23": "micropython-1.23",  # the first verify_callback release
    "mp1.28-32": "micropython-1.28-32",  # 32-bit (i386): a board's word size
}


def firmware_path(name):
    """The micropython binary of a real build in ../shared/runtimes, or None with the reason."""
    path = os.path.join(SHARED_RUNTIMES, FIRMWARE[name], "micropython")
    if not os.path.exists(path):
        return None, "%s is absent (a clone without ../shared/runtimes; set CERTPIN_RUNTIMES)" % path
    try:
        p = subprocess.run([path, "-c", "print(1)"], capture_output=True, text=True, timeout=30)
        ok = p.stdout.strip() == "1"
    except OSError as e:
        ok, p = False, e
    if not ok:
        return None, "%s does not run here (%s); the 32-bit build needs libc6-i386" % (path, getattr(p, "stderr", p))
    return path, None


def firmware(name):
    """A Runtime on the real build `name` (a FIRMWARE key); skips the test when it is unavailable."""
    path, why = firmware_path(name)
    if path is None:
        pytest.skip(why)
    return Runtime(name, path)


RUNTIMES = ["cpython", "micropython"]


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    """A device runtime: run(script_args...) runs tests/device/<script> under it."""
    return Runtime(request.param)


class Runtime:
    """cpython, micropython (the unix port of `make setup`), or a real build of
    ../shared/runtimes (firmware(name): `path` is its binary)."""

    def __init__(self, name, path=None):
        self.name = name
        self.path = path

    def command(self):
        if self.name == "cpython":
            return [sys.executable]
        path = self.path or micropython_path()
        if not path:
            pytest.fail("no MicroPython unix port: run `make setup` or set MICROPYTHON=/path/to/micropython")
        return [path]

    def env(self):
        env = dict(os.environ)
        paths = FIRMWARE_LIB + os.pathsep + DEVICE_SCRIPTS
        if self.name == "cpython":
            env["PYTHONPATH"] = paths
        else:
            # MicroPython searches MICROPYPATH (":" separated); keep its frozen modules (".frozen").
            env["MICROPYPATH"] = paths.replace(os.pathsep, ":") + ":.frozen"
        return env

    def run(self, script, *args, timeout=60, input=None):
        cmd = self.command() + [os.path.join(DEVICE_SCRIPTS, script)] + [str(a) for a in args]
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=timeout, input=input)

    def __repr__(self):
        return self.name
