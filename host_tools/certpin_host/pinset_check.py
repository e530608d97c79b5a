"""certpin pinset check-update: would a device holding the current pinset install this bundle now?

The verdict is the device library's own (certpin._update.verify, the function
certpin.update() runs on a board); this module only reads the files, shows the
signatures and what would change, and maps the verdict to an exit status.
"""
import argparse
import json
import sys

from certpin_host import jws, pinsetfile
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import read_bytes

HELP = "would a device holding the current pinset install this bundle now? (exit 0 yes, 1 no)"

EPILOG = """\
The gate a publishing pipeline runs before it uploads a bundle. The decision is
made by the device library's own code (certpin._update.verify), in the device's
order: size, JWS form, the current pinset's update keys, each signature (alg
ES256, a kid of the CURRENT pinset, a valid signature), the threshold of
distinct keys, then the payload as a pinset, its serial (greater than the
current one, else a rollback; the same bytes are a no-op), its expiry.

On refusal the reason is one of: too_large, not_jws, no_update_keys, no_serial,
unsupported_alg, unknown_key, bad_signature, threshold, bad_pinset, rollback,
expired.

--current may also be a published bundle (the release devices hold now, as
an operator keeps it): its payload is the pinset a device holds.

--site SITE_DIR (the directory `certpin pinset publish` maintains): before
publishing, would every device reach BUNDLE? A device holding each release the
site has published is walked to BUNDLE, as `publish` would lay the site out, by
the device library's own catch-up walk (certpin._fetch.walk); each release is
listed by serial with its key set, and those that cannot reach it with the
device's reason. It also refuses what `publish` refuses (a serial not greater
than the newest, a bundle its own new update keys did not sign, ...).

examples:
  certpin pinset check-update pins.jws --current installed.json
  certpin pinset check-update pins.jws --current installed.json --json
  certpin pinset check-update pins.jws --current installed.json --today 2027-01-01
  certpin pinset check-update pins.jws --port /dev/ttyUSB0   # a board's own pinset and time floor
  certpin pinset check-update fleet.jws --current www/fleet.jws   # the newest release published there
  certpin pinset check-update fleet.jws --site www/ && certpin pinset publish fleet.jws www/

exit status: 0 a device installs it (or already holds exactly this pinset;
with --site: every published release reaches it), 1 a device refuses it (the
reason is printed; with --site: some release cannot reach it, or publish would
refuse it), 2 a file is missing or unreadable.
"""


