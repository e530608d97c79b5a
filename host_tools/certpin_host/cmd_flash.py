"""certpin flash: install a pinset (or a signed bundle's pinset) and the library on boards, atomically.

One pass per board, each over its own connection (certpin_host.board), boards in parallel:
read the board (its pinset, its time floor), decide with the device library's own code
(the serial rule a device applies to updates; a bundle's signatures), write (temporary names),
read back (SHA-256 on the board), rename. What is checked once for all boards (the file, lint)
is checked before any board is touched.
"""
import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import threading
import time

from certpin_host import board as boardmod
from certpin_host import flash, jws
from certpin_host.errors import EXIT_FAIL, EXIT_USAGE, UserError
from certpin_host.files import read_bytes

EPILOG = """\
What it does, once for all boards:
  1. lints PINSET: a pinset the device would refuse is never flashed; one that
     fails lint (governance errors: a single pin, a past expiry, ...) is refused
     unless --force; lint warnings are shown, and refuse too with --strict.
Then on each board, over one connection (boards in parallel):
  2. reads the board's pinset (or the DEST.bak a cut install left, as
     certpin.load() recovers it) and time floor, and decides with the device
     library's rules: a pinset whose serial is LOWER than the board's, or the
     board's serial with other contents, is refused unless --force (a USB flash
     never sets a board behind the line signed updates follow); the board's own
     pinset again is a no-op;
  3. copies it to DEST.tmp, checks the board-side SHA-256 against the local
     file, then renames it over DEST (the old one through DEST.bak, as
     certpin.update() does); an interrupted copy leaves the previous pinset in
     place, and the next flash removes the temporary file; then reads the
     installed file's SHA-256 back;
  4. with --lib, installs the device library in /lib/certpin the same way,
     compiled to .mpy with mpy-cross when the board's MicroPython takes that
     .mpy version (plain .py otherwise).
The board loads the pinset when the application next calls certpin.load():
reset it (mpremote reset, or the button) to start with the new one.

A signed bundle (BUNDLE.jws from `certpin pinset sign`) instead of a pinset:
step 2 decides exactly as certpin.update() on the board would: signatures by
enough update keys of the INSTALLED pinset, a greater serial, not expired (by
the later of this machine's date and the board's time floor). What the board
would refuse is refused unless --force: first provisioning of a board without
a pinset, or recovery over USB. The payload (the exact signed bytes) is
linted and installed.

Several boards: --port repeated, or --all (every attached board). Each board
is read, decided, written and checked on its own; a failure on one never
touches another. A table of results per board follows; the exit status is the
worst of them.

examples:
  certpin flash pins.json --port /dev/ttyUSB0 --lib      # ESP32: library + pinset
  certpin flash pins.json --port auto --lib               # the one attached board
  certpin flash pins.json --all --lib                     # every attached board, in parallel
  certpin flash pins.json --port /dev/ttyUSB0 --port /dev/ttyUSB1 --progress
  certpin flash pins.json --port /dev/ttyACM0 --tool ampy
  certpin flash pins.jws --port /dev/ttyUSB0              # a signed update, checked like the board would
  certpin flash pins.jws --port /dev/ttyUSB0 --force --lib  # first provisioning from a bundle

exit status: 0 installed (or already there) on every board, 1 refused by lint,
by the serial or update rules, or a board's copy did not match, 2 a user
mistake (no such file, no board on PORT), 130 interrupted.
"""


