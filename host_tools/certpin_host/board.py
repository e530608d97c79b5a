"""One connection to one MicroPython board over its serial port, for the host tools.

    b = board.connect("/dev/ttyUSB0")          # or tool="ampy"; board.auto_port() finds the one board
    b.facts()                                  # {"mpy", "version", "platform", "fs"}
    b.read("/certpin.json")                    # bytes, or None when the file is not there
    b.sha256("/certpin.json")                  # hex digest computed ON the board, or None
    b.write("/x.tmp", data, progress=cb)       # plain write in chunks (cb(n) after each chunk of n bytes)
    b.install([(local_path, "/certpin.json")]) # atomic: temporary names, SHA-256 check, rename, read back
    b.exec("print(1)")                         # stdout bytes; BoardError with the board's traceback
    b.close()                                  # (or: with board.connect(port) as b: ...)
    board.read_pinset_state(b, "/certpin.json") # {"installed", "from_bak", "floor"}: what the device reads

The connection is made through a flashing tool's own Python transport, never
by running the tool and parsing what it prints: mpremote's SerialTransport
(raw-paste mode, flow-controlled; the default) or ampy's Pyboard class (plain
raw REPL, 256 bytes every 10 ms). Both soft-reset the board when they connect
(a board running main.py is interrupted; nothing of it stays in RAM), then
stay in the raw REPL: one connection per board for the whole job, so several
boards can be driven in parallel, one thread each.

``install`` is each board's own transaction: every file is written under
``<dest>.tmp``; one script on the board hashes every temporary file and
renames them only if all match the local files (else removes them); a pinset
file (``pinset=`` its destination) is swapped the way certpin.update() swaps
it, through ``<dest>.bak``, so a power cut at any instant leaves the old or the
new pinset, which certpin.load() finds (on FAT as on LittleFS). Then the
final files are hashed again (read back). A connection that dies part way
leaves temporary files only; the next install removes them first.
"""
import binascii
import time

TMP_SUFFIX = ".tmp"
TOOLS = ("mpremote", "ampy")
CHUNK = 768  # bytes per write command (1,024 characters of base64)
READ_TIMEOUT = 5  # seconds one read from the serial port may wait


class BoardError(Exception):
    """The board or the link failed. status 2: could not talk to the board; 1: a check failed on it."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- finding boards


def find_ports():
    """[(device, description)] of the serial ports a board may be on, as `mpremote connect auto` looks:
    USB serial ports (a vendor and product id), sorted."""
    import serial.tools.list_ports

    out = []
    for p in sorted(serial.tools.list_ports.comports()):
        if p.vid is not None and p.pid is not None:
            desc = " ".join(str(x) for x in (p.manufacturer, p.product) if x) or (p.description or "")
            out.append((p.device, "%04x:%04x %s" % (p.vid, p.pid, desc)))
    return out


def auto_port():
    """The one attached board's port; BoardError (status 2) when there is none, or several (listed)."""
    found = find_ports()
    if not found:
        raise BoardError("--port auto: no board found (no USB serial port with a vendor and product id, as "
                         "mpremote looks for them): is it plugged in? give --port PORT for another kind of port")
    if len(found) > 1:
        raise BoardError("--port auto: %d boards are attached, and auto picks only when there is one: %s. Give "
                         "--port for each (repeatable), or --all" % (
                             len(found), "; ".join("%s (%s)" % f for f in found)))
    return found[0][0]


# ---------------------------------------------------------------- the connection


def connect(port, tool="mpremote", timeout=120, soft_reset=True):
    """A Board connected to ``port`` with ``tool``'s transport, in the raw REPL (after a soft reset;
    soft_reset=False, mpremote only, resumes the board as `mpremote resume` does: what the running
    program holds in RAM stays, e.g. the failure journal's repeats not yet written)."""
    if tool not in TOOLS:
        raise BoardError("unknown tool %r (choose from %s)" % (tool, ", ".join(TOOLS)))
    b = Board(port, tool, timeout)
    b.soft_reset = soft_reset or tool != "mpremote"  # ampy's Pyboard always resets
    b._open()
    return b


