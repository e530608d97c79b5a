"""certpin verify: connect to every host of a pinset and report whether a device would accept it."""
import argparse
import concurrent.futures
import datetime
import json
import sys

from certpin_host import device, fetch, pinsetfile
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.pins import cert_item

EPILOG = """\
For each host: connect (concurrently), fetch the chain, and apply the device's
rules (the device library's own certpin.check):
  - the chain is "validated" when it verifies against --cafile (or the system
    trust store) and the name: then a pin may match any certificate of the
    verified chain, as on a device given cadata. Otherwise only the leaf
    (depth 0) counts. --leaf-only judges every host as a device without cadata.
  - a backup pin is a configured pin NOT in the served chain (the HPKP rule:
    a real spare). None is a warning.
  - days until the matched certificate, the leaf and the pinset expire; fewer
    than --warn-days is a warning.

exit status: 0 every host would be accepted (warnings allowed unless --strict),
1 a host would be refused or could not be reached (or a warning with --strict),
2 FILE unreadable or not a valid pinset.

examples:
  certpin verify pins.json                          # in CI, before a pinset ships
  certpin verify pins.json --cafile ca.pem --host 127.0.0.1 --port 8443
  certpin verify pins.json --json --strict --warn-days 45
"""

PROGRESS_MIN_HOSTS = 5


def register(sub):
    p = sub.add_parser(
        "verify",
        help="connect to every host of a pinset and report whether a device would accept it",
        description="Connect to every host in FILE and report, per host, whether a device holding FILE "
        "would accept it, which pin matched at which depth, whether a real backup pin exists, and expiry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--port", type=int, default=fetch.DEFAULT_PORT, metavar="N", help="port (default 443)")
    p.add_argument("--host", metavar="H",
                   help="connect to H instead of each host (e.g. 127.0.0.1 or a staging server); "
                   "SNI, the name check and the pinset entry stay the pinset's host")
    p.add_argument("--cafile", metavar="FILE", help="trust only this PEM CA file (default: the system trust store)")
    p.add_argument("--leaf-only", action="store_true",
                   help="judge as a device without cadata: only the leaf may match, even if the chain verifies")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--warn-days", type=int, default=30, metavar="N",
                   help="warn when a certificate or the pinset expires within N days (default 30)")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per-connection timeout (default 10)")
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="hosts checked in parallel (default 8)")
    p.set_defaults(func=run, command="verify")


def _days(when, now):
    return (when - now).days if when is not None else None


def check_host(host, obj, data, args, now):
    try:
        return _check_host(host, obj, data, args, now)
    except UserError as e:  # a certificate the server sent cannot be parsed: a device refuses that too
        r = _blank(host)
        r.update(status="refused", error=str(e))
        return r


def _blank(host):
    return {"host": host, "status": None, "accepted": False, "verified": False, "verify_error": None,
            "matched_pin": None, "matched_depth": None, "matched_subject": None, "backup_pins": [],
            "cert_days_left": None, "leaf_days_left": None, "pinset_days_left": None,
            "report_only": False, "chain": [], "warnings": [], "error": None}