def register(sub):
    p = sub.add_parser(
        "flash",
        help="lint a pinset (or check a signed bundle against the board), then install it atomically",
        description="Lint PINSET, then install it on the board(s) at PORT atomically, one connection per board, "
        "boards in parallel (read the board, decide with the device's rules, write under a temporary name, "
        "SHA-256 on the board, rename, read back). --lib installs the device library too. PINSET may be a "
        "signed bundle (.jws): it is then checked against each board's installed pinset with the device's "
        "update rules first.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pinset", metavar="PINSET", help="the pinset file (JSON), or a signed bundle (.jws), to install")
    p.add_argument("--port", action="append", default=[], metavar="PORT",
                   help="the board's serial port (/dev/ttyUSB0, COM3, a vboard's /dev/pts/N); `auto`: the one "
                   "attached board, as `mpremote connect auto` finds it (refused when there are several); "
                   "repeatable: several boards in parallel")
    p.add_argument("--all", action="store_true", help="every attached board (USB serial ports), in parallel")
    p.add_argument("--tool", choices=flash.TOOLS, default="mpremote",
                   help="whose transport talks to the board: mpremote (default: raw-paste mode) or ampy")
    p.add_argument("--dest", default="/certpin.json", help="path on the board (default: /certpin.json, what certpin.load() reads)")
    p.add_argument("--lib", action="store_true", help="also install the device library under /lib/certpin")
    p.add_argument("--force", action="store_true",
                   help="flash despite lint errors, a serial lower than the board's, or a bundle the board would "
                   "refuse as an update (never a pinset the device would refuse to load)")
    p.add_argument("--strict", action="store_true",
                   help="refuse lint warnings too (as `certpin pinset lint --strict` does)")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar in bytes on stderr even when it is not a terminal (it is shown on one)")
    p.add_argument("--timeout", type=float, default=120, metavar="S",
                   help="give up on a board that says nothing for S seconds (default 120)")
    p.set_defaults(func=run, command="flash")


# ---------------------------------------------------------------- the lint gate (also `pinset sign`'s)


def check_pinset(path, force, log=print, strict=False, action="flashed"):
    """Refuse what the device would refuse (always), lint errors (unless force),
    and lint warnings too when strict: the same verdict as `pinset lint [--strict]`.
    Returns the file's bytes."""
    raw = read_bytes(path, "pinset or bundle")
    check_pinset_bytes(raw, path, force, log, strict, action)
    return raw


def check_pinset_bytes(raw, name, force, log=print, strict=False, action="flashed"):
    """check_pinset() on the bytes of a pinset (name says where they come from); the device's Pinset."""
    import certpin

    from certpin_host import lint

    try:
        ps = certpin.loads(raw.decode("utf-8"))  # exactly what certpin.load() on the board will do
    except UnicodeDecodeError as e:
        raise UserError("%s: not UTF-8 text (%s): the device would refuse it; not %s" % (name, e, action), EXIT_FAIL)
    except certpin.PinsetError as e:
        raise UserError("%s: the device would refuse it: %s; not %s" % (name, e, action), EXIT_FAIL)
    findings = lint.lint_pinset_text(raw.decode("utf-8"))
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level != "error"]
    for f in findings:
        log("lint: %s: %s%s" % (f.level, ("%s: " % f.host) if getattr(f, "host", None) else "", f.message))
    if not findings:
        log("lint: %s is clean" % name)
        return ps
    what = "%d error(s) and %d warning(s)" % (len(errors), len(warnings))
    if not errors and not strict:
        log("lint: %d warning(s) (listed above); going ahead (--strict refuses warnings)" % len(warnings))
        return ps
    if not force:
        raise UserError("%s: lint found %s (listed above); not %s. Fix them, or pass --force "
                        "if you accept the risk" % (name, what, action), EXIT_FAIL)
    log("lint: %s, going ahead anyway (--force)" % what)
    return ps


# ---------------------------------------------------------------- once for all boards


class Plan:
    """What is to be installed, checked once: kind ("pinset" or "bundle"), the file's bytes (raw), the pinset
    bytes to install (payload), its device Pinset (new), and a local copy of the payload (local)."""

    def __init__(self, args, log):
        self.name = args.pinset
        self.raw = read_bytes(args.pinset, "pinset or bundle")
        self.kind = "bundle" if args.pinset.endswith(".jws") or jws.looks_like_bundle(self.raw) else "pinset"
        if self.kind == "bundle":
            self.payload = _bundle_payload(self.raw)
            self.new = check_pinset_bytes(self.payload, "%s (payload)" % args.pinset, args.force, log,
                                          strict=args.strict)
        else:
            self.payload = self.raw
            self.new = check_pinset_bytes(self.raw, args.pinset, args.force, log, strict=args.strict)
        self._dir = tempfile.mkdtemp(prefix="certpin-flash-")
        self.local = os.path.join(self._dir, os.path.basename(args.dest) or "certpin.json")
        with open(self.local, "wb") as f:
            f.write(self.payload)

    def close(self):
        shutil.rmtree(self._dir, ignore_errors=True)


