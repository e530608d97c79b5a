"""MQTT for tests: Debian's mosquitto broker with a TLS listener on loopback,
and the PyPI release of umqtt.simple that calls ussl.wrap_socket.

Neither is written here: the broker is the distribution's binary (tests skip
when it is missing; `.ci/apt-install mosquitto` installs it when run as root), the
client is fetched from the package index with pip, hash-pinned, and cached.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

UMQTT = "micropython-umqtt.simple==1.3.4"
UMQTT_SDIST_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
UMQTT_SIMPLE_SHA256 = "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"


def fetch_umqtt(cache):
    """A directory holding umqtt/simple.py of micropython-umqtt.simple 1.3.4.

    The 2017 sdist has no setup.py, so pip cannot build it; `pip download`
    still fetches it from the configured index, checks the pinned hash and
    unpacks it before giving up, and --no-clean keeps the unpacked tree.
    """
    dest = os.path.join(cache, "micropython-umqtt.simple-1.3.4")
    simple = os.path.join(dest, "umqtt", "simple.py")
    if os.path.exists(simple) and _sha256(simple) == UMQTT_SIMPLE_SHA256:
        return dest
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="umqtt-fetch-") as tmp:
        req = os.path.join(tmp, "requirements.txt")
        with open(req, "w") as f:
            f.write("%s --hash=sha256:%s\n" % (UMQTT, UMQTT_SDIST_SHA256))
        p = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-clean", "--no-binary", ":all:",
             "-d", os.path.join(tmp, "dl"), "-r", req],
            env=dict(os.environ, TMPDIR=tmp), capture_output=True, text=True, timeout=300,
        )
        found = None
        for d, _, files in os.walk(tmp):
            if os.path.basename(d) == "umqtt" and "simple.py" in files:
                found = d
        if found is None or _sha256(os.path.join(found, "simple.py")) != UMQTT_SIMPLE_SHA256:
            raise RuntimeError("could not fetch %s with pip:\n%s%s" % (UMQTT, p.stdout[-2000:], p.stderr[-2000:]))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(found, os.path.join(dest + ".tmp", "umqtt"))
        os.rename(dest + ".tmp", dest)
    return dest


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mosquitto_binary():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A mosquitto broker on 127.0.0.1 with one TLS listener serving chain/key.

    Its own config file and log in ``workdir``; ``log()`` returns the log
    (every connection, CONNECT and PUBLISH is logged)."""

    def __init__(self, binary, chain, key, workdir, name="broker"):
        self.binary, self.chain, self.key = binary, chain, key
        self.conf = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(5):  # the free port can be taken between the probe and the bind
            self.port = _free_port()
            with open(self.conf, "w") as f:
                f.write(
                    "per_listener_settings false\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type all\n"
                    # as root mosquitto would switch to its own user, who cannot read the test PKI
                    + ("user root\n" if os.geteuid() == 0 else "")
                    + "listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n" % (self.port, self.chain, self.key)
                )
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("mosquitto did not start:\n" + self.log())

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Subscriber:
    """A minimal MQTT 3.1.1 subscriber (CPython, TLS without verification: it runs
    beside the broker) that calls ``on_message(topic, payload)`` for every PUBLISH
    on ``topic``, QoS 0: what a fleet's report collector does on the broker side.
    ``start()`` returns once the broker acknowledged the subscription."""

    def __init__(self, port, topic, on_message, host="127.0.0.1", client_id="certpin-collector"):
        self.port, self.topic, self.on_message, self.host, self.client_id = port, topic, on_message, host, client_id
        self.sock = None
        self.thread = None

    @staticmethod
    def _packet(kind, body):
        n, head = len(body), bytearray([kind])
        while True:
            b = n & 0x7F
            n >>= 7
            head.append(b | (0x80 if n else 0))
            if not n:
                return bytes(head) + body

    @staticmethod
    def _str(s):
        b = s.encode()
        return len(b).to_bytes(2, "big") + b

    def _read(self):
        kind = self.sock.recv(1)
        if not kind:
            return None, None
        n = shift = 0
        while True:
            b = self.sock.recv(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = b""
        while len(body) < n:
            chunk = self.sock.recv(n - len(body))
            if not chunk:
                return None, None
            body += chunk
        return kind[0], body

    def start(self):
        import ssl
        import threading

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection((self.host, self.port), timeout=10))
        self.sock.sendall(self._packet(0x10, self._str("MQTT") + bytes([4, 2, 0, 60]) + self._str(self.client_id)))
        kind, body = self._read()
        if kind != 0x20 or body[1:2] != b"\x00":
            raise RuntimeError("the broker refused the collector's CONNECT: %r %r" % (kind, body))
        self.sock.sendall(self._packet(0x82, b"\x00\x01" + self._str(self.topic) + b"\x00"))
        kind, body = self._read()
        if kind != 0x90:
            raise RuntimeError("no SUBACK from the broker: %r" % kind)
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        try:
            while True:
                kind, body = self._read()
                if kind is None:
                    return
                if kind >> 4 == 3:  # PUBLISH
                    n = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + n].decode()
                    rest = body[2 + n :]
                    if kind & 0x06:  # QoS 1 or 2: a packet id before the payload
                        rest = rest[2:]
                    self.on_message(topic, rest)
        except (OSError, ValueError, IndexError):
            return

    def stop(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.thread is not None:
            self.thread.join(5)
