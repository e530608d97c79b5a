"""`make demo`: the whole certpin job on a virtual board, with no board and no internet.

Provisioning:
  1. a private PKI: a genuine root -> intermediate -> leaf for "localhost", and a
     rogue CA that issued a certificate for the same name (the attacker);
  2. two HTTPS servers on 127.0.0.1 (the genuine backend and the attacker) and a
     plain-HTTP update server (plain on purpose: the signature carries the trust);
  3. certpin pin      -> the genuine server's pins (chain verified with --cafile);
  4. certpin keygen   -> an offline backup key;
  5. certpin keygen --signing -> an offline pinset signing key;
  6. certpin pinset new (with an "update" section) / pinset lint / verify
     (genuine: accepted; attacker: refused);
  7. certpin pinset sign -> the release bundle, published on the update server;
  8. certpin vboard   -> a virtual board (the MicroPython unix port on a pty);
     certpin flash --lib -> the library and the pinset onto it;
  9. the board's example (boards/UNIX/main.py) against both servers: the genuine
     one connects, the attacker is refused with the message naming the pins.
A signed pinset update in the field (docs/updates.md, docs/signing.md):
 10. the genuine server rotates to its backup key: the board, now running its
     example on and on as a device does, still connects (the backup pin);
 11. the operator makes the next pinset (the live key + a new backup key),
     lints, signs, check-updates it against the board's pinset, publishes it;
 12. the server's certificate changes to the new backup key: the board is
     refused, fetches the signed update, installs it and reconnects;
 13. attacker bundles offered to the board (unsigned, signed by an unknown key,
     a replay of the older bundle, a tampered payload): each refused with its
     reason, the board's pinset unchanged.
The fleet's reports (docs/reports.md), fleet_reports() below:
 14. `certpin status`: the board's pinset and its failure journal (what it
     refused so far), which the operator then collects;
 15. an interception: the network path to localhost leads to an attacker (a
     relay on 127.0.0.1); the board refuses it, and sends its report to a
     collector over HTTP (certpin.send_reports());
 16. a rotation without a pin update: the genuine server moves to a key the
     board does not pin; the board refuses it, and the application sends the
     report through its own pinned MQTT connection (umqtt.simple, certpin.
     install(), a real mosquitto broker: skipped with a note without one);
 17. `certpin reports --live` on what the collector received: it asks the
     server which key it presents now and tells the two stories apart.
A board that sleeps through rotations (docs/signing.md, catch_up_story below):
 18. while the board is off, the operator publishes with `certpin pinset
     publish` (a static site: the newest release + catch-up files), rotates
     the signing key (the rotation release signed by the old key AND the new
     one; the old key destroyed only after publishing) and the server key (the
     backup becomes the live key, a new backup is added);
 19. the board wakes: the rotated server refuses it, ONE fetch_update() call
     walks the catch-up path to the newest release, and it reconnects.

Everything it starts (servers, the vboard, the board's example) and every file
it writes (a temporary directory) is gone when it ends, also on Ctrl-C. Exit
status 0 when every step did what it should.
"""
import base64
import functools
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the test PKI and TLS servers

from support.collector import Collector  # noqa: E402
from support.pki import PKI  # noqa: E402
from support.servers import TLSServer  # noqa: E402

CERTPIN = [sys.executable, "-m", "certpin_host"]
MPREMOTE = [sys.executable, "-m", "mpremote"]
TIMEOUT = 120
WAIT = 60  # seconds the running board gets to print what a step expects (a loaded machine is slow)
UPDATE_PATH = "/fleet/certpin.jws"
BOLD, RED, GREEN, RESET = ("\033[1m", "\033[31m", "\033[32m", "\033[0m") if sys.stdout.isatty() else ("",) * 4

# Run on the board to offer it whatever the update server holds: the device
# library fetches, verifies and installs or refuses it, as main.py does after a
# refusal, but printing the refusal's machine-readable reason.
OFFER_UPDATE = """\
import certpin
try:
    ps, changed = certpin.fetch_update(timeout=15)
    print("UPDATE %s (serial %s)" % ("INSTALLED" if changed else "unchanged", ps.serial))
except certpin.UpdateError as e:
    print("UPDATE REFUSED, reason %s" % e.reason)
    print(e)
print("board pinset serial %s" % certpin.load().serial)
"""


