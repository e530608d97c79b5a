"""`make bench-mcu`: what certpin costs on a board's instruction set, emulated.

Builds MicroPython's own bare-metal `ports/qemu` (MicroPython 1.26.1, the
source of Debian's package, fetched and unpacked as bench/frozen.py does) for

  MICROBIT    Cortex-M0 (ARMv6-M): the RP2040's instruction set
  VIRT_RV32   RV32IMAC: close to the ESP32-C3 (RV32IMC)
  MPS2_AN385  Cortex-M3 (ARMv7-M)

twice each, with certpin frozen into the firmware and without it (the library
then comes from the `.mpy` files `certpin flash --lib` installs, served by a
small filesystem written in Python, as MicroPython's run-tests.py --via-mpy
does, their bytes in RAM outside the GC heap), runs each under Debian's QEMU
with `-icount shift=0` (the guest clock advances one nanosecond per guest
instruction) and drives it over
the emulated UART with the raw REPL, as mpremote drives a board. Instructions
are read from a hardware timer of the emulated chip (nRF51 TIMER0 at 16 MHz on
MICROBIT, the CLINT's mtime at 10 MHz on VIRT_RV32, CMSDK timer 0 at 25 MHz on
MPS2_AN385): ticks x (1000 / MHz) = instructions, checked on each run
(timer_check). The counts repeat run for run: the inputs (certificate, keys,
signature, bundle) are made once and kept in .work/mcu/inputs.json.

The port has no network, no `tls`, no `time` and no filesystem:
bench/mcu_stubs/ holds the two stand-in modules frozen into both builds (see
there), and update() writes its files into the RAM filesystem mounted at
/flash. Heap figures are deltas of gc.mem_alloc() (32-bit objects and GC
blocks, as on a board); a real filesystem's buffers (LittleFS's file cache)
are not in them.

    bench/mcu.py                    every board whose toolchain and QEMU are installed
    bench/mcu.py --board MICROBIT   one board (repeatable)
    bench/mcu.py --unix             the same harness on the unix port (nanoseconds, not instructions)
    bench/mcu.py --quick            no peak-heap search, no ES256 row (what `make test` runs)
    bench/mcu.py --scenario S.py --files DIR
                                    also measure a scenario script (see run_scenario)

`make bench-mcu` installs the toolchains and QEMU with apt-get (as root) first.
The first run fetches the source and builds six firmware images (about 3
minutes on two shared cores; progress is printed); later runs reuse the builds
in .work/frozen/micropython-1.26.1/ports/qemu/build-* and take about a minute.
"""
import argparse
import base64
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
STUBS = os.path.join(HERE, "mcu_stubs")
WORK = os.path.join(ROOT, ".work", "mcu")

# QEMU's timer clocks (hw/timer/nrf51_timer.c, hw/riscv/virt.c, hw/arm/mps2.c): with
# -icount shift=0 one guest instruction is one nanosecond, so one tick is 1000/MHz instructions.
BOARDS = {
    "MICROBIT": {
        "isa": "Cortex-M0 (ARMv6-M, the RP2040's instruction set)",
        "qemu": ["qemu-system-arm", "-machine", "microbit", "-global", "nrf51-soc.flash-size=1048576",
                 "-global", "nrf51-soc.sram-size=262144"],
        "cc": "arm-none-eabi-gcc",
        "apt": ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"],
        "make": [],
        "chip": ("RP2040", 133),
        "timer": "nRF51 TIMER0, 16 MHz",
        "ns_per_tick": 62.5,
        # TIMER0: MODE timer, BITMODE 32 bit, PRESCALER 0 (16 MHz), CLEAR, START; a tick
        # count is TASKS_CAPTURE[0] then CC[0].
        "guest": ("mem32[0x40008504] = 0\nmem32[0x40008508] = 3\nmem32[0x40008510] = 0\n"
                  "mem32[0x4000800C] = 1\nmem32[0x40008000] = 1\n\n\n"
                  "def tk():\n    mem32[0x40008040] = 1\n    return mem32[0x40008540]\n"),
    },
    "VIRT_RV32": {
        "isa": "RV32IMAC (close to the ESP32-C3's RV32IMC)",
        "qemu": ["qemu-system-riscv32", "-machine", "virt", "-bios", "none"],
        "cc": "riscv64-unknown-elf-gcc",
        "apt": ["gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc"],
        # Debian's gcc links the 64-bit multilib for rv32imac_zicsr: link for rv32imac,
        # assemble and compile for rv32imac_zicsr (../shared/PLATFORM.md, "Emulated MCUs").
        "make": ["RV32_ARCH=rv32imac", "AFLAGS=-mabi=ilp32 -march=rv32imac_zicsr"],
        "chip": ("ESP32-C3", 160),
        "timer": "CLINT mtime, 10 MHz",
        "ns_per_tick": 100.0,
        "guest": "def tk():\n    return mem32[0x0200BFF8]\n",
    },
    "MPS2_AN385": {
        "isa": "Cortex-M3 (ARMv7-M)",
        "qemu": ["qemu-system-arm", "-machine", "mps2-an385"],
        "cc": "arm-none-eabi-gcc",
        "apt": ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"],
        "make": [],
        "chip": None,
        "timer": "CMSDK APB timer 0, 25 MHz",
        "ns_per_tick": 40.0,
        # Timer 0 counts down from RELOAD: start it at 0xFFFFFFFF, read VALUE negated.
        "guest": ("mem32[0x40000008] = 0xFFFFFFFF\nmem32[0x40000004] = 0xFFFFFFFF\nmem32[0x40000000] = 1\n\n\n"
                  "def tk():\n    return -mem32[0x40000004] & 0xFFFFFFFF\n"),
    },
}
DEFAULT_BOARDS = ("MICROBIT", "VIRT_RV32", "MPS2_AN385")
QEMU_COMMON = ["-nographic", "-monitor", "null", "-serial", "stdio", "-semihosting", "-icount", "shift=0"]
UNIX_GUEST = ("def tk():\n    return time.ticks_us()\n\n\n"
              "def el(t):\n    return time.ticks_diff(time.ticks_us(), t)\n")