def _bundle_payload(raw):
    """The payload of a bundle, read by the device's own bundle parser; what it refuses every board refuses."""
    import certpin
    from certpin import _update

    try:
        p, _ = _update.parse_bundle(raw)
        return bytes(_update._b64url(p, "payload"))
    except certpin.UpdateError as e:
        raise UserError("the board would refuse this update: %s; not flashed" % e.args[0], EXIT_FAIL)


class Refused(Exception):
    """The board's own rules refuse this install (exit 1); the message says why and what overrides it."""


class LibCache:
    """The library for a board's .mpy version, built once however many boards take it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._built = {}
        self._dir = tempfile.mkdtemp(prefix="certpin-flash-lib-")

    def get(self, mpy, log):
        with self._lock:
            if mpy not in self._built:
                work = os.path.join(self._dir, str(mpy))
                os.makedirs(work, exist_ok=True)
                self._built[mpy] = flash.library_files(mpy, work, log)
            else:
                files, use_mpy = self._built[mpy]
                log("library: %d modules as %s (built for this .mpy version already)"
                    % (len(files), ".mpy" if use_mpy else ".py"))
            return self._built[mpy]

    def close(self):
        shutil.rmtree(self._dir, ignore_errors=True)


# ---------------------------------------------------------------- one board: read, decide, write, read back


def flash_board(port, plan, args, log, progress, libs):
    """Flash one board; returns its result dict. Never raises for the board's own failures."""
    r = {"port": port, "status": 0, "result": None, "serial_from": None, "serial_to": None, "message": None}
    b = None
    try:
        log("connecting to the board on %s with %s" % (port, args.tool))
        b = boardmod.connect(port, args.tool, args.timeout)
        state = boardmod.read_pinset_state(b, args.dest, log)
        if state["installed"] is not None:
            try:
                import certpin

                r["serial_from"] = certpin.loads(state["installed"]).serial
            except Exception:  # an unloadable pinset: the decision below says so
                pass
        r["serial_to"] = plan.new.serial
        action = decide(plan, state, args, log)
        if action == "same" and not args.lib:
            r["result"] = "no-op"
            r["serial_to"] = r["serial_from"]
            return r
        flash.flash(port, None if action == "same" else plan.local, dest=args.dest, tool=args.tool, lib=args.lib,
                    log=log, timeout=args.timeout, progress=progress, connection=b,
                    libs=lambda mpy: libs.get(mpy, log))
        r["result"] = "installed" if action != "same" else "library"
        if action == "same":
            r["serial_to"] = r["serial_from"]
        log("done: %s%s" % ("%s is on the board at %s" % (
            plan.name if plan.kind == "pinset" else "the payload of " + plan.name, args.dest)
            if action != "same" else "the pinset was already there", " with the library in /lib/certpin"
            if args.lib else ""))
    except Refused as e:
        r.update(status=EXIT_FAIL, result="refused", message=str(e))
    except (flash.FlashError, boardmod.BoardError) as e:
        r.update(status=e.status, result="failed", message=str(e))
    except UserError as e:
        r.update(status=e.status, result="failed", message=str(e))
    finally:
        if b is not None:
            b.close()
    return r


def decide(plan, state, args, log):
    """"install" or "same" (the board holds exactly this pinset); Refused when the board's rules refuse."""
    if plan.kind == "bundle":
        return _decide_bundle(plan, state, args, log)
    return _decide_pinset(plan, state, args, log)