class StepFailed(Exception):
    pass


def say(text):
    print("\n%s== %s%s" % (BOLD, text, RESET), flush=True)


def note(text):
    print("  " + text.replace("\n", "\n  "), flush=True)


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
    end_process(p)
    p.stdout.close()
    raise StepFailed("certpin vboard did not start")


def end_process(p):
    """End a process the demo started in a session of its own (the vboard, the
    running board example), and its children."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def example_cmd(port, work, app, label):
    """mpremote: put /app.json on the board, then run the example there."""
    cfg = os.path.join(work, "app-%s.json" % label)
    with open(cfg, "w") as f:
        json.dump(app, f)
    return MPREMOTE + ["connect", port, "resume", "fs", "cp", cfg, ":/app.json", "+", "run", os.path.join(HERE, "main.py")]


def board_example(port, work, app, label):
    """Run the example once on the board; returns its output."""
    return run(example_cmd(port, work, app, label), work, what="the board's example").stdout


class RunningExample:
    """The board's example running on and on (attempts 0), as a device in the
    field does, while the demo carries on: its output is collected by a thread
    and shown when a step has something to show."""

    def __init__(self, cmd, cwd):
        show(cmd, cwd)
        self.p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.lines, self.ended = [], False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_for(self, text, start):
        """Index of the first line from `start` on that contains `text`."""
        deadline = time.monotonic() + WAIT
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    self.show(start, len(self.lines))
                    raise StepFailed("the board's example %s without printing %r" % (
                        "ended" if self.ended else "went %ds" % WAIT, text))
                self.cond.wait(left)

    def show(self, start, end):
        with self.cond:
            for line in self.lines[start:end]:
                print("  | " + line)
        sys.stdout.flush()

    def count(self, text, start):
        with self.cond:
            return sum(text in line for line in self.lines[start:])

    def interrupt(self, port):
        """Ctrl-C to the board, as at its REPL (the vboard turns it into SIGINT):
        the example stops, mpremote reports the KeyboardInterrupt and exits."""
        fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
        try:
            os.write(fd, b"\x03")
        finally:
            os.close(fd)
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            raise StepFailed("the board's example did not stop on Ctrl-C")

    def stop(self):
        end_process(self.p)
        self.reader.join(5)  # it reads to EOF: close the pipe only after it is done
        self.p.stdout.close()


class UpdateServer:
    """A plain HTTP file server on 127.0.0.1 serving the directory `root`: the
    operator publishes by copying a bundle there. It records each request."""

    def __init__(self, root):
        log = self.log = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, fmt, *args):
                log.append("%s %s" % (self.address_string(), fmt % args))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, UPDATE_PATH)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve_leaf(server, leaf, directory):
    """The server presents `leaf` from its next handshake on (a certificate change)."""
    chain, key = leaf.write(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    server.ctx = ctx


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Relay:
    """The network path to a port on 127.0.0.1: each connection is forwarded to
    127.0.0.1:target, which the demo changes (an on-path attacker, then the real
    server again). A device cannot tell: only the pin check can."""

    def __init__(self, target):
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                a.close()
                continue
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(x, y):
        try:
            while True:
                data = x.recv(65536)
                if not data:
                    break
                y.sendall(data)
        except OSError:
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# Run on the board: what an application does with its failure journal.
SEND_HTTP = """\
import certpin
certpin.device_id = "vboard-1"  # the records carry it (a board's machine.unique_id() by default)
n = certpin.send_reports(%r, timeout=10)  # or the pinset's report.url, without an argument
print("REPORTS DELIVERED over HTTP: %%d record(s)" %% n)
"""

SEND_MQTT = """\
# The application's own MQTT connection (umqtt.simple 1.3.4 from PyPI), pinned by
# install() as boot.py does it: the reports go where its telemetry goes.
import json
import certpin
certpin.install()
certpin.device_id = "vboard-1"
from umqtt.simple import MQTTClient
c = MQTTClient("certpin-device", "localhost", port=%d, ssl=True, ssl_params={"server_hostname": "localhost"})
c.connect()
recs = certpin.reports(clear=True)  # handed over: the journal is emptied
c.publish(b"fleet/reports", json.dumps(recs), qos=1)  # qos=1: the broker acknowledges it
c.disconnect()
certpin.uninstall()
print("REPORTS PUBLISHED over MQTT: %%d record(s)" %% len(recs))
"""

COLLECT = """\
import certpin
print("COLLECTED %d earlier record(s)" % len(certpin.reports(clear=True)))
"""


def fleet_reports(work, pki, port, genuine, attacker, backup1, cleanup):
    """Steps 14-17: the failure journal, reports over HTTP and MQTT, and `certpin reports --live`."""
    say("14. what the board holds and what it refused so far: certpin status")
    run(CERTPIN + ["status", "--port", port], work, expect=1)
    collect = os.path.join(work, "collect.py")
    write(collect, COLLECT)
    run(MPREMOTE + ["connect", port, "resume", "run", collect], work, what="collecting the earlier records")
    note("(the operator took those over USB; what follows reaches the fleet's collector)")

    reports = os.path.join(work, "reports.jsonl")
    collector = Collector("ok", log=reports).start()
    cleanup.append(collector.stop)
    relay = Relay(attacker.port)
    cleanup.append(relay.stop)
    print("  report collector  %s  (appends every POST body to reports.jsonl)" % collector.url())
    print("  localhost:%d      the network path the board uses to reach its server" % relay.port)

    say("15. an interception: the path to localhost now leads to the attacker (rogue CA); the board refuses it")
    out = board_example(port, work, {"host": "localhost", "port": relay.port, "attempts": 1}, "intercepted")
    if "REFUSED" not in out:
        raise StepFailed("the board did not refuse the attacker on its path")
    send = os.path.join(work, "send-http.py")
    write(send, SEND_HTTP % collector.url())
    print("  send-http.py, run on the board:")
    note("  " + SEND_HTTP.rstrip().replace("\n", "\n  ") % collector.url())
    out = run(MPREMOTE + ["connect", port, "resume", "run", send], work, what="send_reports").stdout
    if "REPORTS DELIVERED over HTTP: 1 record(s)" not in out:
        raise StepFailed("the board did not deliver its report over HTTP")
    print("  the collector received:")
    note("  " + read(reports).rstrip().replace("\n", "\n  "))

    say("16. a key rotation without a pin update: the path is clean again, but the genuine server moved to a "
        "new key nobody pinned")
    relay.target = genuine.port
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    leaf = pki.issue_for_key("new-key", key)
    serve_leaf(genuine, leaf, pki.dir)
    print("  the server's admin made a new key and got it certified by the genuine CA (%s), and told nobody "
          "who ships pins" % leaf.pin)
    out = board_example(port, work, {"host": "localhost", "port": relay.port, "attempts": 1}, "rotated")
    if "REFUSED" not in out:
        raise StepFailed("the board did not refuse the server's unpinned new key")
    if not mqtt_delivery(work, pki, port, backup1, reports, cleanup):
        write(send, SEND_HTTP % collector.url())
        out = run(MPREMOTE + ["connect", port, "resume", "run", send], work, what="send_reports").stdout
        if "REPORTS DELIVERED over HTTP: 1 record(s)" not in out:
            raise StepFailed("the board did not deliver its report over HTTP")

    say("17. the operator: what do the reports say, and what do the servers present now?")
    p = run(CERTPIN + ["reports", reports, "--live"], work, expect=3, what="certpin reports --live")
    if "interception suspected" not in p.stdout or "a rotation without a pin update; ship a pin" not in p.stdout:
        raise StepFailed("certpin reports --live did not tell the interception from the rotation")
    note("exit status 3: an interception is suspected (1 would mean only failures to act on, such as the rotation)")


def mqtt_delivery(work, pki, port, backup1, reports, cleanup):
    """Publish the board's reports through a pinned MQTT connection to a real
    mosquitto; False (with the reason said) when the broker or the client is missing."""
    from support.mqtt import Mosquitto, Subscriber, fetch_umqtt, mosquitto_binary

    broker_bin = mosquitto_binary()
    if not broker_bin:
        note("(MQTT skipped: Debian's mosquitto broker is not installed (apt-get install mosquitto); "
             "the report goes over HTTP instead)")
        return False
    cache = os.path.join(ROOT, ".venv", "certpin-test-cache")
    try:
        umqtt = fetch_umqtt(cache if os.path.isdir(os.path.dirname(cache)) else os.path.join(work, "cache"))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        note("(MQTT skipped: umqtt.simple could not be fetched from the package index: %s; "
             "the report goes over HTTP instead)" % str(e).splitlines()[0])
        return False
    # The broker presents a certificate for localhost whose key the board pins (backup-1).
    chain, key = pki.issue_for_key("broker", read(backup1, "rb")).write(pki.dir)
    broker = Mosquitto(broker_bin, chain, key, work, name="broker").start()
    cleanup.append(broker.stop)
    got = []
    received = threading.Event()

    def on_message(topic, payload):
        with open(reports, "ab") as f:
            f.write(payload.replace(b"\n", b" ") + b"\n")
        got.append(payload)
        received.set()

    sub = Subscriber(broker.port, "fleet/reports", on_message).start()
    cleanup.append(sub.stop)
    print("  MQTT broker  mosquitto on 127.0.0.1:%d (TLS, a certificate for backup-1.pem, a key the board pins); "
          "the collector subscribes to fleet/reports" % broker.port)
    run(MPREMOTE + ["connect", port, "resume", "fs", "mkdir", ":/lib/umqtt", "+", "fs", "cp",
                    os.path.join(umqtt, "umqtt", "simple.py"), ":/lib/umqtt/simple.py"], work, what="copying umqtt.simple")
    send = os.path.join(work, "send-mqtt.py")
    write(send, SEND_MQTT % broker.port)
    print("  send-mqtt.py, run on the board:")
    note("  " + (SEND_MQTT % broker.port).rstrip().replace("\n", "\n  "))
    out = run(MPREMOTE + ["connect", port, "resume", "run", send], work, what="publishing over MQTT").stdout
    if "REPORTS PUBLISHED over MQTT: 1 record(s)" not in out:
        raise StepFailed("the board did not publish its report over MQTT")
    if not received.wait(15):
        raise StepFailed("the collector did not receive the board's MQTT message")
    print("  the collector received on fleet/reports:")
    note("  " + got[0].decode(errors="replace"))
    return True


def main():
    work = tempfile.mkdtemp(prefix="certpin-demo-")
    servers, vboard, running, updates = [], None, None, None
    cleanup = []  # what fleet_reports() starts: stopped at the end whatever happens
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print("working in %s (removed at the end)" % work)
        say("1. a private PKI: genuine root -> intermediate -> leaf for localhost, and a rogue CA")
        pki = PKI(os.path.join(work, "pki"))
        cafile = pki.path("root.pem")
        print("  genuine chain and rogue CA written to %s" % os.path.relpath(pki.dir, work))

        say("2. on 127.0.0.1: two HTTPS servers for the same name (the genuine backend and an attacker), "
            "and an update server")
        for leaf, name in ((pki.genuine, "genuine backend"), (pki.rogue_leaf, "attacker (rogue CA)")):
            chain, key = leaf.write(pki.dir)
            servers.append(TLSServer(chain, key, name=name).start())
        genuine, attacker = servers
        www = os.path.join(work, "www")
        os.makedirs(www + os.path.dirname(UPDATE_PATH))
        published = www + UPDATE_PATH
        updates = UpdateServer(www)
        print("  genuine backend  https://localhost:%d" % genuine.port)
        print("  attacker         https://localhost:%d  (certificate from the rogue CA)" % attacker.port)
        print("  update server    %s  (serves www/; plain HTTP on purpose: the signature carries the trust)"
              % updates.url)

        say("3. compute the pins of the genuine server (its chain verified against our CA)")
        run(CERTPIN + ["pin", "localhost:%d" % genuine.port, "--cafile", cafile], work)
        p = run(CERTPIN + ["pin", "localhost:%d" % genuine.port, "--cafile", cafile, "--json"], work)
        leaf_pin = [c for c in json.loads(p.stdout) if c["depth"] == 0][0]["spki_sha256"]

        say("4. an offline backup key: the spare that saves the fleet when the live key is lost")
        backup1 = os.path.join(work, "backup-1.pem")
        run(CERTPIN + ["keygen", backup1], work)

        say("5. an offline signing key: it signs the next pinset the board fetches and installs")
        sign1 = os.path.join(work, "sign-1.pem")
        run(CERTPIN + ["keygen", "--signing", sign1, "--public", os.path.join(work, "sign-1.pub.pem")], work)
        note("(one key keeps the demo short; a real fleet uses two or three, each on its own offline machine,\n"
             " with threshold 2, so one stolen key signs nothing: docs/signing.md)")

        say("6. build the pinset: the live leaf pin, the backup pin, and the update section; lint it, verify it")
        pins = os.path.join(work, "pins.json")
        expires = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 180 * 86400))
        run(CERTPIN + ["pinset", "new", pins, "localhost", "--pin", leaf_pin, "--key", backup1, "--expires", expires,
                       "--update-key", os.path.join(work, "sign-1.pub.pem"), "--update-url", updates.url], work)
        note(read(pins).rstrip())
        run(CERTPIN + ["pinset", "lint", pins], work)
        run(CERTPIN + ["verify", pins, "--connect-to", "::127.0.0.1:%d" % genuine.port, "--cafile", cafile], work)
        print("  ... and the attacker, as a device given cadata that trusts its rogue CA (a compromised CA): only the\n"
              "  pins refuse it")
        both = os.path.join(work, "genuine-and-rogue-ca.pem")
        with open(both, "wb") as f:
            f.write(pki.root_pem + read(pki.path("rogue-root.pem"), "rb"))
        run(CERTPIN + ["verify", pins, "--connect-to", "::127.0.0.1:%d" % attacker.port, "--cadata", both],
            work, expect=1)

        say("7. sign the pinset, as an operator releases every pinset, and publish the bundle")
        bundle1 = os.path.join(work, "pins-1.jws")
        run(CERTPIN + ["pinset", "sign", pins, "--key", sign1, "-o", bundle1], work)
        run(["cp", bundle1, published], work)

        say("8. a virtual board (the MicroPython unix port on a pty, LittleFS2 flash like an ESP32); "
            "flash the library and the pinset")
        vboard, port = start_vboard(os.path.join(work, "board"))
        run(CERTPIN + ["flash", pins, "--port", port, "--lib"], work)

        say("9. the board's example (boards/UNIX/main.py) against the genuine backend, then the attacker")
        out = board_example(port, work, {"host": "localhost", "port": genuine.port, "attempts": 1}, "genuine")
        if "PINNED OK" not in out:
            raise StepFailed("the board did not connect to the genuine backend")
        out = board_example(port, work, {"host": "localhost", "port": attacker.port, "attempts": 1}, "attacker")
        if "REFUSED" not in out or leaf_pin not in out:
            raise StepFailed("the board did not refuse the attacker with a message naming the pins")
        if attacker.app_bytes:
            raise StepFailed("the attacker received application data: %r" % attacker.app_bytes[:80])

        say("10. the genuine server rotates to its backup key (a certificate for backup-1.pem from the genuine CA)")
        serve_leaf(genuine, pki.issue_for_key("backup-1", read(backup1, "rb")), pki.dir)
        run(CERTPIN + ["verify", pins, "--connect-to", "::127.0.0.1:%d" % genuine.port, "--cafile", cafile], work)
        note("the board now runs its example on and on, as a device in the field does (attempts 0: forever):")
        running = RunningExample(example_cmd(port, work, {"host": "localhost", "port": genuine.port, "attempts": 0},
                                             "running"), work)
        boot = running.wait_for("UPDATE at boot", 0)
        end = running.wait_for("retrying in", boot)
        running.show(0, end + 1)
        if "none newer (serial 1)" not in running.lines[boot]:
            raise StepFailed("at boot the board should have found its own pinset on the update server")
        if not any("PINNED OK" in line for line in running.lines[boot:end]):
            raise StepFailed("the board did not connect to the server's backup key")

        say("11. the operator: a new backup key, the next pinset (the live key, backup-1, + the new backup), "
            "lint, sign, check, publish")
        mark = running.mark()
        backup2 = os.path.join(work, "backup-2.pem")
        backup2_pin = run(CERTPIN + ["keygen", backup2], work).stdout.split()[0]
        pins2 = os.path.join(work, "pins-2.json")
        run(["cp", pins, pins2], work)
        run(CERTPIN + ["pinset", "add", pins2, "localhost", "--key", backup1, "--key", backup2], work)
        if json.loads(read(pins2))["serial"] != 2:
            raise StepFailed("pinset add did not bump the serial to 2")
        run(CERTPIN + ["pinset", "lint", pins2], work)
        bundle2 = os.path.join(work, "pins-2.jws")
        run(CERTPIN + ["pinset", "sign", pins2, "--key", sign1, "-o", bundle2], work)
        print("  ... would a board holding pins.json (what the board runs now) install it?")
        run(CERTPIN + ["pinset", "check-update", bundle2, "--current", pins], work)
        run(["cp", bundle2, published], work)
        note("meanwhile the board connected %d more time(s) with the backup pin"
             % running.count("PINNED OK", mark))

        say("12. the server's certificate changes to backup-2.pem, a key the board does not pin yet")
        mark, logged = running.mark(), len(updates.log)
        serve_leaf(genuine, pki.issue_for_key("backup-2", read(backup2, "rb")), pki.dir)
        refused = running.wait_for("REFUSED", mark)
        upd = running.wait_for("UPDATE after a refusal", refused)
        end = running.wait_for("retrying in", upd)
        running.interrupt(port)  # at once: it sleeps a second between attempts
        print("  the board's output (its example then stopped with Ctrl-C, between attempts):")
        running.show(refused, end + 1)
        print("  the update server's log:")
        for line in updates.log[logged:]:
            print("  | " + line)
        if "installed (serial 2)" not in running.lines[upd]:
            raise StepFailed("the board did not install the signed update")
        if not any("PINNED OK" in line for line in running.lines[upd:end]):
            raise StepFailed("the board did not reconnect after the update")
        running.stop()
        running = None

        say("13. attacker bundles on the update server, each offered to the board: the board's pinset must not change")
        offer = os.path.join(work, "offer-update.py")
        write(offer, OFFER_UPDATE)
        print("  offer-update.py, run on the board:")
        note("  " + OFFER_UPDATE.rstrip().replace("\n", "\n  "))
        print("  the attacker's pinset: pins-2.json with the live key's pin replaced by the attacker's, serial 3")
        evil = os.path.join(work, "evil.json")
        run(["cp", pins2, evil], work)
        run(CERTPIN + ["pinset", "add", evil, "localhost", "--pin", pki.rogue_leaf.pin, "--pin", backup2_pin], work)
        payload = b64url(read(evil, "rb"))

        unsigned = os.path.join(work, "unsigned.jws")
        write(unsigned, json.dumps({"payload": payload, "signatures": []}))
        run(CERTPIN + ["keygen", "--signing", os.path.join(work, "attacker-sign.pem")], work)
        unknown = os.path.join(work, "unknown-key.jws")
        run(CERTPIN + ["pinset", "sign", evil, "--key", os.path.join(work, "attacker-sign.pem"), "-o", unknown], work)
        tampered = os.path.join(work, "tampered.jws")
        genuine_bundle = json.loads(read(bundle2))
        write(tampered, json.dumps(dict(genuine_bundle, payload=payload)))
        attacks = (
            ("unsigned: evil.json as the payload, no signatures", unsigned, "not_jws"),
            ("signed by the attacker's own key", unknown, "unknown_key"),
            ("a replay of the older, genuinely signed bundle (serial 1)", bundle1, "rollback"),
            ("tampered: pins-2.jws with its payload swapped for evil.json, the operator's signature kept",
             tampered, "bad_signature"),
        )
        for what, bundle, reason in attacks:
            print("\n  -- %s (%s)" % (what, os.path.basename(bundle)))
            run(["cp", bundle, published], work)
            out = run(MPREMOTE + ["connect", port, "resume", "run", offer], work, what="offer-update.py").stdout
            if "UPDATE REFUSED, reason %s" % reason not in out:
                raise StepFailed("the board did not refuse %s with reason %s" % (os.path.basename(bundle), reason))
            if "board pinset serial 2" not in out:
                raise StepFailed("the board's pinset changed: %s" % out.strip().splitlines()[-1])

        run(["cp", bundle2, published], work)  # the update server holds the fleet's release again
        fleet_reports(work, pki, port, genuine, attacker, backup1, cleanup)
        catch_up_story(work, port, genuine, pki, updates, pins2, bundle2, sign1, backup2)

        print("\n%sdemo passed%s: the board accepted the genuine backend and refused the attacker before sending "
              "it a byte; when the server's key changed it fetched, verified and installed the signed pinset and "
              "reconnected; it refused every attacker bundle and kept its pinset; it recorded an interception and a "
              "key rotation, reported both, and the operator told them apart; after sleeping through a "
              "signing-key and a server-key rotation it caught up in one call and reconnected."
              % (GREEN + BOLD, RESET))
        return 0
    except StepFailed as e:
        print("\n%sdemo FAILED: %s%s" % (RED + BOLD, e, RESET), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130
    finally:
        for stop in reversed(cleanup):
            stop()
        if running:
            running.stop()
        if vboard:
            end_process(vboard)
            vboard.stdout.close()
        for s in servers:
            s.stop()
        if updates:
            updates.stop()
        shutil.rmtree(work, ignore_errors=True)


# Run on the board when it wakes up: what main.py does after a refusal, with
# the details shown (one fetch_update() call, however many releases it missed).
CATCH_UP = """\
import certpin
ps = certpin.load()
print("the board wakes holding serial %%s" %% ps.serial)
try:
    certpin.connect("localhost", %d, pinset=ps, timeout=15).close()
    print("CONNECTED (the server still holds a pinned key)")
