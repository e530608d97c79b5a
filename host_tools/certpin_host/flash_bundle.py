"""certpin flash BUNDLE.jws: install a signed pinset update over USB, refused as the board would refuse it.

The board's installed pinset (and its time floor) is read back with the chosen
tool; the device library's own rules (certpin._update.verify) decide; the
payload bytes are then installed by the normal atomic flash path.
"""
import datetime
import os
import shutil
import tempfile

from certpin_host import jws, pinset_check
from certpin_host.errors import EXIT_FAIL, UserError


def floor_path(dest):
    """The board's time-floor file for dest, as the device names it (/certpin.json -> /certpin.floor)."""
    return dest[:-5] + ".floor" if dest.endswith(".json") else dest + ".floor"


def _board_today(floor_bytes):
    """(Y, M, D): the later of this machine's UTC date and the board's time floor."""
    t = datetime.datetime.now(datetime.timezone.utc).date()
    today = (t.year, t.month, t.day)
    try:
        text = floor_bytes.decode("ascii").strip()
        f = (int(text[:4]), int(text[5:7]), int(text[8:10]))
        datetime.date(*f)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return today
    return max(today, f)


def run(args, raw, log):
    """Flash the bundle raw (bytes) to args.port; returns the exit status."""
    from certpin_host import flash
    from certpin_host.cmd_flash import check_pinset_bytes

    bak = args.dest + ".bak"
    fl = floor_path(args.dest)
    log("reading the installed pinset from the board on %s with %s" % (args.port, args.tool))
    try:
        files = flash.read_files(args.port, [args.dest, bak, fl], tool=args.tool, timeout=args.timeout)
    except flash.FlashError as e:
        raise UserError(str(e), e.status)
    installed = files[args.dest]
    if installed is None and files[bak] is not None:  # what certpin.load() recovers after a cut install
        log("%s is missing, %s is there: judging against it, as certpin.load() would recover it" % (args.dest, bak))
        installed = files[bak]

    payload = None
    if installed is None:
        if not args.force:
            raise UserError("the board has no pinset at %s: a device cannot check an update without one. For first "
                            "provisioning pass --force (the signatures are then not checked), or flash a pinset "
                            "file" % args.dest, EXIT_FAIL)
        log("the board has no pinset at %s: installing the bundle's payload without checking its signatures "
            "(--force)" % args.dest)
    else:
        verdict, payload = pinset_check.decide(installed, raw, _board_today(files[fl]))
        if verdict["ok"] and verdict["same"]:
            log("the board already holds exactly this pinset (serial %s): nothing to install" % verdict["serial_to"])
            if args.lib:
                return _install(args, None, log, [])
            return 0
        if verdict["ok"]:
            log("the board accepts it: serial %s -> %s, issued %s, expires %s" % (
                verdict["serial_from"], verdict["serial_to"], verdict["issued"] or "(none)",
                verdict["expires"] or "(never)"))
            for line in pinset_check.changes(installed, payload):
                log("  " + line)
        elif not args.force:
            for line in (verdict["message"] or "").splitlines()[1:]:
                log(line)
            raise UserError("the board would refuse this update: %s; not flashed (--force installs it anyway, "
                            "e.g. to recover a board over USB)" % _one_line(verdict), EXIT_FAIL)
        else:
            log("the board would refuse this update: %s; installing it anyway (--force)" % _one_line(verdict))
            payload = None
    if payload is None:
        try:
            payload = jws.loads(raw).payload
        except jws.BundleError as e:
            raise UserError("%s: not a bundle: %s" % (args.pinset, e), EXIT_FAIL)
    check_pinset_bytes(payload, "%s (payload)" % args.pinset, args.force, log, strict=args.strict)
    return _install(args, payload, log, [bak])


def _one_line(verdict):
    msg = (verdict["message"] or "").splitlines()
    return msg[0] if msg else verdict["reason"]


def _install(args, payload, log, remove):
    from certpin_host import flash

    work = tempfile.mkdtemp(prefix="certpin-flash-bundle-")
    try:
        path = None
        if payload is not None:
            path = os.path.join(work, os.path.basename(args.dest) or "certpin.json")
            with open(path, "wb") as f:
                f.write(payload)
        try:
            flash.flash(args.port, path, dest=args.dest, tool=args.tool, lib=args.lib, log=log, timeout=args.timeout,
                        remove=remove)
        except flash.FlashError as e:
            raise UserError(str(e), e.status)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if payload is not None:
        log("done: the payload of %s is on the board at %s%s" % (
            args.pinset, args.dest, " with the library in /lib/certpin" if args.lib else ""))
    else:
        log("done: the library is in /lib/certpin")
    return 0