def serial_rule(cur, new):
    """Why the device's update rule (a greater serial, else a rollback) refuses a pinset of serial new over
    one of serial cur with other contents, or None. A board without a serial has no line to keep."""
    if cur is None:
        return None
    if new is None:
        return ("the pinset has no serial and the board holds serial %d: a device could not tell later updates "
                "from replays" % cur)
    if new < cur:
        return ("serial %d is lower than the board's serial %d: the board would be set behind the line signed "
                "updates follow (and would install old releases again)" % (new, cur))
    if new == cur:
        return ("serial %d is the board's own serial, with other contents: two releases would share one serial "
                "(bump it: `certpin pinset add` and `set-update` do)" % new)
    return None


def _decide_pinset(plan, state, args, log):
    import certpin

    cur = state["installed"]
    if cur is None:
        log("the board has no pinset at %s: installing serial %s" % (args.dest, plan.new.serial))
        return "install"
    if cur == plan.payload:
        log("the board already holds exactly this pinset (serial %s): nothing to install" % plan.new.serial)
        return "same"
    try:
        old = certpin.loads(cur)
    except certpin.Error as e:
        log("the board's pinset cannot be loaded (%s): replacing it" % e)
        return "install"
    why = serial_rule(old.serial, plan.new.serial)
    if why is None:
        log("the board holds serial %s: installing serial %s" % (old.serial, plan.new.serial))
        return "install"
    if not args.force:
        raise Refused("%s; not flashed (--force installs it anyway)" % why)
    log("%s; installing it anyway (--force)" % why)
    return "install"


def _decide_bundle(plan, state, args, log):
    from certpin_host import pinset_check

    cur = state["installed"]
    if cur is None:
        if not args.force:
            raise Refused("the board has no pinset at %s: a device cannot check an update without one. For first "
                          "provisioning pass --force (the signatures are then not checked), or flash a pinset "
                          "file" % args.dest)
        log("the board has no pinset at %s: installing the bundle's payload without checking its signatures "
            "(--force)" % args.dest)
        return "install"
    verdict, _ = pinset_check.decide(cur, plan.raw, None, state["floor"])
    if verdict["ok"] and verdict["same"]:
        log("the board already holds exactly this pinset (serial %s): nothing to install" % verdict["serial_to"])
        return "same"
    if verdict["ok"]:
        log("the board accepts it: serial %s -> %s, issued %s, expires %s" % (
            verdict["serial_from"], verdict["serial_to"], verdict["issued"] or "(none)",
            verdict["expires"] or "(never)"))
        for line in pinset_check.changes(cur, plan.payload):
            log("  " + line)
        return "install"
    msg = (verdict["message"] or "").splitlines()
    first = msg[0] if msg else verdict["reason"]
    if not args.force:
        for line in msg[1:]:
            log(line)
        raise Refused("the board would refuse this update: %s; not flashed (--force installs it anyway, e.g. to "
                      "recover a board over USB)" % first)
    log("the board would refuse this update: %s; installing it anyway (--force)" % first)
    return "install"


# ---------------------------------------------------------------- the boards


def resolve_ports(args):
    """The ports to flash, in order; UserError for a missing device path, auto with 0 or 2+ boards, ..."""
    if args.all and args.port:
        raise UserError("give --port PORT (repeatable) or --all, not both")
    try:
        if args.all:
            found = boardmod.find_ports()
            if not found:
                raise UserError("--all: no board found (no USB serial port with a vendor and product id)")
            ports = [d for d, _ in found]
        elif not args.port:
            raise UserError("give --port PORT (repeatable; `auto` for the one attached board) or --all")
        else:
            ports = [boardmod.auto_port() if p == "auto" else p for p in args.port]
    except boardmod.BoardError as e:
        raise UserError(str(e), e.status)
    seen = set()
    for p in ports:
        if p in seen:
            raise UserError("%s is given twice: each board is flashed once" % p)
        seen.add(p)
        if not os.path.exists(p) and p.startswith("/dev/"):
            raise UserError("%s: no such port (is the board plugged in? is the vboard running?)" % p)
    return ports