HOST = "api.example.com"
MOUNT = "/flash"


class HarnessError(Exception):
    pass


# ---- the guest side: a RAM filesystem, heap and tick helpers -------------------------------------
# Sent once per boot, before any baseline. Everything a measurement needs exists before its
# baseline (globals are pre-bound, results go into the preallocated list R), so a figure counts
# only what certpin allocates.
GUEST = r'''
import gc, io, json, sys, vfs
from binascii import a2b_base64, unhexlify
import tls, time  # built in on a board: loaded before any baseline
try:
    from machine import mem32
except ImportError:
    pass


class BenchError(Exception):
    # Not SystemExit: that ends the unix port, and soft-resets a board.
    pass


class RamFile(io.IOBase):
    def __init__(self, d, binary):
        self.d = d
        self.bin = binary
        self.o = 0

    def readinto(self, buf):
        n = min(len(buf), len(self.d) - self.o)
        if n <= 0:
            return 0
        buf[:n] = memoryview(self.d)[self.o:self.o + n]
        self.o += n
        return n

    def read(self, n=-1):
        e = len(self.d) if n < 0 else min(len(self.d), self.o + n)
        r = bytes(memoryview(self.d)[self.o:e]) if e > self.o else b""
        self.o = max(e, self.o)
        return r if self.bin else str(r, "utf-8")

    def write(self, x):
        self.d.extend(x if self.bin else x.encode())
        return len(x)

    def ioctl(self, req, arg):
        # 4: MP_STREAM_CLOSE; 11: MP_STREAM_GET_BUFFER_SIZE, the largest the .mpy reader takes
        # (255 B): fewer calls into this Python code when a module is imported.
        return 0 if req == 4 else 255 if req == 11 else -1

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class RamFS:
    # A board's flash, in RAM: {path below the mount point: bytes or bytearray}.
    def __init__(self):
        self.f = {}

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, p):
        if p in self.f:
            return (0x8000, 0, 0, 0, 0, 0, len(self.f[p]), 0, 0, 0)
        d = p.rstrip("/") + "/"
        for k in self.f:
            if k.startswith(d):
                return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def ilistdir(self, p):
        d = p.rstrip("/") + "/"
        return iter([(k[len(d):], 0x8000, 0, len(v)) for k, v in self.f.items() if k.startswith(d) and "/" not in k[len(d):]])

    def open(self, p, mode):
        if "w" in mode:
            self.f[p] = bytearray()
        elif p not in self.f:
            raise OSError(2)
        return RamFile(self.f[p], "b" in mode)

    def remove(self, p):
        if p not in self.f:
            raise OSError(2)
        del self.f[p]

    def rename(self, a, b):
        if a not in self.f:
            raise OSError(2)
        self.f[b] = self.f.pop(a)

    def mkdir(self, p):
        pass

    def statvfs(self, p):
        return (512, 512, 2048, 1024, 1024, 0, 0, 0, 0, 255)


fs = RamFS()
vfs.mount(fs, "/flash")
sys.path.append("/flash/lib")
R = [0] * 16
SNAP = {}
certpin = ps = base = t0 = S = None


def put(p, b64):
    fs.f[p] = a2b_base64(b64)


def snapshot():
    SNAP.clear()
    SNAP.update(fs.f)


def restore():
    fs.f.clear()
    fs.f.update(SNAP)


def scrub(n):
    # Overwrite stale C-stack slots: the GC scans the stack conservatively.
    a = [0] * 16
    return scrub(n - 1) if n else len(a)


def in_use():
    scrub(8)
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


def el(t):
    return (tk() - t) & 0xFFFFFFFF


def alloc(f, *a):
    f(*a)
    f(*a)  # warm up: first calls intern names
    gc.collect()
    gc.disable()
    m = gc.mem_alloc()
    f(*a)
    r = gc.mem_alloc() - m
    gc.enable()
    return r


def ticks(f, a, n):
    gc.collect()
    t = tk()
    for _ in range(n):
        f(*a)
    return el(t) / n


def fs_cost(names):
    # Instructions this Python filesystem spends handing the .mpy files `names` to the
    # importer (255 B per readinto): part of the .mpy figures that a C filesystem makes smaller.
    b = bytearray(255)
    gc.collect()
    t = tk()
    for n in names:
        f = fs.open(n, "rb")
        while f.readinto(b):
            pass
    return el(t)


def run_s(quick):
    # First run (after boot: modules load, names are interned), a second one, the peak.
    restore()
    gc.collect()
    t = tk()
    ok = S()
    a = el(t)
    if not ok:
        raise BenchError("S() failed")
    restore()
    gc.collect()
    t = tk()
    ok = S()
    b = el(t)
    if not ok:
        raise BenchError("S() failed the second time")
    p = None if quick else peak(S, restore, False)  # bench/peak.py (sent before this, with the guest code)
    restore()
    print(json.dumps([a, b, p]))
'''

