"""The ESP32 and Pico W examples run on a virtual board, with stand-ins for `network` and
`ntptime` (the unix port has neither): Wi-Fi, NTP, cadata from a file, a pinned GET to the
genuine server, a clear refusal of the attacker, and a retry instead of a crash."""
import json
import os
import subprocess
import time

import pytest

from support.vboard_fixtures import MPREMOTE, fake_pin, make_pinset, vboard  # noqa: F401  (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NETWORK_STUB = """\
STA_IF = 0
class WLAN:
    def __init__(self, i):
        self.up = False
    def active(self, on=None):
        print('stub: WLAN.active', on)
    def isconnected(self):
        return self.up
    def connect(self, ssid, password):
        print('stub: WLAN.connect', ssid)
        self.up = True
    def ifconfig(self):
        return ('10.0.0.2', '255.255.255.0', '10.0.0.1', '10.0.0.1')
"""
NTPTIME_STUB = "def settime():\n    print('stub: ntptime.settime')\n"


def run_until(b, script, marker, timeout=30):
    """mpremote run SCRIPT on the board; read its output until MARKER, then stop it."""
    p = subprocess.Popen(MPREMOTE + ["connect", b.port, "resume", "run", script], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if marker in line:
                break
    finally:
        p.kill()
        p.wait(10)
        p.stdout.close()
    b.mpremote("resume", "exec", "pass")  # Ctrl-C: the example's loop stops, as on a board
    return "".join(lines)


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "RPI_PICO_W"])
def test_example_connects_pinned_and_refuses_the_attacker(vboard, tmp_path, pki, serve, board):
    b = vboard()
    os.makedirs(os.path.join(b.root, "lib"))
    for name, src in (("network.py", NETWORK_STUB), ("ntptime.py", NTPTIME_STUB)):
        with open(os.path.join(b.root, "lib", name), "w") as f:
            f.write(src)
    with open(os.path.join(b.root, "ca.der"), "wb") as f:
        f.write(pki.root_der)
    pins = make_pinset(tmp_path / "pins.json", {"localhost": [pki.intermediate_pin, pki.rotated.pin]})
    p = b.flash(pins, "--lib")
    assert p.returncode == 0, p.stdout + p.stderr
    main = os.path.join(ROOT, "boards", board, "main.py")
    genuine, rogue = serve(pki.genuine), serve(pki.rogue_leaf)

    def secrets(port):
        with open(os.path.join(b.root, "secrets.json"), "w") as f:
            json.dump({"ssid": "test-wifi", "password": "x", "host": "localhost", "port": port,
                       "path": "/", "cafile": "/ca.der"}, f)

    secrets(genuine.port)
    out = run_until(b, main, "pinned GET")
    assert "stub: WLAN.connect test-wifi" in out and "stub: ntptime.settime" in out, out
    assert "pinned GET localhost from 10.0.0.2: HTTP/1.0 200 OK" in out, out

    secrets(rogue.port)
    out = run_until(b, main, "retrying in")
    assert "REFUSED localhost" in out and "retrying in 5 s" in out, out
    assert "Traceback" not in out, out
    assert rogue.app_bytes == b""


def test_example_without_secrets_says_what_is_missing(vboard, tmp_path):
    from certpin_host import flash

    b = vboard()
    flash.flash(b.port, None, lib=True, log=lambda m: None)  # the library only
    out = b.run(open(os.path.join(ROOT, "boards", "ESP32_GENERIC", "main.py")).read(), tmp_path)
    assert "NO SETTINGS: /secrets.json" in out and "Traceback" not in out


REQUESTS_SCRIPT = """\
import certpin, requests
for port in (%d, %d):
    try:
        r = requests.get("https://localhost:%%d/" %% port)
        print("GOT", r.status_code, r.text.strip())
    except certpin.Error as e:
        print("REFUSED", type(e).__name__, e.args[0].splitlines()[0])
