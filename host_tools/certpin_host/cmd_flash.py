"""certpin flash: lint a pinset (or check a signed bundle against the board), then install it atomically."""
import argparse
import os

from certpin_host import jws
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import read_bytes

EPILOG = """\
What it does:
  1. lints PINSET: a pinset the device would refuse is never flashed; one that
     fails lint (governance errors: a single pin, a past expiry, ...) is refused
     unless --force; lint warnings are shown, and refuse too with --strict;
  2. copies it to DEST.tmp on the board, checks the board-side SHA-256 against the
     local file, then renames it over DEST. An interrupted copy leaves the previous
     pinset in place; the next flash removes the temporary file.
  3. with --lib, installs the device library in /lib/certpin the same way, compiled
     to .mpy with mpy-cross when the board's MicroPython takes that .mpy version
     (plain .py otherwise).
The board loads the pinset when the application next calls certpin.load():
reset it (mpremote reset, or the button) to start with the new one.

A signed bundle (BUNDLE.jws from `certpin pinset sign`) instead of a pinset:
the board's installed pinset (and time floor) is read back first, and the
device library's own update rules decide, exactly as certpin.update() on the
board would: signatures by enough update keys of the INSTALLED pinset, a
greater serial, not expired. What the board would refuse is refused (exit 1)
unless --force: first provisioning of a board without a pinset, or recovery
over USB. Then the payload (the exact pinset bytes that were signed) is linted
and installed as above. A bundle the board already holds is a no-op.

examples:
  certpin flash pins.json --port /dev/ttyUSB0 --lib      # ESP32: library + pinset
  certpin flash pins.json --port /dev/ttyACM0 --tool ampy
  certpin flash pins.json --port /dev/pts/7 --dest /certpin.json
  certpin flash pins.jws --port /dev/ttyUSB0                # a signed update, checked like the board would
  certpin flash pins.jws --port /dev/ttyUSB0 --force --lib  # first provisioning from a bundle

exit status: 0 installed (or already there), 1 refused by lint, by the update
rules, or the board's copy did not match, 2 a user mistake (no such file, no
board on PORT, tool missing).
"""


def register(sub):
    p = sub.add_parser(
        "flash",
        help="lint a pinset (or check a signed bundle against the board), then install it atomically",
        description="Lint PINSET, then install it on the board at PORT atomically "
        "(temporary name, board-side SHA-256 check, rename). --lib installs the device library too. "
        "PINSET may be a signed bundle (.jws): it is then checked against the board's installed pinset "
        "with the device's update rules first.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pinset", metavar="PINSET", help="the pinset file (JSON), or a signed bundle (.jws), to install")
    p.add_argument("--port", required=True, help="the board's serial port (/dev/ttyUSB0, COM3, a vboard's /dev/pts/N)")
    p.add_argument("--tool", choices=("mpremote", "ampy"), default="mpremote", help="flashing tool (default: mpremote)")
    p.add_argument("--dest", default="/certpin.json", help="path on the board (default: /certpin.json, what certpin.load() reads)")
    p.add_argument("--lib", action="store_true", help="also install the device library under /lib/certpin")
    p.add_argument("--force", action="store_true",
                   help="flash despite lint errors, or a bundle the board would refuse as an update "
                   "(never a pinset the device would refuse to load)")
    p.add_argument("--strict", action="store_true",
                   help="refuse lint warnings too (as `certpin pinset lint --strict` does)")
    p.add_argument("--timeout", type=float, default=120, metavar="S", help="give up on a tool run after S seconds (default 120)")
    p.set_defaults(func=run, command="flash")


def check_pinset(path, force, log=print, strict=False, action="flashed"):
    """Refuse what the device would refuse (always), lint errors (unless force),
    and lint warnings too when strict: the same verdict as `pinset lint [--strict]`.
    Returns the file's bytes."""
    raw = read_bytes(path, "pinset or bundle")
    check_pinset_bytes(raw, path, force, log, strict, action)
    return raw


def check_pinset_bytes(raw, name, force, log=print, strict=False, action="flashed"):
    """check_pinset() on the bytes of a pinset (name says where they come from)."""
    # 1. the device library itself: exactly what certpin.load() on the board will do
    import certpin

    try:
        text = raw.decode("utf-8")
        certpin.loads(text)
    except UnicodeDecodeError as e:
        raise UserError("%s: not UTF-8 text (%s): the device would refuse it; not %s" % (name, e, action), EXIT_FAIL)
    except certpin.PinsetError as e:
        raise UserError("%s: the device would refuse it: %s; not %s" % (name, e, action), EXIT_FAIL)
    # 2. lint: device rules again plus governance (single pin, expiry, foreign formats, ...)
    try:
        from certpin_host import lint
    except ImportError:  # an older checkout without the linter: the device check above still ran
        log("lint: not available, checked with the device library only")
        return
    findings = lint.lint_pinset_text(text)
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level != "error"]
    for f in findings:
        log("lint: %s: %s%s" % (f.level, ("%s: " % f.host) if getattr(f, "host", None) else "", f.message))
    if not findings:
        log("lint: %s is clean" % name)
        return
    what = "%d error(s) and %d warning(s)" % (len(errors), len(warnings))
    if not errors and not strict:
        log("lint: %d warning(s) (listed above); going ahead (--strict refuses warnings)" % len(warnings))
        return
    if not force:
        raise UserError("%s: lint found %s (listed above); not %s. Fix them, or pass --force "
                        "if you accept the risk" % (name, what, action), EXIT_FAIL)
    log("lint: %s, going ahead anyway (--force)" % what)


def run(args):
    from certpin_host import flash

    if not args.dest.startswith("/") or args.dest.endswith("/"):
        raise UserError("--dest must be an absolute file path on the board, like /certpin.json")
    if not os.path.exists(args.port) and args.port.startswith("/dev/"):
        raise UserError("%s: no such port (is the board plugged in? is the vboard running?)" % args.port)

    def log(msg):
        print("flash: " + msg, flush=True)

    raw = read_bytes(args.pinset, "pinset or bundle")
    if args.pinset.endswith(".jws") or jws.looks_like_bundle(raw):
        from certpin_host import flash_bundle

        return flash_bundle.run(args, raw, log)
    check_pinset(args.pinset, args.force, log, strict=args.strict)

    try:
        flash.flash(args.port, args.pinset, dest=args.dest, tool=args.tool, lib=args.lib, log=log, timeout=args.timeout)
    except flash.FlashError as e:
        raise UserError(str(e), e.status)
    log("done: %s is on the board at %s%s" % (args.pinset, args.dest, " with the library in /lib/certpin" if args.lib else ""))
    return 0
