"""A virtual board: the MicroPython unix port behind a pseudo-terminal.

Flashing tools (mpremote, ampy) talk to a board over a serial port using the
raw REPL. The unix port (>= v1.27) speaks the raw REPL when its stdin is a tty,
so this module runs it on one pty (board side, raw mode) and relays the bytes to
a second pty whose slave path is the "serial port" the tools open (host side).

What a real board does and the unix port does not, the relay emulates:
  - Soft reboot. Ctrl-D in the raw REPL makes the unix port exit; a board prints
    ``MPY: soft reboot`` and restarts, still in the raw REPL. The relay restarts
    the process, prints that line, and re-enters the raw REPL if the board was
    in it, holding back the host's input until the new process is ready.
  - The board's filesystem. ``/`` is a host directory (VfsPosix) or a LittleFS2
    / FAT image file mounted on a block device in a boot script, so renames,
    unclosed files and power cuts behave as they do on flash.
  - ``sys.path`` is ``['', '.frozen', '/lib']`` as on a board.

Ctrl-C interrupts running code: the unix port reads its pty raw, so the relay
turns a Ctrl-C from the host into SIGINT while the port is executing code (it
catches SIGINT only then; /proc/PID/status tells). Linux only, as are the ptys.
"""
import errno
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

FILESYSTEMS = ("posix", "lfs2", "fat")
DEFAULT_SIZE = 1024 * 1024  # bytes of "flash" for lfs2/fat images
BLOCK_SIZE = 4096  # erase block of ESP32 / RP2040 flash
MIN_SIZE = 64 * 1024  # below this LittleFS and FAT have no room for their metadata

_RAW_BANNER = b"raw REPL; CTRL-B to exit"
_FRIENDLY_BANNER = b'Type "help()" for more information.'
_PROMPT = b">>> "
_SOFT_REBOOT = b"MPY: soft reboot\r\n"


class VBoardError(Exception):
    """The virtual board could not be set up (no interpreter, bad root, bad size)."""


def find_micropython():
    """The unix port: $MICROPYTHON, else `micropython` beside this Python (the venv), else PATH."""
    env = os.environ.get("MICROPYTHON")
    if env:
        if os.path.exists(env):
            return env
        raise VBoardError("MICROPYTHON=%s does not exist" % env)
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(here):
        return here
    found = shutil.which("micropython")
    if found:
        return found
    raise VBoardError(
        "no MicroPython unix port: run `make setup`, or build one (>= v1.27) "
        "and set MICROPYTHON=/path/to/micropython"
    )


def image_name(fs):
    return "flash-%s.img" % fs