class Progress:
    """A progress bar in bytes on stderr for every board at once (only when shown: a tty, or --progress)."""

    def __init__(self, shown, boards):
        self.shown = shown
        self.boards = boards
        self.done = 0
        self.total = 0
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._last = 0.0
        self._drawn = False

    def expect(self, n):
        """A board is about to write n bytes."""
        with self._lock:
            self.total += n

    def add(self, n):
        if self.cancel.is_set():
            raise KeyboardInterrupt  # Ctrl-C: the board's install stops and removes its temporary files
        if not self.shown:
            return
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw()

    def _draw(self):
        total = max(self.total, self.done, 1)
        bar = self.done * 24 // total
        text = "flash: [%s%s] %s of %s, %d board(s)" % ("#" * bar, "-" * (24 - bar), _bytes(self.done),
                                                       _bytes(total), self.boards)
        sys.stderr.write("\r" + text + " " * 8)
        sys.stderr.flush()
        self._drawn = True

    def finish(self):
        if self.shown and self._drawn:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()


def _bytes(n):
    return "%d bytes" % n if n < 10240 else "%.1f KB" % (n / 1024.0)


def run(args):
    if not args.dest.startswith("/") or args.dest.endswith("/"):
        raise UserError("--dest must be an absolute file path on the board, like /certpin.json")
    ports = resolve_ports(args)
    single = len(ports) == 1

    def say(msg):
        print("flash: " + msg, flush=True)

    plan = Plan(args, say)
    libs = LibCache()
    progress = Progress(args.progress or sys.stderr.isatty(), len(ports))
    logs = {p: [] for p in ports}
    started = time.monotonic()
    try:
        if single:
            results = [flash_board(ports[0], plan, args, say, progress, libs)]
        else:
            say("%d boards in parallel: %s" % (len(ports), ", ".join(ports)))
            results = _parallel(ports, plan, args, logs, progress, libs)
    finally:
        progress.finish()
        plan.close()
        libs.close()
    if single:
        r = results[0]
        if r["status"]:
            raise UserError(r["message"], r["status"])
        return 0
    for r in results:  # each board's own log, one board after the other
        for line in logs[r["port"]]:
            say("%s: %s" % (r["port"], line))
    _table(results, time.monotonic() - started, say)
    worst = max(r["status"] for r in results)
    for r in results:
        if r["status"]:
            print("certpin: flash: %s: %s" % (r["port"], r["message"]), file=sys.stderr)
    return worst


def _parallel(ports, plan, args, logs, progress, libs):
    out = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ports)) as pool:
        futures = {pool.submit(flash_board, p, plan, args, logs[p].append, progress, libs): p for p in ports}
        try:
            for fut in concurrent.futures.as_completed(futures):
                p = futures[fut]
                try:
                    out[p] = fut.result()
                except Exception as e:  # one board's surprise must not hide the others' results
                    out[p] = {"port": p, "status": EXIT_USAGE, "result": "failed", "serial_from": None,
                              "serial_to": None, "message": "internal error: %s: %s" % (type(e).__name__, e)}
        except KeyboardInterrupt:
            progress.cancel.set()  # every board stops at its next chunk and removes its temporary files
            raise
    return [out[p] for p in ports]


def _table(results, seconds, say):
    rows = [("PORT", "RESULT", "SERIAL", "DETAIL")]
    for r in results:
        serial = "%s -> %s" % (r["serial_from"] if r["serial_from"] is not None else "-",
                               r["serial_to"] if r["serial_to"] is not None else "-")
        detail = (r["message"] or "").splitlines()[0] if r["message"] else {
            "installed": "pinset installed and read back", "no-op": "already there",
            "library": "pinset already there, library installed"}.get(r["result"], "")
        rows.append((r["port"], r["result"].upper() if r["status"] else r["result"], serial,
                     detail if len(detail) <= 100 else detail[:97] + "..."))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    say("results (%.1f s):" % seconds)
    for row in rows:
        say("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
    bad = [r for r in results if r["status"]]
    say("%d of %d board(s) done%s" % (len(results) - len(bad), len(results),
                                      ", %d failed or refused" % len(bad) if bad else ""))