def _check_host(host, obj, data, args, now):
    r = _blank(host)
    _, entry = device.entry_for(data, host)
    pins = list(entry.get("pins", [])) if entry else []
    r["report_only"] = bool(entry and entry.get("report_only"))
    try:
        got = fetch.fetch(host, args.port, address=args.host, cafile=args.cafile, timeout=args.timeout,
                          allow_unverified=True)
    except fetch.FetchError as e:
        r["status"] = "unreachable"
        r["error"] = str(e)
        return r
    if not got.served:
        r["status"] = "refused"
        r["error"] = "the server presented no certificate"
        return r
    verified = got.verified and not args.leaf_only
    r["verified"] = got.verified
    r["verify_error"] = got.verify_error
    chain = got.verified_chain if verified else got.served
    served_items = [cert_item(d, source=host, depth=i) for i, d in enumerate(got.served)]
    chain_items = [cert_item(d, source=host, depth=i) for i, d in enumerate(chain)]
    r["chain"] = [_chain_entry(it) for it in chain_items]
    leaf = served_items[0]
    r["leaf_days_left"] = _days(leaf.not_after, now)

    try:
        matched = device.check(obj, data, host, chain, verified)
    except device.Refused as e:
        matched = None
        msg = str(e)
        r["error"] = msg[len(host) + 2:] if msg.startswith(host + ": ") else msg
    if matched is not None:
        r["matched_pin"] = matched
        for it in (chain_items if verified else chain_items[:1]):
            if device.pin_matches(matched, it):
                r["matched_depth"] = it.depth
                r["matched_subject"] = it.subject
                r["cert_days_left"] = _days(it.not_after, now)
                break
        r["status"] = "accepted"
        r["accepted"] = True
    elif r["report_only"]:
        r["status"] = "report-only"
        r["accepted"] = True
        r["warnings"].append("no pin matches, but the host is report_only: a device reports and connects anyway")
    else:
        r["status"] = "refused"
        if not got.verified and any(any(device.pin_matches(p, it) for p in pins) for it in served_items[1:]):
            r["error"] += ("\n  (a pin matches a CA certificate the server sent, but the chain does not verify "
                           "(%s), so only the leaf counts)" % got.verify_error)
        elif args.leaf_only and any(any(device.pin_matches(p, it) for p in pins) for it in chain_items[1:]):
            r["error"] += "\n  (--leaf-only: a pin matches a CA certificate, which only counts on a device given cadata)"

    # Pins that other tools print for a key in the chain (re-encoding it) never match on a device: say so.
    # They are the chain's own keys, so they are no backup either.
    in_chain = served_items + ([cert_item(d, depth=i) for i, d in enumerate(got.verified_chain)]
                               if got.verified else [])
    never = _never_matching(pins, in_chain)
    for p, why in never.items():
        if matched is None:
            r["error"] += "\n  (%s %s)" % (p, why)
        else:
            r["warnings"].append("%s never matches: %s" % (p, why))
    # The HPKP rule, judged against the genuine chain only (a refused server's chain says nothing).
    if matched is not None:
        r["backup_pins"] = [p for p in pins
                            if p not in never and not any(device.pin_matches(p, it) for it in in_chain)]
    if matched is not None and not r["backup_pins"]:
        r["warnings"].append("no backup pin: every configured pin is in the served chain; if that key is lost or "
                             "rotated, devices lock out (`certpin keygen` makes a spare)")
    if matched is not None and r["matched_depth"] not in (None, 0):
        r["warnings"].append("matched a CA pin at depth %d: devices must be given cadata (a device without it "
                             "checks only the leaf and refuses this host)" % r["matched_depth"])
    if not got.verified and matched is not None:
        r["warnings"].append("the chain does not verify (%s): accepted on the leaf pin alone, as a device "
                             "without cadata would" % got.verify_error)
    warn_days = args.warn_days
    for label, days in (("matched certificate", r["cert_days_left"]), ("leaf certificate", r["leaf_days_left"])):
        if days is not None and days < 0:
            r["warnings"].append("%s expired %d days ago" % (label, -days))
        elif days is not None and days < warn_days:
            r["warnings"].append("%s expires in %d days" % (label, days))
        if r["cert_days_left"] == r["leaf_days_left"]:
            break
    return r


def _chain_entry(it):
    it.read_all()  # so "unreadable" names every field cryptography cannot decode
    na = it.not_after
    return {"depth": it.depth, "spki_sha256": it.spki_sha256, "cert_sha256": it.cert_sha256,
            "subject": it.subject, "issuer": it.issuer, "not_after": na.strftime("%Y-%m-%d") if na else None,
            "is_ca": it.is_ca, "device_error": it.device_error, "reencoded_spki_sha256": it.reencoded_spki_sha256,
            "openssl_spki_sha256": it.openssl_spki_sha256, "unreadable": dict(it.unreadable)}


def _never_matching(pins, items):
    """{pin: why} for configured pins that name a key of the chain in a form no device computes."""
    out = {}
    for it in items:
        for p in pins:
            if p in out:
                continue
            if p in it.other_pins():
                out[p] = ("is the key of the certificate at depth %d as tools that re-encode it print it (%s); "
                          "a device hashes the key as the certificate carries it: %s"
                          % (it.depth, it.reencoding, it.spki_sha256))
            elif it.device_error and p == it.spki_sha256:
                out[p] = ("is the key of the certificate at depth %d, which a device cannot check (%s)"
                          % (it.depth, it.device_error))
    return out