# The measurements, one raw-REPL execution each (each prints one JSON line).
M_RAM = '''
base = in_use()
import certpin
R[0] = in_use() - base
ps = certpin.loads(TEXT)
R[1] = in_use() - base
print(json.dumps(R[:2]))
'''
M_CALLS = '''
R[2] = alloc(certpin.spki_sha256, memoryview(DER))
R[3] = alloc(certpin.check, ps, HOST, [memoryview(DER)])
R[4] = alloc(certpin.spki_sha256, DER)
if certpin.check(ps, HOST, [DER]) != PIN:
    raise BenchError("check() did not match the pinned certificate")
print(json.dumps(R[2:5]))
'''
M_TICKS = '''
t0 = [memoryview(DER)]
print(json.dumps([ticks(certpin.check, (ps, HOST, t0), 20), ticks(certpin.spki_sha256, (t0[0],), 20)]))
'''
M_ES256 = '''
import certpin._p256
t0 = sys.modules["certpin._p256"]
if not t0.verify(KEY, DIG, SIG) or t0.verify(KEY, DIG, SIG[:32] + bytes(32)):
    raise BenchError("ES256 verify gave a wrong answer")
R[5] = tk()
t0.verify(KEY, DIG, SIG)
R[5] = el(R[5])
sys.modules.pop("certpin._p256")
delattr(certpin, "_p256")
t0 = None
print(json.dumps(R[5:6]))
'''
M_UPDATE = '''
def S():
    return certpin.update(BUNDLE, "/flash/certpin.json").serial == 7 and fs.f["/certpin.json"] == NEW
'''


# ---- raw REPL over a pipe or a pty -----------------------------------------------------------------