def register(ps):
    c = ps.add_parser("check-update", help=HELP, description="Decide, with the device library's own code, whether "
                      "a device holding CURRENT (or the board on --port) installs BUNDLE now (print the reason or "
                      "what would change), and with --site whether a device holding any release published there "
                      "reaches it.",
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("bundle", metavar="BUNDLE")
    c.add_argument("--current", metavar="PINSET",
                   help="the pinset the devices hold now, or the published bundle that carries it")
    add_board_flags(c)
    add_site_flags(c)
    c.add_argument("--today", metavar="DATE", help="judge expiry as of this UTC date (default: today)")
    c.add_argument("--json", action="store_true", help="print the verdict as JSON")
    c.set_defaults(func=run)


def add_site_flags(c):
    c.add_argument("--site", metavar="SITE_DIR",
                   help="the update site `certpin pinset publish` maintains: would a device holding each release "
                   "published there reach BUNDLE?")
    c.add_argument("--name", metavar="NAME", help="with --site: the file name devices fetch (default: BUNDLE's file "
                   "name)")


def device_verify():
    """certpin._update.verify, or UserError when the installed device library has no updates."""
    try:
        from certpin import _update
    except ImportError as e:
        raise UserError("the installed device library (certpin %s) cannot verify updates (%s): reinstall certpin"
                        % (_version(), e))
    return _update.verify


def _version():
    try:
        import certpin

        return certpin.__version__
    except Exception:
        return "?"


def decide(installed, bundle, today=None, floor=None):
    """(verdict dict, payload bytes or None) for a device holding `installed` offered `bundle`.

    floor: the device's time floor file's date (Y, M, D), which the device's own rule weighs against this
    machine's clock when today is None. verdict: ok, same, reason, message, serial_from, serial_to,
    issued, expires.
    """
    import certpin

    verify = device_verify()
    v = {"ok": False, "same": False, "reason": None, "message": None, "serial_from": None, "serial_to": None,
         "issued": None, "expires": None}
    try:
        if floor is not None:  # the device's own rule: trust() weighs the floor file, step() judges
            from certpin import _update

            t, cur = _update.trust(installed, floor)
            r = _update.step(t, [bundle], True, today)
            payload, new, same = (installed, cur, True) if r is None else (r[0], r[1], False)
        else:
            payload, new, same = verify(installed, bundle, today)
    except certpin.Error as e:
        v["reason"] = getattr(e, "reason", None) or ("bad_current" if isinstance(e, certpin.PinsetError) else "error")
        v["message"] = e.args[0] if e.args else str(e)
        return v, None
    v.update(ok=True, same=bool(same), serial_to=new.serial, issued=_date(getattr(new, "issued", None)),
             expires=_date(new.expires))
    try:
        v["serial_from"] = json.loads(installed.decode("utf-8")).get("serial")
    except (UnicodeDecodeError, ValueError, AttributeError):
        pass
    return v, bytes(payload)


def _date(t):
    return "%04d-%02d-%02d" % tuple(t) if t else None


def signature_verdicts(current_bytes, bundle_bytes):
    """[{index, kid, verdict}] for display (the device decides; this says which signature is which)."""
    try:
        cur = json.loads(current_bytes.decode("utf-8"))
        lines = cur["update"]["keys"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        lines = []
    keys = {}
    for line in lines if isinstance(lines, list) else []:
        try:
            pub = jws.public_key_of_line(line)
        except ValueError:
            continue
        keys[jws.kid(pub)] = pub
    try:
        b = jws.loads(bundle_bytes)
    except jws.BundleError:
        return []
    out = []
    for i, header, kid_, raw, problem in b.entries():
        if problem:
            verdict = "malformed: %s" % problem
        elif header.get("alg") != jws.ALG:
            verdict = "unsupported alg %r" % (header.get("alg"),)
        elif kid_ not in keys:
            verdict = "unknown key (not an update key of the current pinset)"
        elif len(raw) != 64 or not jws.verify_der(keys[kid_], jws.raw_to_der(raw),
                                                   b.signing_input(b.signatures[i]["protected"])):
            verdict = "bad signature"
        else:
            verdict = "valid"
        out.append({"index": i, "kid": kid_, "verdict": verdict})
    return out


def changes(old_bytes, new_bytes):
    """Human-readable differences between two pinsets (best effort: both were validated already)."""
    try:
        old = json.loads(old_bytes.decode("utf-8"))
        new = json.loads(new_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    out = []
    for k in ("expires", "issued"):
        if old.get(k) != new.get(k):
            out.append("%s: %s -> %s" % (k, old.get(k, "(none)"), new.get(k, "(none)")))
    oh, nh = old.get("hosts", {}), new.get("hosts", {})
    for h in sorted(set(oh) | set(nh)):
        if h not in oh:
            out.append("host %s added (%d pins)" % (h, len(nh[h].get("pins", []))))
        elif h not in nh:
            out.append("host %s removed" % h)
        elif oh[h] != nh[h]:
            op, np_ = oh[h].get("pins", []), nh[h].get("pins", [])
            parts = ["+" + p for p in np_ if p not in op] + ["-" + p for p in op if p not in np_]
            for flag in ("subdomains", "report_only"):
                if oh[h].get(flag, False) != nh[h].get(flag, False):
                    parts.append("%s %s" % (flag, str(nh[h].get(flag, False)).lower()))
            out.append("host %s: %s" % (h, " ".join(parts) or "reordered"))
    ou, nu = old.get("update") or {}, new.get("update") or {}
    ok_, nk = _kids(ou.get("keys")), _kids(nu.get("keys"))
    if ok_ != nk:
        out.append("update keys: %s" % " ".join(["+" + k for k in nk if k not in ok_] +
                                                ["-" + k for k in ok_ if k not in nk]))
    for k in ("threshold", "url"):
        if ou.get(k) != nu.get(k):
            out.append("update %s: %s -> %s" % (k, ou.get(k, "(none)"), nu.get(k, "(none)")))
    if "update" in old and "update" not in new:
        out.append("WARNING: the new pinset has no \"update\": devices that install it can only be fixed by "
                   "reflashing")
    return out


def _kids(lines):
    out = []
    for line in lines if isinstance(lines, list) else []:
        try:
            out.append(jws.kid_of_line(line))
        except (ValueError, TypeError):
            out.append("(bad key)")
    return out


def read_current(path):
    """(pinset bytes, what was read) for --current: a pinset file, or a bundle whose payload
    is the pinset (what an operator keeps of a published release)."""
    data = read_bytes(path, "pinset")
    if not jws.looks_like_bundle(data):
        return data, "pinset"
    try:
        return jws.loads(data).payload, "bundle"
    except jws.BundleError as e:
        raise UserError("%s: looks like a bundle, but its payload cannot be read: %s" % (path, e))


def run(args):
    today = pinsetfile.today_arg(args.today)
    if args.current is None and args.site is None and not args.port:
        raise UserError("give --current PINSET (the pinset devices hold now), --port PORT (ask a board) and/or "
                        "--site SITE_DIR (every release published there)")
    if args.name and args.site is None:
        raise UserError("--name goes with --site")
    bundle = read_bytes(args.bundle, "bundle")
    refuse_plain_pinset(args.bundle, bundle)
    ok = True
    docs = {}
    if args.port or args.current is not None:
        ok = run_current(args, bundle, today, docs) and ok
    if args.site is not None:
        ok = run_site(args, today, docs) and ok
    if args.json:
        doc = docs.get("current") or {"bundle": args.bundle}
        if "site" in docs:
            doc["site"] = docs["site"]
        print(json.dumps(doc, indent=2))
    return 0 if ok else EXIT_FAIL


def run_current(args, bundle, today, docs):
    """--current (a pinset, or a bundle's payload) or --port (the board's own state)."""
    if args.port:  # the board's own state wins over --current
        current, floor, args.current = board_current(args)
        kind = "board"
    else:
        (current, kind), floor = read_current(args.current), None
    verdict, payload = decide(current, bundle, today, floor)
    sigs = signature_verdicts(current, bundle)
    diff = changes(current, payload) if payload is not None and not verdict["same"] else []
    if args.json:
        doc = {"bundle": args.bundle, "current": args.current, "current_read": kind}
        doc.update(verdict)
        doc.update(signatures=sigs, changes=diff)
        docs["current"] = doc
    else:
        if kind == "bundle":
            print("%s is a bundle: checking against its payload, the pinset devices hold once they installed it%s"
                  % (args.current, _serial_note(current)))
        _print_text(args, verdict, sigs, diff)
    return verdict["ok"]


def _serial_note(payload):
    try:
        return " (serial %s)" % json.loads(payload.decode("utf-8")).get("serial")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return ""


def run_site(args, today, docs):
    """--site: the published releases walked to BUNDLE as publish would lay the site out."""
    from certpin_host import pinset_publish, site as sitemod

    st, new = pinset_publish.open_site(args.site, args.bundle, args.name)
    plan = sitemod.Plan(st, new, today)
    doc = pinset_publish.as_json(plan, args, [], pinset_publish.notes(st, new))
    doc.pop("written")
    doc["status"] = "ok" if plan.ok else "refused"
    if args.json:
        docs["site"] = doc
    else:
        print("%s: serial %d, %s, against the site %s (%s)" % (args.bundle, new.serial, new.describe_keys(), args.site,
                                                                 plan.name))
        for n in doc["notes"]:
            print("  note: %s" % n)
        for r in plan.refusals:
            print("  publish REFUSES it: %s" % r.replace("\n", "\n    "))
        pinset_publish.print_reach(plan, sys.stdout)
        for r in plan.forceable:
            print("  publish REFUSES it (--force aside): %s" % r)
        if plan.same:
            print("  already published there, byte for byte")
        sys.stdout.flush()
    return plan.ok


# ---------------------------------------------------------------- a plain pinset, a board's own state


def refuse_plain_pinset(path, raw):
    """check-update on a pinset file, not a bundle: say what the file is and what to run (exit 2)."""
    import certpin

    if jws.looks_like_bundle(raw):
        return
    try:
        ps = certpin.loads(raw)
    except (certpin.Error, TypeError, ValueError):
        return  # not a pinset either: the device's bundle parser says what it is (not_jws)
    raise UserError("%s is a pinset (serial %s), not a signed bundle: sign it first (certpin pinset sign %s --key "
                    "KEY.pem -o BUNDLE.jws), then check the bundle: certpin pinset check-update BUNDLE.jws --current "
                    "INSTALLED.json; `certpin pinset lint %s` checks the pinset itself" % (path, ps.serial, path, path))


def add_board_flags(c):
    c.add_argument("--port", metavar="PORT",
                   help="judge as the board on PORT: its installed pinset and time floor, read over USB, win over "
                   "--current (said when they differ)")
    c.add_argument("--tool", choices=("mpremote", "ampy"), default="mpremote", help="with --port: whose transport "
                   "talks to the board (default mpremote)")
    c.add_argument("--dest", default="/certpin.json", help="with --port: the pinset's path on the board "
                   "(default /certpin.json)")
    c.add_argument("--timeout", type=float, default=60, metavar="S", help="with --port: give up on a silent "
                   "board after S seconds (default 60)")


def board_current(args):
    """(the board's pinset bytes, its time floor, a label) read over USB as `certpin flash` reads them;
    a note on stderr when --current says otherwise. The board's state wins: it is what decides."""
    import os

    from certpin_host import board as boardmod

    if args.port == "auto":
        try:
            args.port = boardmod.auto_port()
        except boardmod.BoardError as e:
            raise UserError(str(e), e.status)
    if args.port.startswith("/dev/") and not os.path.exists(args.port):
        raise UserError("%s: no such port (is the board plugged in? is the vboard running?)" % args.port)

    def note(msg):
        print("certpin: pinset: check-update: %s" % msg, file=sys.stderr)

    try:
        with boardmod.connect(args.port, args.tool, args.timeout) as b:
            state = boardmod.read_pinset_state(b, args.dest, note)
    except boardmod.BoardError as e:
        raise UserError(str(e), e.status)
    if state["installed"] is None:
        raise UserError("the board on %s has no pinset at %s: a device without one installs no update "
                        "(`certpin flash BUNDLE --force` provisions it)" % (args.port, args.dest), EXIT_FAIL)
    label = "the board on %s (%s%s)" % (args.port, args.dest, ".bak" if state["from_bak"] else "")
    if args.current:
        given = read_current(args.current)[0]
        if given != state["installed"]:
            note("NOTE: the board's pinset (serial %s) is not --current %s (serial %s): judging by the board's"
                 % (_serial(state["installed"]), args.current, _serial(given)))
    if state["floor"]:
        note("the board's time floor is %04d-%02d-%02d" % state["floor"])
    return state["installed"], state["floor"], label


def _serial(raw):
    try:
        return json.loads(raw.decode("utf-8")).get("serial")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def _print_text(args, v, sigs, diff):
    where = "%s: a device holding %s" % (args.bundle, args.current)
    if not v["ok"]:
        msg = v["message"] or ""
        prefix = "pinset update refused (%s): " % v["reason"]
        print("%s REFUSES it (%s): %s" % (where, v["reason"], msg[len(prefix):] if msg.startswith(prefix) else msg))
        if "signatures[" in msg:  # the device's message lists every signature's verdict already
            sigs = []
    elif v["same"]:
        print("%s already holds exactly this pinset (serial %s): a no-op, nothing is written" % (where, v["serial_to"]))
    else:
        print("%s installs it: serial %s -> %s" % (where, v["serial_from"], v["serial_to"]))
    for s in sigs:
        print("  signatures[%d] %s: %s" % (s["index"], s["kid"] or "(no kid)", s["verdict"]))
    if v["ok"]:
        print("  issued %s, expires %s" % (v["issued"] or "(none)", v["expires"] or "(never)"))
        for line in diff:
            print("  " + line)
    sys.stdout.flush()