def run(args):
    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % args.file)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError("%s: cannot read: %s" % (args.file, e))
    try:
        obj, data = device.load(text)
    except ValueError as e:
        raise UserError("%s: a device would refuse this pinset: %s (see `certpin pinset lint`)" % (args.file, e))
    try:
        fetch.check_cafile(args.cafile)
    except fetch.FetchError as e:
        raise UserError(str(e))
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if not 0 < args.port < 65536:
        raise UserError("--port must be from 1 to 65535")
    hosts = list(data["hosts"])
    if not hosts:
        raise UserError("%s: no hosts" % args.file)
    now = datetime.datetime.now(datetime.timezone.utc)
    pinset_days = None
    pinset_warnings = []
    if isinstance(data.get("expires"), str):
        try:
            exp = pinsetfile.parse_date(data["expires"])
            pinset_days = (exp - now.date()).days
        except ValueError:
            pass
    if pinset_days is not None and pinset_days < 0:
        pinset_warnings.append("the pinset expired %d days ago: devices with cadata fall back to CA validation "
                               "alone, devices without keep enforcing pins and report it" % -pinset_days)
    elif pinset_days is not None and pinset_days < args.warn_days:
        pinset_warnings.append("the pinset expires in %d days" % pinset_days)

    results = {}
    progress = len(hosts) >= PROGRESS_MIN_HOSTS  # on stderr: never mixes with --json output
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(args.jobs, len(hosts))) as pool:
        futures = {pool.submit(check_host, h, obj, data, args, now): h for h in hosts}
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            h = futures[fut]
            try:
                results[h] = fut.result()
            except Exception as e:  # one odd host must not hide the others' results; fail closed
                results[h] = _blank(h)
                results[h].update(status="refused", error="internal error: %s: %s" % (type(e).__name__, e))
            if progress:
                print("verify: [%d/%d] %s: %s" % (n, len(hosts), h, results[h]["status"]), file=sys.stderr)
    ordered = [results[h] for h in hosts]
    for r in ordered:
        r["pinset_days_left"] = pinset_days
    refused = [r for r in ordered if not r["accepted"]]
    warned = [r for r in ordered if r.get("warnings")] or ([True] if pinset_warnings else [])
    failed = bool(refused) or (args.strict and bool(warned))
    if args.json:
        print(json.dumps({"file": args.file, "ok": not failed, "serial": data.get("serial"),
                          "expires": data.get("expires"), "pinset_days_left": pinset_days,
                          "pinset_warnings": pinset_warnings,
                          "device_library": device.using_device_library(), "hosts": ordered}, indent=2))
    else:
        for r in ordered:
            _print_host(r)
        for w in pinset_warnings:
            print("warning: %s" % w)
        acc = len(ordered) - len(refused)
        print("%s: %d host(s): %d accepted, %d refused or unreachable%s%s" % (
            args.file, len(ordered), acc, len(refused),
            ", %d with warnings" % len([r for r in ordered if r.get("warnings")]) if warned else "",
            " (failing on warnings: --strict)" if args.strict and warned and not refused else ""))
    return EXIT_FAIL if failed else 0


def _print_host(r):
    host = r["host"]
    if r["status"] == "unreachable":
        print("UNREACHABLE  %s: %s" % (host, r["error"]))
    elif r["status"] == "refused":
        print("REFUSED      %s: %s" % (host, r["error"]))
    elif r["status"] == "report-only":
        print("REPORT-ONLY  %s: no pin matches (%s)" % (host, r["error"]))
    else:
        print("ok           %s: %s matched at depth %s (%s)%s" % (
            host, r["matched_pin"], r["matched_depth"], r["matched_subject"],
            "; chain verified" if r["verified"] else "; chain NOT verified, leaf pin only"))
        bits = []
        if r["backup_pins"]:
            bits.append("backup pin(s) not in the chain: %s" % ", ".join(r["backup_pins"]))
        if r["cert_days_left"] is not None:
            bits.append("matched certificate expires in %d days" % r["cert_days_left"])
        if r["pinset_days_left"] is not None:
            bits.append("pinset expires in %d days" % r["pinset_days_left"])
        for b in bits:
            print("             %s" % b)
    for w in r.get("warnings", []):
        print("  warning: %s: %s" % (host, w))