class Target:
    """A MicroPython REPL in a process (QEMU on the UART, or the unix port on a pty), raw mode."""

    def __init__(self, argv, use_pty=False, cwd=None, env=None, label=""):
        self.label = label
        self.log = tempfile.TemporaryFile()
        if use_pty:
            master, slave = pty.openpty()
            tty.setraw(slave)  # else the pty turns \r\n into \r\r\n
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                         start_new_session=True)
            os.close(slave)
            self.rfd = self.wfd = master
        else:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                         cwd=cwd, env=env, start_new_session=True)
            self.rfd, self.wfd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.buf = b""

    def read_until(self, marker, timeout):
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise HarnessError("%s: no %r within %ds; output so far: %r" % (self.label, marker, timeout, self.buf[-600:]))
            r, _, _ = select.select([self.rfd], [], [], min(left, 1.0))
            if r:
                try:
                    chunk = os.read(self.rfd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.log.seek(0)
                    raise HarnessError("%s: the process ended (exit %s): %r %r" % (
                        self.label, self.proc.poll(), self.buf[-600:], self.log.read()[-600:]))
                self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def write(self, data):
        for i in range(0, len(data), 4096):
            os.write(self.wfd, data[i:i + 4096])

    def enter_raw(self, timeout=60):
        self.read_until(b">>> ", timeout)  # the banner: the firmware is up
        self.write(b"\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)

    def exec(self, code, timeout=600):
        """Run code in the raw REPL; its output (str), or HarnessError with the guest's traceback."""
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", 30)
        out = self.read_until(b"\x04", timeout)[:-1]
        err = self.read_until(b"\x04", 30)[:-1]
        self.read_until(b">", 30)
        if err:
            raise HarnessError("%s: %s" % (self.label, err.decode(errors="replace").strip()))
        return out.decode(errors="replace")

    def json(self, code, timeout=600):
        out = self.exec(code, timeout).strip().splitlines()
        if not out:
            raise HarnessError("%s: no output from %r" % (self.label, code[:80]))
        return json.loads(out[-1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is None:
            os.close(self.rfd)
        else:
            self.proc.stdin.close()
            self.proc.stdout.close()
        self.log.close()


def qemu_target(board, elf):
    b = BOARDS[board]
    return Target(b["qemu"] + QEMU_COMMON + ["-kernel", elf], label="%s (%s)" % (board, os.path.basename(os.path.dirname(elf))))


def unix_target(micropython, cwd):
    env = dict(os.environ, MICROPYPATH=".frozen")
    return Target([micropython], use_pty=True, cwd=cwd, env=env, label="unix port")


# ---- inputs: the same certificate, pinset, signature and bundle on every target --------------------

def make_inputs(work):
    """Files and values every run uses, made once (keys are random, so figures are per run)."""
    import hashlib

    import run
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    os.makedirs(work, exist_ok=True)
    # A real certificate: an RSA-2048 leaf as most servers send it (bench/run.py's).
    der = run.leaf(rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1()))
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    backup = "sha256/" + base64.b64encode(hashlib.sha256(b"backup key").digest()).decode()
    text = json.dumps({"format": 1, "serial": 1, "expires": "2099-12-31", "hosts": {HOST: {"pins": [pin, backup]}}})
    run.es256_case(os.path.join(work, "es256.txt"))
    x, y, dig, sig = open(os.path.join(work, "es256.txt")).read().strip().split(",")
    # The signed update bench/run.py measures: serial 1 installed, the bundle of serial 7.
    upd = os.path.join(work, "update")
    run.make_update_files(upd)
    bundle = open(os.path.join(upd, "b7.jws"), "rb").read()
    p = json.loads(bundle)["payload"]
    new = base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))
    return {
        "der": der, "pin": pin, "text": text, "x": x, "y": y, "dig": dig, "sig": sig,
        "installed": open(os.path.join(upd, "certpin.json"), "rb").read(), "bundle": bundle, "new": new,
    }


def cached_inputs(path, work):
    """make_inputs(), kept in `path` for the next run: the same certificate, keys, signature
    and bundle each time, so repeated runs print the same figures (a fresh set moves the
    ES256 and update counts by about 1%: the signature's values set the big-integer work)."""
    keys = ("der", "installed", "bundle", "new")
    try:
        with open(path) as f:
            d = json.load(f)
        for k in keys:
            d[k] = base64.b64decode(d[k])
        return d
    except (OSError, ValueError, KeyError):
        pass
    d = make_inputs(work)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(dict(d, **{k: base64.b64encode(d[k]).decode() for k in keys}), f)
    os.replace(path + ".tmp", path)
    return d


def catchup_files(d):
    """The files of the standing catch-up row (bench/mcu_scenario_catchup.py) in d: the fleet
    simulation's site after its releases (bench/fleet.py: 20 releases, 3 signing-key rotations, made
    and published with the certpin command line), the pinset of the device whose catch-up walk
    verifies most (the device library's own walk over the site, on the host), the serial it must
    end on. Made once and kept (the same keys and bundles each run) while the newest release is
    in force. Returns (d, a label naming the walk's requests and verifications)."""
    import datetime

    info = d + ".json"  # beside d: every file in d goes to the board
    try:
        with open(info) as f:
            w = json.load(f)
        if datetime.date.fromisoformat(w["expires"]) > datetime.date.today():
            return d, w["label"]
    except (OSError, ValueError, KeyError):
        pass
    import fleet
    from certpin_host import site as sitemod

    step("making the fleet simulation's site for the catch-up row (20 releases, the certpin command line)")
    shutil.rmtree(d, ignore_errors=True)
    work = tempfile.mkdtemp(prefix="certpin-mcu-fleet-")
    try:
        site_dir = os.path.join(work, "site")
        os.makedirs(site_dir)
        rels = fleet.build_releases(work, "http://certpin-site.invalid/" + fleet.NAME, 20, {5, 10, 15}, {7, 13})
        for r in rels:
            fleet.publish(r, site_dir)
        site = sitemod.Site(site_dir, fleet.NAME)
        newest = site.newest()
        verdicts = sitemod.simulate(site.dir, fleet.NAME, {}, site.ordered()[:-1], newest)
        worst = max(verdicts, key=lambda v: (v.verifies or 0, len(v.urls)))
        os.makedirs(os.path.join(d, "site", fleet.NAME + ".d"))
        shutil.copy(os.path.join(site_dir, fleet.NAME), os.path.join(d, "site", fleet.NAME))
        for n in os.listdir(os.path.join(site_dir, fleet.NAME + ".d")):  # the catch-up files, not the archive
            if n.endswith(".jws"):
                shutil.copy(os.path.join(site_dir, fleet.NAME + ".d", n), os.path.join(d, "site", fleet.NAME + ".d", n))
        with open(os.path.join(d, "certpin.json"), "wb") as f:
            f.write(worst.release.payload)
        with open(os.path.join(d, "newest"), "w") as f:
            f.write(str(newest.serial))
        label = " (serial %d -> %d: %d requests, %d verifications)" % (worst.release.serial, newest.serial,
                                                                      len(worst.urls), worst.verifies)
        with open(info + ".tmp", "w") as f:
            json.dump({"label": label, "expires": rels[-1].expires.isoformat()}, f)
        os.replace(info + ".tmp", info)
        return d, label
    finally:
        shutil.rmtree(work, ignore_errors=True)


def library_mpy(work):
    """{name: .mpy bytes}: what `certpin flash --lib` installs in /lib/certpin (its own compile step)."""
    from certpin_host.flash import compile_library

    out = os.path.join(work, "mpy")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    return {os.path.basename(p): open(p, "rb").read() for p in compile_library(out)}


class Flash:
    """Where read-only files (the .mpy library, a scenario's inputs) go in the guest.

    On a board they sit in flash, outside the GC heap. Here they go to RAM the firmware does
    not use (uctypes.bytearray_at views on it), so they neither take GC heap nor make the
    collector scan them: the heap and instruction figures of the library from .mpy are then
    not distorted by the way the files were delivered. Without a region (the unix port) they
    are bytes objects in the heap."""

    def __init__(self, region=None):
        self.next, self.end = region or (None, None)

    def upload(self, t, path, data):
        b64 = base64.b64encode(data).decode()
        if self.next is None:
            if len(b64) <= 6000:
                t.exec("put(%r, %r)" % (path, b64))
                return
            # In pieces: the raw REPL holds the whole source in the heap while it compiles it.
            t.exec("t0 = []")
            for i in range(0, len(b64), 6000):
                t.exec("t0.append(a2b_base64(%r))" % b64[i:i + 6000])
            t.exec("fs.f[%r] = b''.join(t0)\nt0 = None" % path)
            return
        addr = self.next
        if addr + len(data) > self.end:
            raise HarnessError("the files do not fit the free RAM region for them (%d bytes)" % (self.end - addr))
        self.next = (addr + len(data) + 3) & ~3
        for i in range(0, len(data), 3000):
            piece = data[i:i + 3000]
            t.exec("bytearray_at(%d, %d)[:] = a2b_base64(%r)" % (
                addr + i, len(piece), base64.b64encode(piece).decode()))
        t.exec("fs.f[%r] = bytearray_at(%d, %d)" % (path, addr, len(data)))


def flash_region(board, elf):
    """(start, end) of RAM the firmware never touches, for Flash: from the firmware's symbols."""
    nm = BOARDS[board]["cc"][:-3] + "nm"
    out = subprocess.run([nm, elf], capture_output=True, text=True, check=True).stdout
    syms = {w[2]: int(w[0], 16) for w in (line.split() for line in out.splitlines()) if len(w) == 3}
    if board == "VIRT_RV32":
        # .text/.data/.bss, then the 64 KiB stack, in the first 6.1 MiB of QEMU virt's 128 MiB
        start = (syms["_estack"] + 0x10000) & ~0xFFFF
        return start, start + (1 << 20)
    # ARM: the stack grows down from the top of RAM (_estack); leave it 32 KiB
    return (syms["_ebss"] + 0x3FF) & ~0x3FF, syms["_estack"] - 0x8000


# ---- one target: boot, load, measure ----------------------------------------------------------------

def measure(t, guest_timer, inputs, mpy=None, quick=False, scenario=None, flash=None, catchup=None):
    """Figures of one firmware on one target: a dict (ticks are the target's timer ticks)."""
    t.enter_raw()
    with open(os.path.join(HERE, "peak.py")) as f:
        t.exec(f.read())  # the one measure of a peak heap (bench/peak.py), before any baseline
    t.exec(GUEST + "\n" + guest_timer)
    fl = Flash(flash)
    if flash:
        t.exec("from uctypes import bytearray_at")
    if mpy is not None:
        for name, data in sorted(mpy.items()):
            fl.upload(t, "/lib/certpin/" + name, data)
        fs_ticks = t.json("print(fs_cost(%r))" % ["/lib/certpin/%s.mpy" % n for n in ("_update", "_load", "_p256", "_floor")])
    Flash().upload(t, "/certpin.json", inputs["installed"])
    t.exec("snapshot()")
    t.exec("\n".join([
        "TEXT = %r" % inputs["text"], "HOST = %r" % HOST, "PIN = %r" % inputs["pin"],
        "DER = a2b_base64(%r)" % base64.b64encode(inputs["der"]).decode(),
        "KEY = (int(%r, 16), int(%r, 16))" % (inputs["x"], inputs["y"]),
        "DIG = unhexlify(%r)" % inputs["dig"], "SIG = unhexlify(%r)" % inputs["sig"],
        "BUNDLE = a2b_base64(%r)" % base64.b64encode(inputs["bundle"]).decode(),
        "NEW = a2b_base64(%r)" % base64.b64encode(inputs["new"]).decode(),
        "gc.collect()",
    ]))
    r = {}
    if mpy is not None:
        r["ticks_fs_update"] = fs_ticks
    r["ram_import"], r["ram_pinset"] = t.json(M_RAM)
    r["alloc_spki"], r["alloc_check"], r["alloc_spki_bytes"] = t.json(M_CALLS)
    r["ticks_check"], r["ticks_spki"] = t.json(M_TICKS)
    t.exec(M_UPDATE)
    r["ticks_update_first"], r["ticks_update_again"], r["peak_update"] = t.json(
        "run_s(%s)" % quick, timeout=3600)
    if not quick:
        (r["ticks_es256"],) = t.json(M_ES256, timeout=1800)
    if catchup:
        r["catchup"] = run_scenario(t, catchup, quick, fl)
    if scenario:
        r["scenario"] = run_scenario(t, scenario, quick, fl)
    return r


def run_scenario(t, scenario, quick, fl):
    """A scenario script: its files go into /flash, then the script is run; it must define
    S(), which does the work once from the state those files give (e.g. a device's worst
    catch-up) and returns True on success. The harness measures S() as it measures update():
    instructions of a first and a second run (the files restored before each) and the least
    free heap it succeeds in."""
    script, files = scenario[:2]
    t.exec("restore()")
    if files:
        for dirpath, _, names in os.walk(files):
            for n in sorted(names):
                p = os.path.join(dirpath, n)
                fl.upload(t, "/" + os.path.relpath(p, files).replace(os.sep, "/"), open(p, "rb").read())
    t.exec("snapshot()")
    t.exec(open(script).read())
    first, again, pk = t.json("run_s(%s)" % quick, timeout=3600)
    return {"ticks_first": first, "ticks_again": again, "peak": pk}


# ---- building the firmware ---------------------------------------------------------------------------

def missing_tools(board):
    """Why `board` cannot be built and run here (None: it can)."""
    b = BOARDS[board]
    need = [b["cc"], b["qemu"][0]]
    gone = [n for n in need if not shutil.which(n)]
    if gone:
        return "%s not installed (make bench-mcu installs %s with apt-get)" % (" and ".join(gone), " ".join(b["apt"]))
    return None


def install_tools(boards):
    pkgs = []
    for board in boards:
        for p in BOARDS[board]["apt"]:
            if p not in pkgs:
                pkgs.append(p)
    for p in pkgs:
        subprocess.run([os.path.join(ROOT, ".ci", "apt-install"), p, "make bench-mcu"], check=False)


def step(msg):
    print("bench-mcu: " + msg, flush=True)


def source():
    """The unpacked MicroPython 1.26.1 source (bench/frozen.py fetches it: Debian's package)."""
    import frozen

    frozen.fetch()
    frozen.unpack()
    return frozen.SRC


def _make(cwd, args, what):
    # nice, at most two jobs: the machine is shared. Progress: a line per 100 files compiled.
    p = subprocess.Popen(["nice", "-n", "10", "make", "-j2"] + args, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    n = 0
    tail = []
    for line in p.stdout:
        tail = (tail + [line])[-40:]
        if line.startswith("CC "):
            n += 1
            if n % 100 == 0:
                step("  %s: %d files compiled" % (what, n))
    if p.wait():
        raise HarnessError("make in %s failed:\n%s" % (cwd, "".join(tail)))


def build(src, board, frozen):
    """ports/qemu for board, certpin frozen in or not; the firmware.elf path (make reuses a build)."""
    kind = "certpin" if frozen else "plain"
    os.makedirs(WORK, exist_ok=True)
    manifest = os.path.join(WORK, "manifest-%s.py" % kind)
    text = "# bench/mcu.py: the stand-in modules%s\nfreeze(%r)\n" % (" and certpin" if frozen else "", STUBS)
    if frozen:
        text += "include(%r)\n" % os.path.join(ROOT, "firmware_lib", "manifest.py")
    if not os.path.exists(manifest) or open(manifest).read() != text:
        with open(manifest, "w") as f:
            f.write(text)
    port = os.path.join(src, "ports", "qemu")
    bdir = "build-%s-%s" % (board, kind)
    elf = os.path.join(port, bdir, "firmware.elf")
    if not os.path.exists(os.path.join(src, "mpy-cross", "build", "mpy-cross")):
        step("building mpy-cross (for the frozen modules)")
        _make(os.path.join(src, "mpy-cross"), [], "mpy-cross")
    first = not os.path.exists(elf)
    step("%s %s, certpin %s%s" % ("building" if first else "checking the build of", board,
                                  "frozen" if frozen else "not frozen",
                                  " (first build: about 30 s)" if first else ""))
    _make(port, ["BOARD=" + board, "BUILD=" + bdir, "FROZEN_MANIFEST=" + manifest] + BOARDS[board]["make"],
          board)
    return elf


# ---- the tables ---------------------------------------------------------------------------------------

def fmt_int(n):
    return "{:,}".format(int(round(n)))


def board_rows(board, fz, mp, scenario=None, catchup_label=""):
    """[(label, frozen, .mpy)] for one board; fz/mp: measure() results (either may be None)."""
    ns = BOARDS[board]["ns_per_tick"] if board in BOARDS else None

    def both(fn):
        return (fn(fz) if fz else "-", fn(mp) if mp else "-")

    def insns(key):
        def f(r):
            v = r.get(key)
            if v is None:
                return "-"
            return fmt_int(v * ns) if ns else "%s ns" % fmt_int(v * 1000)
        return f

    def b(key):
        return lambda r: "-" if r.get(key) is None else "%s B" % fmt_int(r[key])

    unit = "instructions" if ns else "time (unix port, wall clock)"
    rows = [
        ("heap in use after `import certpin`", ) + both(b("ram_import")),
        ("... and a 1-host pinset loaded", ) + both(b("ram_pinset")),
        ("heap allocated by one spki_sha256 (RSA-2048 leaf, memoryview)", ) + both(b("alloc_spki")),
        ("heap allocated by one check (the same leaf, pinned)", ) + both(b("alloc_check")),
        ("%s: check" % unit, ) + both(insns("ticks_check")),
        ("%s: one ES256 verify" % unit, ) + both(insns("ticks_es256")),
        ("%s: one whole update(), first after boot" % unit, ) + both(insns("ticks_update_first")),
        ("%s: ... a second update()" % unit, ) + both(insns("ticks_update_again")),
        ("  of which the harness's Python filesystem reading the 4 .mpy modules", "",
         insns("ticks_fs_update")(mp) if mp else "-"),
    ]
    sc = lambda k: (lambda r: "-" if not r.get("scenario") else insns(k)(r["scenario"]))  # noqa: E731
    cu = lambda k: (lambda r: "-" if not r.get("catchup") else insns(k)(r["catchup"]))  # noqa: E731
    rows.append(("%s: worst catch-up of the fleet simulation%s, first run" % (unit, catchup_label), ) + both(
        cu("ticks_first")))
    if scenario:
        rows.append(("%s: %s (--scenario), first run" % (unit, scenario[2]), ) + both(sc("ticks_first")))
    rows.append(("free heap an update() needs (its peak, bench/peak.py)", ) + both(b("peak_update")))
    rows.append(("free heap the worst catch-up needs (its peak, bench/peak.py)", ) + both(
        lambda r: "-" if not r.get("catchup") or r["catchup"]["peak"] is None else "%s B" % fmt_int(r["catchup"]["peak"])))
    if scenario:
        rows.append(("peak heap of %s" % scenario[2], ) + both(
            lambda r: "-" if not r.get("scenario") or r["scenario"]["peak"] is None else "%s B" % fmt_int(r["scenario"]["peak"])))
    chip = BOARDS.get(board, {}).get("chip")
    if chip and ns:
        name, mhz = chip
        for label, key in (("check", "ticks_check"), ("one ES256 verify", "ticks_es256"),
                           ("one whole update()", "ticks_update_first"), ("the worst catch-up", "catchup")):
            def ms(r, key=key):
                v = r.get(key) if key != "catchup" else (r.get("catchup") or {}).get("ticks_first")
                if v is None:
                    return "-"
                t = v * ns / (mhz * 1e6) * 1e3  # instructions / (instructions per ms)
                return ("%.3f ms" % t) if t < 1 else ("%.1f ms" % t)
            rows.append(("LOWER BOUND, %s at %d MHz, 1 instruction/cycle: %s" % (name, mhz, label),) + both(ms))
    return rows


def print_table(title, rows, out=sys.stdout):
    w = max(len(r[0]) for r in rows)
    c1 = max(len("frozen"), max(len(str(r[1])) for r in rows))
    c2 = max(len(".mpy"), max(len(str(r[2])) for r in rows))
    print(title, file=out)
    print("  %-*s  %*s  %*s" % (w, "figure", c1, "frozen", c2, ".mpy"), file=out)
    for label, a, b in rows:
        print("  %-*s  %*s  %*s" % (w, label, c1, a, c2, b), file=out)
    out.flush()


# ---- main ----------------------------------------------------------------------------------------------

def run_unix(micropython, inputs, mpy, quick, scenario=None, catchup=None):
    d = tempfile.mkdtemp(prefix="certpin-mcu-")
    try:
        t = unix_target(micropython, d)
        try:
            return measure(t, UNIX_GUEST, inputs, mpy=mpy, quick=quick, scenario=scenario, catchup=catchup)
        finally:
            t.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_board(board, elf, inputs, mpy, quick, scenario=None, check_timer=False, catchup=None):
    t = qemu_target(board, elf)
    try:
        r = measure(t, BOARDS[board]["guest"], inputs, mpy=mpy, quick=quick, scenario=scenario, catchup=catchup,
                    flash=flash_region(board, elf))
        if check_timer:
            r["timer_check"] = timer_check(t, board)
        return r
    finally:
        t.close()


# A loop of a known number of instructions (2 per iteration), in the inline assembler the
# MPS2_AN385 and VIRT_RV32 builds have (the nRF51 build has none).
LOOPS = {
    "MPS2_AN385": "@micropython.asm_thumb\ndef loop(r0):\n    label(l)\n    sub(r0, r0, 1)\n    bne(l)\n",
    "VIRT_RV32": "@micropython.asm_rv32\ndef loop(a0):\n    label(l)\n    c_addi(a0, -1)\n    c_bnez(a0, l)\n",
}


def timer_check(t, board):
    """A line saying how far the timer-derived instruction count can be trusted on this board."""
    ns = BOARDS[board]["ns_per_tick"]
    if board in LOOPS:
        t.exec("import micropython\n" + LOOPS[board])
        a, b = t.json("R[8] = tk()\nloop(1)\nR[8] = el(R[8])\nR[9] = tk()\nloop(1000001)\n"
                      "R[9] = el(R[9])\nprint(json.dumps(R[8:10]))")
        return "timer check: a loop of 2,000,000 instructions (inline assembler) reads as %s" % fmt_int((b - a) * ns)
    # MICROBIT: no inline assembler; TIMER0 against the core's SysTick (its own clock input,
    # QEMU's nRF51 runs the core at 16 MHz), both read around the same Python loop.
    a, b = t.json("mem32[0xE000E014] = 0xFFFFFF\nmem32[0xE000E018] = 0\nmem32[0xE000E010] = 5\n"
                  "R[8] = tk()\nR[9] = mem32[0xE000E018]\nfor _ in range(20000):\n    pass\n"
                  "R[9] = (R[9] - mem32[0xE000E018]) & 0xFFFFFF\nR[8] = el(R[8])\nprint(json.dumps(R[8:10]))")
    return ("timer check: a Python loop reads as %s instructions from TIMER0, %s from SysTick at 16 MHz "
            "(the port's own 25 MHz assumption would read 1.5625x slow)" % (fmt_int(a * ns), fmt_int(b * ns)))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/mcu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", action="append", choices=sorted(BOARDS), help="a board (default: all three)")
    ap.add_argument("--unix", action="store_true", help="the unix port ($MICROPYTHON), .mpy only, instead of boards")
    ap.add_argument("--quick", action="store_true", help="skip the peak-heap search and the ES256 row")
    ap.add_argument("--install", action="store_true", help="install missing toolchains and QEMU with apt-get first")
    ap.add_argument("--scenario", metavar="SCRIPT", help="a device script defining S() (see run_scenario)")
    ap.add_argument("--files", metavar="DIR", help="files the scenario needs, put under /flash")
    ap.add_argument("--label", default="the scenario", help="what the scenario rows call it")
    a = ap.parse_args(argv)
    scenario = (a.scenario, a.files, a.label) if a.scenario else None
    work = tempfile.mkdtemp(prefix="certpin-mcu-inputs-")
    started = time.monotonic()
    try:
        inputs = cached_inputs(os.path.join(WORK, "inputs.json"), work)
        files, label = catchup_files(os.path.join(WORK, "catchup"))
        catchup = (os.path.join(HERE, "mcu_scenario_catchup.py"), files, label)
        mpy = library_mpy(work)
        if a.unix:
            mp = os.environ.get("MICROPYTHON") or os.path.join(os.path.dirname(sys.executable), "micropython")
            r = run_unix(mp, inputs, mpy, a.quick, scenario, catchup)
            print_table("unix port (%s), library from .mpy; times are wall-clock ns, not instructions" % mp,
                        board_rows("unix", None, r, scenario, label))
            return 0
        boards = a.board or list(DEFAULT_BOARDS)
        if a.install:
            install_tools(boards)
        src = None
        done = 0
        for board in boards:
            why = missing_tools(board)
            if why:
                step("%s skipped: %s" % (board, why))
                continue
            src = src or source()
            fz_elf = build(src, board, True)
            mp_elf = build(src, board, False)
            step("%s: running (certpin frozen)" % board)
            fz = run_board(board, fz_elf, inputs, None, a.quick, scenario, catchup=catchup)
            step("%s: running (library from .mpy)" % board)
            mp = run_board(board, mp_elf, inputs, mpy, a.quick, scenario, check_timer=True, catchup=catchup)
            b = BOARDS[board]
            print_table("\n%s: %s. MicroPython 1.26.1 ports/qemu, 140 KiB GC heap, QEMU -icount shift=0 "
                        "(instructions from %s)" % (board, b["isa"], b["timer"]),
                        board_rows(board, fz, mp, scenario, label))
            print("  " + mp["timer_check"])
            done += 1
        if not done:
            step("no board could run: install the toolchains and QEMU (make bench-mcu does, as root)")
            return 1
        print("\nLOWER BOUND rows: instructions / clock, as if every instruction took one cycle; a real "
              "chip takes more (multi-cycle loads, multiplies and branches, flash wait states or XIP "
              "cache misses). The .mpy library lives in a RAM filesystem here; on a board it is in flash.")
        step("done in %.0f s" % (time.monotonic() - started))
        return 0
    except HarnessError as e:
        print("bench-mcu: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