except certpin.PinError as e:
    print("REFUSED by the rotated server: " + e.args[0].splitlines()[0])
ps, changed = certpin.fetch_update(timeout=15)
print("CAUGHT UP in one fetch_update() call: %%s serial %%s" %% ("installed" if changed else "still", ps.serial))
certpin.connect("localhost", %d, pinset=ps, timeout=15).close()
print("PINNED OK again, with the pinset it caught up to")
"""


def catch_up_story(work, port, genuine, pki, updates, pins2, bundle2, sign1, backup2):
    """Steps 18-19: the board (holding pins-2.json, signed by sign-1) sleeps while the
    operator publishes three releases with `certpin pinset publish`: a signing-key
    rotation (sign-1 -> sign-2), then a server-key rotation; it wakes and catches up."""
    site = os.path.join(work, "www", "fleet")  # update.url is http://127.0.0.1:PORT/fleet/certpin.jws
    name = os.path.basename(UPDATE_PATH)

    def publish(bundle):
        run(CERTPIN + ["pinset", "check-update", bundle, "--site", site, "--name", name], work)
        run(CERTPIN + ["pinset", "publish", bundle, site, "--name", name], work)

    say("18. the board is switched off (it holds pins-2.json, serial 2); meanwhile the operator publishes with "
        "`certpin pinset publish`, rotates the signing key and then the server key")
    print("  the update server's single file gives way to a site; the release the board holds starts its history")
    os.remove(os.path.join(site, name))
    run(CERTPIN + ["pinset", "publish", bundle2, site, "--name", name], work)

    print("\n  -- a signing-key rotation: sign-2 replaces sign-1; the rotation release is signed by BOTH")
    sign2 = os.path.join(work, "sign-2.pem")
    run(CERTPIN + ["keygen", "--signing", sign2, "--public", os.path.join(work, "sign-2.pub.pem")], work)
    pins3 = os.path.join(work, "pins-3.json")
    run(["cp", pins2, pins3], work)
    run(CERTPIN + ["pinset", "set-update", pins3, "--update-key", os.path.join(work, "sign-2.pub.pem")], work)
    bundle3 = os.path.join(work, "pins-3.jws")
    p = run(CERTPIN + ["pinset", "sign", pins3, "--key", sign1, "-o", bundle3], work)
    if "NOT COMPLETE" not in p.stdout:
        raise StepFailed("sign did not say that the new key has yet to sign the rotation release")
    run(CERTPIN + ["pinset", "sign", pins3, "--key", sign2, "-o", bundle3], work)
    publish(bundle3)
    print("  only now, with the rotation published, is the old signing key destroyed:")
    run(["rm", sign1], work)

    print("\n  -- a server-key rotation: the next pinset pins backup-2 (live) and a new backup-3")
    backup3 = os.path.join(work, "backup-3.pem")
    run(CERTPIN + ["keygen", backup3], work)
    pins4 = os.path.join(work, "pins-4.json")
    run(["cp", pins3, pins4], work)
    run(CERTPIN + ["pinset", "add", pins4, "localhost", "--replace", "--key", backup2, "--key", backup3], work)
    bundle4 = os.path.join(work, "pins-4.jws")
    run(CERTPIN + ["pinset", "sign", pins4, "--key", sign2, "-o", bundle4], work)
    publish(bundle4)
    print("  the server moves to its backup key, backup-3 (the board, asleep, pins only backup-1 and backup-2)")
    serve_leaf(genuine, pki.issue_for_key("backup-3", read(backup3, "rb")), pki.dir)
    print("  ... and the next pinset adds a new backup, backup-4; the site now strands nobody holding any release:")
    backup4 = os.path.join(work, "backup-4.pem")
    run(CERTPIN + ["keygen", backup4], work)
    pins5 = os.path.join(work, "pins-5.json")
    run(["cp", pins4, pins5], work)
    run(CERTPIN + ["pinset", "add", pins5, "localhost", "--replace", "--key", backup3, "--key", backup4], work)
    bundle5 = os.path.join(work, "pins-5.jws")
    run(CERTPIN + ["pinset", "sign", pins5, "--key", sign2, "-o", bundle5], work)
    p = run(CERTPIN + ["pinset", "check-update", bundle5, "--site", site, "--name", name], work)
    if "serial 2 (key set" not in p.stdout or "3 of 3 reach it" not in p.stdout:
        raise StepFailed("check-update --site did not show the board's release reaching serial 5")
    run(CERTPIN + ["pinset", "publish", bundle5, site, "--name", name], work)

    say("19. the board wakes: the rotated server refuses it; one fetch_update() call catches up; it reconnects")
    script = os.path.join(work, "catch-up.py")
    write(script, CATCH_UP % (genuine.port, genuine.port))
    logged = len(updates.log)
    out = run(MPREMOTE + ["connect", port, "resume", "run", script], work, what="catch-up.py").stdout
    print("  the update server's log (one fetch_update() call):")
    for line in updates.log[logged:]:
        print("  | " + line)
    if "REFUSED by the rotated server" not in out:
        raise StepFailed("the rotated server did not refuse the board that slept")
    if "CAUGHT UP in one fetch_update() call: installed serial 5" not in out or "PINNED OK again" not in out:
        raise StepFailed("the board did not catch up to serial 5 and reconnect")
    if len(updates.log) - logged < 2:
        raise StepFailed("the board did not walk the catch-up path")


if __name__ == "__main__":
    sys.exit(main())