class Board:
    soft_reset = True

    def __init__(self, port, tool, timeout):
        self.port = port
        self.tool = tool
        self.timeout = timeout
        self._t = None
        self._helpers = False

    # -- the link -----------------------------------------------------------------
    def _open(self):
        try:
            if self.tool == "mpremote":
                from mpremote.transport_serial import SerialTransport

                self._t = SerialTransport(self.port, baudrate=115200)
            else:
                from ampy.pyboard import Pyboard

                self._t = Pyboard(self.port, baudrate=115200)
            # Both transports read without a timeout (mpremote on a pty blocks in read(1)): a board that
            # never answers would hang us for good. Their own per-step timeouts work once reads return.
            self._t.serial.timeout = READ_TIMEOUT
            for attempt in range(3):
                try:
                    if self.tool == "mpremote":
                        self._t.enter_raw_repl(soft_reset=self.soft_reset)
                    else:
                        self._t.enter_raw_repl()
                    break
                except BaseException as e:  # a board still booting, or rebooting, missed the Ctrl-A: again
                    if attempt == 2 or isinstance(e, (KeyboardInterrupt, SystemExit)):
                        raise
                    time.sleep(0.5)
        except BaseException as e:  # ampy's PyboardError is a BaseException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            self.close()
            raise BoardError("%s: cannot talk to a MicroPython board with %s: %s (is it the board's port? is "
                             "another program using it?)" % (self.port, self.tool, _why(e)))

    def close(self):
        t, self._t = self._t, None
        if t is None:
            return
        try:
            t.exit_raw_repl()
        except BaseException:  # a link that is gone: nothing to leave
            pass
        try:
            t.close()
        except BaseException:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exec(self, code, timeout=None):
        """Run code on the board; its stdout (bytes). BoardError with the board's error (last line first)."""
        if self._t is None:
            raise BoardError("%s: not connected" % self.port)
        try:
            out, err = self._t.exec_raw(code, timeout=timeout or self.timeout)
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise BoardError("%s: the link to the board failed (%s): %s" % (self.port, self.tool, _why(e)))
        if err:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise BoardError("%s: the board says: %s" % (self.port, _errno_text(lines[-1] if lines else "error")))
        return out

    def eval(self, expr):
        import ast

        return ast.literal_eval(self.exec("print(repr(%s))" % expr).decode("utf-8").strip())

    # -- facts and files ------------------------------------------------------------
    def facts(self):
        """{"mpy": sys.implementation._mpy (0 if absent), "version", "platform", "fs": the type of /'s VFS}."""
        self._use()
        return self.eval("(lambda s, v: {'mpy': getattr(s.implementation, '_mpy', 0), 'version': "
                         "'.'.join(str(x) for x in s.implementation.version[:3]), 'platform': s.platform, "
                         "'fs': v})(__import__('sys'), _cp_fs())")

    def remove(self, paths):
        """Remove each path that exists; the ones removed."""
        self._use()
        return self.eval("[p for p in %r if _cp_rm(p)]" % (list(paths),))

    def makedirs(self, path):
        """Make the directories of a file path (/a/b for /a/b/c.json), like os.makedirs(exist_ok=True)."""
        self._use()
        parts = path.strip("/").split("/")[:-1]
        dirs = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        self.exec("for d in %r:\n    _cp_mkdir(d)\n" % (dirs,))

    def read(self, path, limit=65536):
        """The file's bytes (at most limit + 1 of them, so a larger file shows as larger), or None when it
        does not exist (ENOENT). Any other error reading it is a BoardError: a pinset that exists but could
        not be read must never be taken for a missing one (its stale .bak would then be judged instead)."""
        self._use()
        try:
            if not self.eval("_cp_open(%r, 'rb')" % path):
                return None
        except BoardError as e:
            raise BoardError("cannot read %s on the board, and it is not missing (%s): nothing was decided or "
                             "written; check the board's filesystem and try again" % (path, e), e.status)
        out = bytearray()
        try:
            while len(out) <= limit:
                line = self.exec("_cp_r(%d)" % CHUNK).strip()
                if not line:
                    break
                out += binascii.a2b_base64(line)
        finally:
            self.exec("_cp_close()")
        return bytes(out)

    def sha256(self, path):
        self._use()
        return self.eval("_cp_sha(%r)" % path)

    def write(self, path, data, progress=None):
        """Write data to path (in place, chunk by chunk: use install() for anything that must be atomic)."""
        self._use()
        self.exec("_cp_open(%r, 'wb')" % path)
        try:
            for i in range(0, len(data), CHUNK):
                chunk = data[i:i + CHUNK]
                self.exec("_cp_w(%r)" % binascii.b2a_base64(chunk, newline=False).decode("ascii"))
                if progress:
                    progress(len(chunk))
        except BaseException:
            try:
                self.exec("_cp_close()")
            except BoardError:  # the first error is the one to report
                pass
            raise
        self.exec("_cp_close()")

    def install(self, files, pinset=None, stale=(), progress=None, log=None):
        """Install files = [(local path, destination)] atomically (see the module's doc); returns the
        destinations. pinset: the destination swapped through .bak; stale: board files removed once all
        are in place. Raises BoardError (status 1 when the board's copy differs: nothing renamed)."""
        from certpin_host import flash  # the local files' hashes: flash.sha256_file

        log = log or (lambda m: None)
        items = []
        for local, dest in files:
            with open(local, "rb") as f:
                data = f.read()
            items.append((dest + TMP_SUFFIX, dest, flash.sha256_file(local), data))
        try:
            for tmp, dest, _, data in items:
                self.write(tmp, data, progress)
            verdict = self.eval("_cp_commit(%r, %r, %r)" % ([(t, d, h) for t, d, h, _ in items], pinset, list(stale)))
        except (BoardError, KeyboardInterrupt):
            self._cleanup([i[0] for i in items], log)
            raise
        ok = [tmp for (tmp, _, want, _), got in zip(items, verdict["sha"]) if got == want]
        for (tmp, dest, want, _), got in zip(items, verdict["sha"]):
            if got != want or len(items) <= 2:
                log("board sha256 %s %s %s" % (tmp, (got or "missing")[:16] + "...",
                                               "matches" if got == want else "DIFFERS from the local file"))
        if len(items) > 2 and ok:
            log("board sha256 of %d temporary file(s): each matches its local file" % len(ok))
        if not verdict["ok"]:
            raise BoardError("the board's copy differs from the local file: nothing renamed, temporary files "
                             "removed; the previous files are in place", status=1)
        # read back what is now under the final names
        back = self.eval("[_cp_sha(d) for d in %r]" % [d for _, d, _, _ in items])
        bad = [d for (_, d, want, _), got in zip(items, back) if got != want]
        if bad:
            raise BoardError("read back after the rename: %s differ(s) from the local file(s)" % ", ".join(bad),
                             status=1)
        return [d for _, d, _, _ in items]

    def _cleanup(self, temps, log):
        try:
            self.remove(temps)
            log("removed the temporary files")
        except BoardError as e:  # the link is gone: the next install removes them
            log("could not remove the temporary files (%s); the next flash removes them" % e)

    # -- the board-side helpers ---------------------------------------------------------
    def _use(self):
        """Define the helpers (names start with _cp_) in the board's REPL once per connection."""
        if not self._helpers:
            self.exec(_HELPERS)
            self._helpers = True
        return True