"""


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "RPI_PICO_W", "UNIX"])
def test_boot_py_pins_the_application(vboard, tmp_path, pki, board):
    # The board's boot.py, then the application in the same interpreter (as
    # a board runs boot.py and main.py): requests, which sets CERT_NONE
    # itself, is pinned; the UNIX example (certpin.connect) keeps working.
    from support.servers import HTTPSServer

    b = vboard()
    pins = make_pinset(tmp_path / "pins.json", {"localhost": [pki.genuine.pin, pki.rotated.pin]})
    assert b.flash(pins, "--lib").returncode == 0
    boot = os.path.join(ROOT, "boards", board, "boot.py")
    with HTTPSServer(*pki.genuine.write(pki.dir), files={"/": b"hello from genuine\n"}) as genuine, \
            HTTPSServer(*pki.rogue_leaf.write(pki.dir), files={"/": b"hello from rogue\n"}) as rogue:
        assert b.run(open(boot).read(), tmp_path).strip() == ""
        out = b.run(REQUESTS_SCRIPT % (genuine.port, rogue.port), tmp_path)
        assert "GOT 200 hello from genuine" in out, out
        assert "REFUSED PinError localhost: no configured pin matched" in out, out
        assert rogue.received == [] and "hello from rogue" not in out
        if board == "UNIX":
            with open(os.path.join(b.root, "app.json"), "w") as f:
                json.dump({"host": "localhost", "port": genuine.port, "attempts": 1}, f)
            out = b.run(open(os.path.join(ROOT, "boards", "UNIX", "main.py")).read(), tmp_path)
            assert "PINNED OK localhost" in out, out


def test_boot_py_without_a_pinset_leaves_every_connection_refused(vboard, tmp_path, pki):
    # On a board main.py runs even when boot.py raised: the application must
    # not then connect unpinned.
    from certpin_host import flash
    from support.servers import HTTPSServer

    b = vboard()
    flash.flash(b.port, None, lib=True, log=lambda m: None)  # the library only, no /certpin.json
    boot = os.path.join(ROOT, "boards", "ESP32_GENERIC", "boot.py")
    with HTTPSServer(*pki.rogue_leaf.write(pki.dir), files={"/": b"hello from rogue\n"}) as rogue:
        path = tmp_path / "boot.py"
        path.write_text(open(boot).read())
        p = b.mpremote("resume", "run", str(path), check=False)
        assert "PinsetError" in p.stdout + p.stderr and "/certpin.json" in p.stdout + p.stderr, p
        out = b.run(REQUESTS_SCRIPT % (rogue.port, rogue.port), tmp_path)
        assert "REFUSED PinsetError certpin.install() failed, so every TLS client connection is refused" in out, out
        assert rogue.tcp_bytes == 0 and rogue.received == []


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "UNIX"])
def test_example_updates_its_pinset_after_a_refusal_and_retries_once(vboard, tmp_path, pki, serve, board):
    # The server rotated to a key the board does not pin yet. The board is
    # refused, fetches the signed pinset naming the new key from update.url
    # (plain HTTP: the signature carries the trust), installs it, retries once.
    from support import jws
    from support.update_servers import UpdateServer

    key = jws.new_key()
    spare = fake_pin("spare")
    new = jws.pinset(2, [key], hosts={"localhost": {"pins": [pki.rotated.pin, spare]}})
    srv = UpdateServer(["notfound", "ok"], jws.bundle(new, [key])).start()  # not published yet at boot
    try:
        old = jws.pinset(1, [key], hosts={"localhost": {"pins": [pki.genuine.pin, spare]}}, url=srv.url())
        b = vboard()
        os.makedirs(os.path.join(b.root, "lib"))
        for name, src in (("network.py", NETWORK_STUB), ("ntptime.py", NTPTIME_STUB)):
            with open(os.path.join(b.root, "lib", name), "w") as f:
                f.write(src)
        pins = tmp_path / "pins.json"
        pins.write_bytes(old)
        p = b.flash(str(pins), "--lib", "--force")
        assert p.returncode == 0, p.stdout + p.stderr
        rotated = serve(pki.rotated)
        if board == "UNIX":
            with open(os.path.join(b.root, "app.json"), "w") as f:
                json.dump({"host": "localhost", "port": rotated.port, "attempts": 1}, f)
            marker = "PINNED OK"
        else:
            with open(os.path.join(b.root, "secrets.json"), "w") as f:
                json.dump({"ssid": "test-wifi", "password": "x", "host": "localhost", "port": rotated.port}, f)
            marker = "pinned GET"
        out = run_until(b, os.path.join(ROOT, "boards", board, "main.py"), marker, timeout=60)
    finally:
        srv.stop()
    assert "UPDATE at boot failed (fetch)" in out and "HTTP 404" in out, out
    assert "REFUSED localhost" in out, out
    assert "UPDATE after a refusal: installed (serial 2)" in out, out
    assert out.index("UPDATE after a refusal") < out.index(marker) and "Traceback" not in out, out
    assert len(srv.requests) == 2
    assert open(os.path.join(b.root, "certpin.json"), "rb").read() == new