def boot_script(fs, root, image=None, mkfs=False, cut_after=None):
    """MicroPython source run before the REPL (`micropython -i boot.py`).

    Every host path is quoted with repr(). Names are deleted at the end so the
    REPL's globals look like a board's.

    cut_after (tests only, lfs2/fat; never set by `certpin vboard`): the flash
    loses power after that many block writes: every later write is dropped and
    fails with -EIO, the error code a board's C flash driver returns (raising
    instead would unwind through littlefs's C code and leave it in a state no
    board reaches: the unix port then crashed or hung in a finaliser at exit),
    so the image holds exactly the first cut_after writes.
    -1 counts without cutting. The block device stays in the globals as
    ``_bdev`` (``_bdev.writes``: block writes so far) for the test to read.
    """
    lines = ["import vfs, os, sys"]
    if fs == "posix":
        lines += [
            # MicroPython's VfsPosix(root).rename builds both host paths in one shared
            # buffer (extmod/vfs_posix.c), so with two absolute paths the source is lost
            # (ENOENT). A Python wrapper hands it the source relative to the process cwd
            # (= root + board cwd). Not a subclass: a Python subclass of VfsPosix breaks
            # imports from absolute paths (import_stat gets the wrong object).
            "class VfsPosix:  # named so tools that ask see the filesystem they expect",
            "    def __init__(self, root):",
            "        self.v = vfs.VfsPosix(root)",
            "    def mount(self, readonly, mkfs):",
            "        pass",
            "    def umount(self):",
            "        pass",
            "    def rename(self, a, b):",
            "        if a[:1] == '/' and b[:1] == '/':",
            "            a = '../' * len([c for c in self.v.getcwd().split('/') if c]) + a[1:]",
            "        self.v.rename(a, b)",
            "    def __getattr__(self, name):",
            "        return getattr(self.v, name)",
            "vfs.umount('/')",
            "vfs.mount(VfsPosix(%r), '/')" % root,
            "del VfsPosix",
        ]
    else:
        cls = "VfsLfs2" if fs == "lfs2" else "VfsFat"
        lines += [
            "class _BlockDev:",
            "    # a flash chip backed by an image file; every write reaches the file",
            "    # at once, so killing the process behaves like a power cut",
            "    def __init__(self, f, bs, n):",
            "        self.f = f; self.bs = bs; self.n = n",
            "    def readblocks(self, n, buf, off=0):",
            "        self.f.seek(n * self.bs + off)",
            "        self.f.readinto(buf)",
            "    def writeblocks(self, n, buf, off=0):",
        ]
        if cut_after is not None:
            lines += [
                "        self.writes += 1",
                "        if self.cut >= 0 and self.writes > self.cut:",
                "            return -5  # the power is gone: this write and every later one are lost (-EIO)",
            ]
        lines += [
            "        self.f.seek(n * self.bs + off)",
            "        self.f.write(buf)",
            "    def ioctl(self, op, arg):",
            "        if op == 4: return self.n",
            "        if op == 5: return self.bs",
            "        if op == 3: self.f.flush()",
            "        return 0",
            # the image must be opened before the host filesystem is unmounted
            "_bdev = _BlockDev(open(%r, 'r+b'), %d, %d)" % (image, BLOCK_SIZE, os.path.getsize(image) // BLOCK_SIZE),
            "vfs.umount('/')",
        ]
        if cut_after is not None:
            lines.append("_bdev.writes = 0; _bdev.cut = %d" % cut_after)
        if mkfs:
            lines.append("vfs.%s.mkfs(_bdev)" % cls)
        lines += [
            "vfs.mount(vfs.%s(_bdev), '/')" % cls,
            "del _BlockDev" + (", _bdev" if cut_after is None else ""),
        ]
    lines += [
        "os.chdir('/')",
        "sys.path[:] = ['', '.frozen', '/lib']",
        "del vfs, os, sys",
    ]
    return "\n".join(lines) + "\n"


class VirtualBoard:
    """start() -> self with .port (the tty path to give mpremote/ampy); stop() ends it.

    root: host directory holding the board (posix: it *is* `/`; lfs2/fat: it
    holds the image file). None means a temporary directory removed by stop().
    """

    def __init__(self, root=None, fs="posix", size=None, micropython=None, heapsize=None):
        if fs not in FILESYSTEMS:
            raise VBoardError("unknown filesystem %r (choose from %s)" % (fs, ", ".join(FILESYSTEMS)))
        if fs != "posix" and size is not None and (size < MIN_SIZE or size % BLOCK_SIZE):
            raise VBoardError("--size must be a multiple of %d and at least %d bytes, not %d" % (BLOCK_SIZE, MIN_SIZE, size))
        self.fs = fs
        self.size = size
        self.root = root
        self.micropython = micropython or find_micropython()
        self.heapsize = heapsize
        self.port = None
        self.image = None
        self.reboots = 0
        self.notes = []  # things the user should know (printed by serve())
        self.error = None  # why the relay stopped, if it failed
        self._owns_root = False
        self._tmp = None
        self._proc = None
        self._thread = None
        self._stop = threading.Event()
        self._fds = []

    # -- life cycle -----------------------------------------------------------
    def start(self):
        if self.root is None:
            self.root = tempfile.mkdtemp(prefix="certpin-vboard-root-")
            self._owns_root = True
        else:
            self.root = os.path.abspath(self.root)
            if os.path.exists(self.root) and not os.path.isdir(self.root):
                raise VBoardError("--root %s is not a directory" % self.root)
            os.makedirs(self.root, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="certpin-vboard-")
        mkfs = False
        if self.fs != "posix":
            self.image = os.path.join(self.root, image_name(self.fs))
            if not os.path.exists(self.image):
                with open(self.image, "wb") as f:
                    f.truncate(self.size or DEFAULT_SIZE)
                mkfs = True
            elif os.path.getsize(self.image) % BLOCK_SIZE:
                raise VBoardError("image %s is not a whole number of %d-byte blocks" % (self.image, BLOCK_SIZE))
            elif self.size and os.path.getsize(self.image) != self.size:
                self.notes.append("using the existing image of %d bytes (not %d): delete it to start afresh"
                                  % (os.path.getsize(self.image), self.size))
        self._boot = os.path.join(self._tmp, "boot.py")
        with open(self._boot, "w") as f:
            f.write(boot_script(self.fs, self.root, self.image, mkfs=False))
        first_boot = self._boot
        if mkfs:  # format on the first boot only; later reboots mount what is there
            first_boot = os.path.join(self._tmp, "boot-mkfs.py")
            with open(first_boot, "w") as f:
                f.write(boot_script(self.fs, self.root, self.image, mkfs=True))

        # board side: the unix port's controlling terminal
        self._bm, self._bs = os.openpty()
        tty.setraw(self._bs)  # else the pty turns \r\n into \r\r\n and the tools miss the prompts
        # host side: the "serial port" the tools open
        self._hm, self._hs = os.openpty()
        tty.setraw(self._hs)
        self.port = os.ttyname(self._hs)
        self._fds = [self._bm, self._bs, self._hm, self._hs]
        for fd in (self._bm, self._hm):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._spawn(first_boot)
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._kill()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait(self):
        """Block until stop() (or the relay died)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    # -- the unix port ------------------------------------------------------------
    def _spawn(self, boot=None):
        cmd = [self.micropython]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        cmd += ["-i", boot or self._boot]
        slave = self._bs

        def controlling_tty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        self._proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, cwd=self._tmp, env=env,
            start_new_session=True, preexec_fn=controlling_tty,
        )
        self._started = time.monotonic()

    def _kill(self):
        p = self._proc
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2)

    # -- the relay ----------------------------------------------------------------
    def _relay(self):
        try:
            self._relay_loop()
        except Exception as e:  # reported by serve(); the board is gone
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self._kill()

    def _relay_loop(self):
        to_host = bytearray()  # board output not yet written to the host pty
        to_board = bytearray()  # host input not yet written to the board pty
        raw = False  # is the board in the raw REPL (tracked from its output)
        tail = b""  # last bytes of output, to find banners split across reads
        holding = False  # after a restart into raw mode: host input waits, banner hidden
        hold_buf = b""
        hold_since = 0.0
        fast_exits = 0
        while not self._stop.is_set():
            rlist = []
            if not to_host:
                rlist.append(self._bm)  # back-pressure: read the board only when the host took its output
            if not holding:
                rlist.append(self._hm)
            wlist = []
            if to_host:
                wlist.append(self._hm)
            if to_board:
                wlist.append(self._bm)
            r, w, _ = select.select(rlist, wlist, [], 0.05)
            if self._bm in r:
                data = _read(self._bm)
                if data:
                    scan = tail + data
                    tail = scan[-64:]
                    at_raw, at_friendly = scan.rfind(_RAW_BANNER), scan.rfind(_FRIENDLY_BANNER)
                    if at_raw != at_friendly:  # the later banner tells the mode (-1: not seen)
                        raw = at_raw > at_friendly
                    if holding:
                        hold_buf += data
                        if _PROMPT in hold_buf:
                            # new process at its friendly prompt: back into the raw REPL
                            holding, hold_buf = False, b""
                            to_board += b"\x01"
                    else:
                        to_host += data
            if self._hm in r:
                data = _read(self._hm)
                if b"\x03" in data and _sigint_caught(self._proc.pid):
                    # Ctrl-C while code runs: a board raises KeyboardInterrupt and eats the byte
                    os.kill(self._proc.pid, signal.SIGINT)
                    data = data.replace(b"\x03", b"")
                if data:
                    to_board += data
            if self._hm in w and to_host:
                del to_host[: _write(self._hm, to_host)]
            if self._bm in w and to_board:
                del to_board[: _write(self._bm, to_board)]
            if holding and time.monotonic() - hold_since > 10:
                holding = False  # never saw a prompt: show whatever it printed
                to_host += hold_buf
                hold_buf = b""
            if self._proc.poll() is not None:
                # The unix port exited: Ctrl-D, sys.exit(), a crash. A board reboots.
                time.sleep(0.02)
                rest = _read(self._bm)
                while rest:
                    to_host += rest
                    tail = (tail + rest)[-64:]
                    rest = _read(self._bm)
                _flush_input(self._bs)  # what the old process did not read is lost, as on a board
                to_board.clear()
                fast_exits = fast_exits + 1 if time.monotonic() - self._started < 0.5 else 0
                if fast_exits > 3:
                    time.sleep(1)  # a boot that keeps failing: do not spin
                to_host += _SOFT_REBOOT
                self.reboots += 1
                was_raw = raw
                self._spawn()
                if was_raw:
                    holding, hold_buf, hold_since = True, b"", time.monotonic()


def _sigint_caught(pid):
    """Is the unix port running code? It catches SIGINT only then (idle, SIGINT would kill it)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return False


def _read(fd):
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


def _write(fd, buf):
    try:
        return os.write(fd, buf)
    except BlockingIOError:
        return 0


def _flush_input(fd):
    try:
        termios.tcflush(fd, termios.TCIFLUSH)
    except termios.error:
        pass


def serve(board, out=sys.stdout, port_file=None):
    """Run a started board until SIGINT/SIGTERM; print its port on `out`. False if the relay failed."""
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if port_file:
            tmp = port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(board.port + "\n")
            os.replace(tmp, port_file)
        where = board.image if board.image else board.root
        print("vboard: root %s (%s)" % (where, board.fs), file=out)
        for note in board.notes:
            print("vboard: note: " + note, file=out)
        print("vboard: port %s" % board.port, file=out, flush=True)
        print("vboard: try `mpremote connect %s fs ls`; stop with Ctrl-C" % board.port, file=out, flush=True)
        while not stopping.is_set() and board._thread.is_alive():
            stopping.wait(0.2)
        if board.error:
            print("vboard: stopped: %s" % board.error, file=sys.stderr)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        board.stop()
        if port_file:
            try:
                os.remove(port_file)
            except OSError:
                pass
    return not board.error