def _errno_text(line):
    """'OSError: [Errno 28] ENOSPC' -> the same with what it means ('No space left on device')."""
    import errno
    import os
    import re

    m = re.match(r"OSError: \[Errno (\d+)\] (E[A-Z]+)$", line) or re.match(r"OSError: (\d+)$", line)
    if not m:
        return line
    code = getattr(errno, m.group(2), None) if m.lastindex == 2 else int(m.group(1))
    return "%s: %s" % (line, os.strerror(code)) if code else line


def read_pinset_state(b, dest, log=None):
    """The board's pinset (or DEST.bak, as certpin.load() recovers it) and time floor, as the device reads them.

    DEST.bak only when DEST does not exist (b.read() returns None for ENOENT alone, and raises for any other
    error), as certpin._load.read(); the floor's .tmp only when the floor file does not exist."""
    from certpin._load import date

    log = log or (lambda m: None)
    installed = b.read(dest)
    from_bak = False
    if installed is None:
        installed = b.read(dest + ".bak")
        if installed is not None:
            from_bak = True
            log("%s is missing, %s.bak is there: judging against it, as certpin.load() would recover it"
                % (dest, dest))
    floor = None
    fp = (dest[:-5] if dest.endswith(".json") else dest) + ".floor"  # certpin._load.floor_path
    for q in (fp, fp + ".tmp"):  # certpin._load.read_floor's order and format
        t = b.read(q, limit=16)
        if t is None:
            continue
        try:
            floor = date(str(t[:10], "utf-8")) if len(t) == 11 and t[10] == 10 else None
        except UnicodeDecodeError:
            floor = None
        break
    return {"installed": installed, "from_bak": from_bak, "floor": floor}


def _why(e):
    text = " ".join(str(a) for a in getattr(e, "args", ()) if not isinstance(a, bytes)) or type(e).__name__
    return text.strip() or type(e).__name__


# Every path inside code sent to the board is quoted with repr(). The helpers
# stay in the REPL's globals until the board is reset; each name starts with _cp_.
_HELPERS = """\
import os, binascii, hashlib
_cp_f = None
def _cp_fs():
    try:
        import vfs
        return [type(v).__name__ for v, p in vfs.mount() if p == '/'][0]
    except Exception:
        return '?'
def _cp_rm(p):
    try:
        os.remove(p)
        return True
    except OSError:
        return False
def _cp_mkdir(d):
    try:
        os.mkdir(d)
    except OSError:
        pass
def _cp_open(p, m):
    global _cp_f
    try:
        _cp_f = open(p, m)
        return True
    except OSError as e:
        if m == 'wb' or e.args[0] != 2:
            raise
        return False
def _cp_close():
    global _cp_f
    f, _cp_f = _cp_f, None
    if f:
        f.close()
def _cp_w(s):
    _cp_f.write(binascii.a2b_base64(s))
def _cp_r(n):
    b = _cp_f.read(n)
    if b:
        print(binascii.b2a_base64(b).decode().strip())
def _cp_sha(p):
    h = hashlib.sha256()
    b = bytearray(256)
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
def _cp_commit(items, pinset, stale):
    got = [_cp_sha(t) for t, d, e in items]
    if [1 for (t, d, e), g in zip(items, got) if g != e]:
        for t, d, e in items:
            _cp_rm(t)
        return {'ok': False, 'sha': got}
    for t, d, e in items:
        if d == pinset:
            # as certpin.update() installs: a power cut leaves d, or only d.bak (certpin.load() puts it back)
            try:
                os.stat(d)
                _cp_rm(d + '.bak')
                os.rename(d, d + '.bak')
            except OSError:
                pass
            os.rename(t, d)
            _cp_rm(d + '.bak')
        else:
            os.rename(t, d)
    for s in stale:
        _cp_rm(s)
    if hasattr(os, 'sync'):
        os.sync()
    return {'ok': True, 'sha': got}
"""
