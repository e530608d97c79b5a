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


RUNTIMES = ["cpython", "micropython"]


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    """A device runtime: run(script_args...) runs tests/device/<script> under it."""
    return Runtime(request.param)


class Runtime:
    def __init__(self, name):
        self.name = name

    def command(self):
        if self.name == "cpython":
            return [sys.executable]
        path = micropython_path()
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
