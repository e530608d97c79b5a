"""`make demo`: the whole certpin job on a virtual board, with no board and no internet.

  1. a private PKI: a genuine root -> intermediate -> leaf for "localhost", and a
     rogue CA that issued a certificate for the same name (the attacker);
  2. two HTTPS servers on 127.0.0.1: the genuine backend and the attacker;
  3. certpin pin      -> the genuine server's pins (chain verified with --cafile);
     certpin keygen   -> an offline backup key;
     certpin pinset new / pinset lint / verify (genuine: accepted; attacker: refused);
  4. certpin vboard   -> a virtual board (the MicroPython unix port on a pty);
     certpin flash --lib -> the library and the pinset onto it;
  5. the board's example (boards/UNIX/main.py) against both servers: the genuine
     one connects, the attacker is refused with the message naming the pins.

Everything it starts (servers, the vboard) and every file it writes (a temporary
directory) is gone when it ends, also on Ctrl-C. Exit status 0 when every step
did what it should.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the test PKI and TLS servers

from support.pki import PKI  # noqa: E402
from support.servers import TLSServer  # noqa: E402

CERTPIN = [sys.executable, "-m", "certpin_host"]
MPREMOTE = [sys.executable, "-m", "mpremote"]
TIMEOUT = 120
BOLD, RED, GREEN, RESET = ("\033[1m", "\033[31m", "\033[32m", "\033[0m") if sys.stdout.isatty() else ("",) * 4


class StepFailed(Exception):
    pass


def say(text):
    print("\n%s== %s%s" % (BOLD, text, RESET), flush=True)


def show(cmd, cwd):
    shown = [os.path.relpath(c, cwd) if os.path.isabs(c) and c.startswith(cwd) else c for c in cmd]
    if shown[:3] == CERTPIN:
        shown = ["certpin"] + shown[3:]
    elif shown[:3] == MPREMOTE:
        shown = ["mpremote"] + shown[3:]
    print("$ " + " ".join(shown), flush=True)


def run(cmd, cwd, expect=0, what=None):
    show(cmd, cwd)
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise StepFailed("%s: timed out after %ds" % (what or cmd[0], TIMEOUT))
    for line in (p.stdout + p.stderr).rstrip("\n").splitlines():
        print("  " + line)
    if p.returncode != expect:
        raise StepFailed("%s: exit status %d, expected %d" % (what or " ".join(cmd[:4]), p.returncode, expect))
    return p


def start_vboard(root):
    cmd = CERTPIN + ["vboard", "--root", root, "--fs", "lfs2", "--size", str(1024 * 1024)]
    show(cmd, os.path.dirname(root))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        print("  " + line.rstrip())
        m = re.match(r"vboard: port (\S+)", line)
        if m:
            return p, m.group(1)
    stop_vboard(p)
    raise StepFailed("certpin vboard did not start")


def stop_vboard(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    p.stdout.close()


def board_example(port, work, app, label):
    """Put /app.json on the board and run the example there; returns its output."""
    cfg = os.path.join(work, "app-%s.json" % label)
    with open(cfg, "w") as f:
        json.dump(app, f)
    p = run(MPREMOTE + ["connect", port, "resume", "fs", "cp", cfg, ":/app.json", "+",
                        "run", os.path.join(HERE, "main.py")], work, what="the board's example")
    return p.stdout


def main():
    work = tempfile.mkdtemp(prefix="certpin-demo-")
    servers, vboard = [], None
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print("working in %s (removed at the end)" % work)
        say("1. a private PKI: genuine root -> intermediate -> leaf for localhost, and a rogue CA")
        pki = PKI(os.path.join(work, "pki"))
        cafile = pki.path("root.pem")
        print("  genuine chain and rogue CA written to %s" % os.path.relpath(pki.dir, work))

        say("2. two HTTPS servers on 127.0.0.1 for the same name: the genuine backend and an attacker")
        for leaf, name in ((pki.genuine, "genuine backend"), (pki.rogue_leaf, "attacker (rogue CA)")):
            chain, key = leaf.write(pki.dir)
            servers.append(TLSServer(chain, key, name=name).start())
        genuine, attacker = servers
        print("  genuine backend  https://localhost:%d" % genuine.port)
        print("  attacker         https://localhost:%d  (certificate from the rogue CA)" % attacker.port)

        say("3. compute the pins of the genuine server (its chain verified against our CA)")
        p = run(CERTPIN + ["pin", "localhost:%d" % genuine.port, "--cafile", cafile], work)
        p = run(CERTPIN + ["pin", "localhost:%d" % genuine.port, "--cafile", cafile, "--json"], work)
        leaf_pin = [c for c in json.loads(p.stdout) if c["depth"] == 0][0]["spki_sha256"]

        say("4. an offline backup key: the spare that saves the fleet when the live key is lost")
        run(CERTPIN + ["keygen", os.path.join(work, "backup-1.pem")], work)

        say("5. build the pinset: the live leaf pin plus the backup pin")
        pins = os.path.join(work, "pins.json")
        expires = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 180 * 86400))
        run(CERTPIN + ["pinset", "new", pins, "localhost", "--pin", leaf_pin,
                       "--key", os.path.join(work, "backup-1.pem"), "--expires", expires], work)
        with open(pins) as f:
            print("  " + f.read().replace("\n", "\n  "))

        say("6. lint it (governance rules), then verify it against the live servers")
        run(CERTPIN + ["pinset", "lint", pins], work)
        run(CERTPIN + ["verify", pins, "--host", "127.0.0.1", "--port", str(genuine.port), "--cafile", cafile], work)
        print("  ... and the attacker, even with its rogue CA trusted (a compromised CA): only the pins refuse it")
        both = os.path.join(work, "genuine-and-rogue-ca.pem")
        with open(both, "wb") as f:
            f.write(pki.root_pem + open(pki.path("rogue-root.pem"), "rb").read())
        run(CERTPIN + ["verify", pins, "--host", "127.0.0.1", "--port", str(attacker.port), "--cafile", both],
            work, expect=1)

        say("7. a virtual board: the MicroPython unix port on a pty, LittleFS2 flash like an ESP32")
        vboard, port = start_vboard(os.path.join(work, "board"))

        say("8. flash the library and the pinset onto it (lint, temporary name, board-side SHA-256, rename)")
        run(CERTPIN + ["flash", pins, "--port", port, "--lib"], work)

        say("9. the board's example (boards/UNIX/main.py) against the genuine backend")
        out = board_example(port, work, {"host": "localhost", "port": genuine.port, "attempts": 1}, "genuine")
        if "PINNED OK" not in out:
            raise StepFailed("the board did not connect to the genuine backend")

        say("10. the same example against the attacker")
        out = board_example(port, work, {"host": "localhost", "port": attacker.port, "attempts": 1}, "attacker")
        if "REFUSED" not in out or leaf_pin not in out:
            raise StepFailed("the board did not refuse the attacker with a message naming the pins")
        if attacker.app_bytes:
            raise StepFailed("the attacker received application data: %r" % attacker.app_bytes[:80])

        print("\n%sdemo passed%s: the board accepted the genuine backend and refused the attacker "
              "before sending it a byte." % (GREEN + BOLD, RESET))
        return 0
    except StepFailed as e:
        print("\n%sdemo FAILED: %s%s" % (RED + BOLD, e, RESET), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130
    finally:
        if vboard:
            stop_vboard(vboard)
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
