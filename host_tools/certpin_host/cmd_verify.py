"""certpin verify: connect to every host of a pinset and report whether a device would accept it."""
import argparse
import concurrent.futures
import datetime
import ipaddress
import json
import sys

from certpin_host import device, fetch, pinsetfile
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import read_bytes
from certpin_host.pins import cert_item

EPILOG = """\
For each host, on each of its ports ("ports" in the pinset, default 443):
connect (concurrently), fetch the chain, and decide as the device the flags
describe, with the device library's own certpin.check:
  - without --cadata: a device without CA validation (the README's device):
    only the leaf (depth 0) can match a pin, and the leaf must carry the
    pinned name (a device does not check it, but a name that does not match
    is almost always a typo that leaves devices unable to reach the host);
  - with --cadata FILE (the CA certificates the device is given as cadata):
    the chain must verify against exactly those CAs and the name, as mbedTLS
    on the device checks it, and a pin may match any certificate of the
    verified chain.
  - an expired pinset is a failure: devices with cadata have dropped its pins,
    devices without enforce pins nobody maintains.
  - a backup pin is a configured pin NOT in the served chain (the HPKP rule:
    a real spare). None is a warning.
  - days until the matched certificate, the leaf and the pinset expire; fewer
    than --warn-days is a warning.
--connect-to HOST:PORT:ADDR:PORT (curl's form, repeatable) connects elsewhere
(a staging server, 127.0.0.1) while SNI, the name check and the pinset entry
stay the pinset's host.

exit status: 0 every host would be accepted and the pinset is in force
(warnings allowed unless --strict), 1 a host would be refused or could not be
reached, the pinset has expired (or a warning with --strict), 2 FILE
unreadable or not a valid pinset, or a usage error.

examples:
  certpin verify pins.json                          # in CI, before a pinset ships
  certpin verify pins.json --cadata ca.pem          # devices are given ca.pem as cadata
  certpin verify pins.json --connect-to api.example.com:443:127.0.0.1:8443 --connect-to mqtt.example.com:8883:127.0.0.1:8884
  certpin verify pins.json --json --strict --warn-days 45
"""

PROGRESS_MIN_HOSTS = 5


def register(sub):
    p = sub.add_parser(
        "verify",
        help="connect to every host of a pinset and report whether a device would accept it",
        description="Connect to every host in FILE (on each of its ports) and report, per host, whether a device "
        "holding FILE would accept it, which pin matched at which depth, whether a real backup pin exists, and "
        "expiry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--connect-to", action="append", default=[], metavar="HOST:PORT:ADDR:PORT",
                   help=fetch.CONNECT_TO_HELP)
    p.add_argument("--cadata", metavar="FILE",
                   help="judge as a device given these CA certificates (PEM or DER) as cadata: the chain must "
                   "verify against them, and a pin may match any certificate of it. Default: a device without "
                   "cadata (only the leaf can match)")
    p.add_argument("--cafile", metavar="FILE",
                   help="the trust store this machine checks the served chain against, for the report only "
                   "(default: the system store); it does not change the verdict: --cadata does")
    p.add_argument("--leaf-only", action="store_true",
                   help="judge as a device without cadata (the default; kept for scripts)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--warn-days", type=int, default=30, metavar="N",
                   help="warn when a certificate or the pinset expires within N days (default 30)")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per-connection timeout (default 10)")
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="connections checked in parallel (default 8)")
    p.add_argument("--host", help=argparse.SUPPRESS)  # replaced by --connect-to: says so
    p.add_argument("--port", help=argparse.SUPPRESS)  # replaced by --connect-to and "ports": says so
    p.set_defaults(func=run, command="verify")


def _days(when, now):
    return (when - now).days if when is not None else None


class Target:
    """One (host, port) of the pinset, and where to connect for it."""

    def __init__(self, host, port, explicit, rules):
        self.host = host
        self.port = port
        self.label = "%s:%d" % (host, port) if explicit else host  # a host without "ports": its name alone
        self.address, self.connect_port = fetch.route(rules, host, port)


def check_host(target, obj, data, args, now):
    try:
        return _check_host(target, obj, data, args, now)
    except UserError as e:  # a certificate the server sent cannot be parsed: a device refuses that too
        r = _blank(target)
        r.update(status="refused", error=str(e))
        return r


def _blank(t):
    return {"host": t.host, "port": t.port, "address": fetch.hostport(t.address, t.connect_port), "status": None,
            "accepted": False, "device": None, "verified": False, "verify_error": None, "name_error": None,
            "matched_pin": None, "matched_depth": None, "matched_subject": None, "backup_pins": [],
            "cert_days_left": None, "leaf_days_left": None, "pinset_days_left": None,
            "report_only": False, "chain": [], "warnings": [], "error": None}


def _check_host(t, obj, data, args, now):
    r = _blank(t)
    host = t.host
    ca_device = args.cadata_der is not None
    r["device"] = "cadata" if ca_device else "leaf-only"
    _, entry = device.entry_for(data, host)
    pins = list(entry.get("pins", [])) if entry else []
    r["report_only"] = bool(entry and entry.get("report_only"))
    try:
        got = fetch.fetch(host, t.port, address=t.address, connect_port=t.connect_port,
                          cafile=None if ca_device else args.cafile, cadata=args.cadata_der,
                          timeout=args.timeout, allow_unverified=True)
    except fetch.FetchError as e:
        r["status"] = "unreachable"
        r["error"] = str(e)
        return r
    if not got.served:
        r["status"] = "refused"
        r["error"] = "the server presented no certificate"
        return r
    r["verified"] = got.verified
    r["verify_error"] = got.verify_error
    # The device decides on the chain it validated (with cadata) or on the served leaf alone (without).
    verified = ca_device and got.verified
    chain = got.verified_chain if verified else got.served
    served_items = [cert_item(d, source=host, depth=i) for i, d in enumerate(got.served)]
    chain_items = [cert_item(d, source=host, depth=i) for i, d in enumerate(chain)]
    r["chain"] = [_chain_entry(it) for it in chain_items]
    leaf = served_items[0]
    r["leaf_days_left"] = _days(leaf.not_after, now)

    refusal = None
    if ca_device and not got.verified:
        # mbedTLS with cadata (CERT_REQUIRED) refuses the handshake before any pin is looked at
        refusal = ("the chain does not verify against --cadata %s for %s (%s): a device given that cadata refuses "
                   "the handshake" % (args.cadata, host, got.verify_error))
    elif not ca_device:
        why, note = name_problem(leaf, host)
        if why:
            r["name_error"] = why
            refusal = ("the leaf certificate is not valid for %s (%s): almost always a typo in the pinset or the "
                       "wrong server; a device given cadata refuses it, and one without is pinned to a host "
                       "that cannot be reached under this name" % (host, why))
        elif note:
            r["warnings"].append(note)
    matched = None
    if refusal is None:
        try:
            matched = device.check(obj, data, host, chain, verified)
        except device.Refused as e:
            msg = str(e)
            refusal = msg[len(host) + 2:] if msg.startswith(host + ": ") else msg
            if not ca_device and any(any(device.pin_matches(p, it) for p in pins) for it in served_items[1:]):
                refusal += ("\n  (a pin matches a CA certificate the server sent: only a device that validates the "
                            "chain, given the CA as cadata, accepts that; judge as one with --cadata FILE)")
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
    elif r["report_only"] and r["name_error"] is None and not (ca_device and not got.verified):
        r["status"] = "report-only"
        r["accepted"] = True
        r["error"] = refusal
        r["warnings"].append("no pin matches, but the host is report_only: a device reports and connects anyway")
    else:
        r["status"] = "refused"
        r["error"] = refusal

    # Pins that other tools print for a key in the chain (re-encoding it) never match on a device: say so.
    # They are the chain's own keys, so they are no backup either.
    in_chain = served_items + ([cert_item(d, depth=i) for i, d in enumerate(got.verified_chain)]
                               if got.verified else [])
    never = _never_matching(pins, in_chain)
    for p, why in never.items():
        if matched is None and r["status"] == "refused":
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
        r["warnings"].append("matched a CA pin at depth %d: only devices given cadata accept it (a device without "
                             "it checks only the leaf and refuses this host)" % r["matched_depth"])
    if not ca_device and not got.verified and matched is not None:
        r["warnings"].append("the chain does not verify against %s (%s): accepted on the leaf pin alone, as a device "
                             "without cadata does" % (("--cafile " + args.cafile) if args.cafile else
                                                      "the system trust store", got.verify_error))
    warn_days = args.warn_days
    for label, days in (("matched certificate", r["cert_days_left"]), ("leaf certificate", r["leaf_days_left"])):
        if days is not None and days < 0:
            r["warnings"].append("%s expired %d days ago" % (label, -days))
        elif days is not None and days < warn_days:
            r["warnings"].append("%s expires in %d days" % (label, days))
        if r["cert_days_left"] == r["leaf_days_left"]:
            break
    return r


# ---------------------------------------------------------------- the name check


def name_problem(item, host):
    """(why, note): why the certificate is not valid for host (None if it is), and a note when its names
    cannot be read. The rules of RFC 6125 as OpenSSL and mbedTLS apply them: the subjectAltName's DNS names
    and IP addresses when the extension is there (a wildcard only as the whole left-most label of a name
    with at least three labels, matching one label; never an IP address), else the subject's commonName."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = item._x509()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        if san is not None:
            dns = san.get_values_for_type(x509.DNSName)
            ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
            where = "subjectAltName"
        else:
            dns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            ips = []
            where = "commonName (no subjectAltName)"
    except Exception as e:  # cryptography cannot decode the names: say so, do not guess
        return None, ("the certificate's names cannot be read (%s): check by hand that it is valid for %s"
                      % (str(e).splitlines()[0] if str(e) else type(e).__name__, host))
    h = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        ip = None
    if ip is not None:
        if any(_same_ip(a, ip) for a in ips) or (san is None and h in [d.lower() for d in dns]):
            return None, None
    elif any(_dns_match(d, h) for d in dns):
        return None, None
    names = list(dns) + ips
    return ("its %s names %s" % (where, ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")) if names
            else "it names no host (%s empty)" % where), None


def _same_ip(text, ip):
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def _dns_match(pattern, host):
    p = pattern.rstrip(".").lower()
    if not p.isascii():
        return False
    if p == host:
        return True
    if p.startswith("*.") and p.count(".") >= 2:
        rest = p[2:]
        first, _, tail = host.partition(".")
        return bool(first) and tail == rest
    return False


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


# ---------------------------------------------------------------- the run


def load_cadata(path):
    """DER bytes of every CA certificate in PATH (PEM or DER), as a device is given them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    raw = read_bytes(path, "CA certificate file")
    try:
        if b"-----BEGIN" in raw:
            certs = x509.load_pem_x509_certificates(raw)
        else:
            certs = [x509.load_der_x509_certificate(raw)]
    except ValueError as e:
        raise UserError("--cadata %s: not a PEM or DER CA certificate file (%s)" % (path, e))
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)


def pinset_state(data, now, warn_days):
    """(days left or None, errors, warnings) of the pinset's own expiry."""
    days, errors, warnings = None, [], []
    if isinstance(data.get("expires"), str):
        try:
            days = (pinsetfile.parse_date(data["expires"]) - now.date()).days
        except ValueError:
            pass
    if days is not None and days < 0:
        errors.append("the pinset expired %d days ago (%s): devices with cadata have dropped its pins (CA "
                      "validation only), devices without enforce pins nobody maintains; ship a fresh pinset"
                      % (-days, data["expires"]))
    elif days is not None and days < warn_days:
        warnings.append("the pinset expires in %d days" % days)
    return days, errors, warnings


def run(args):
    if args.host is not None or args.port is not None:
        raise UserError(fetch.replaced_flag(
            "--host/--port", "say which host and port to reach where, e.g. --connect-to ::%s:%s for every host, or "
            "--connect-to api.example.com:443:%s:%s for one; the ports a host is checked on come from its \"ports\" "
            "in the pinset (default 443)" % (args.host or "ADDR", args.port or "PORT", args.host or "ADDR",
                                             args.port or "PORT")))
    if args.leaf_only and args.cadata:
        raise UserError("--leaf-only and --cadata contradict each other: a device either is given cadata or not")
    try:
        rules = fetch.parse_connect_to(args.connect_to)
    except ValueError as e:
        raise UserError(str(e))
    raw = read_bytes(args.file, "pinset")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError("%s: cannot read: not UTF-8 (%s)" % (args.file, e))
    try:
        obj, data = device.load(text)
    except ValueError as e:
        raise UserError("%s: a device would refuse this pinset: %s (see `certpin pinset lint`)" % (args.file, e))
    try:
        fetch.check_cafile(args.cafile)
    except fetch.FetchError as e:
        raise UserError(str(e))
    args.cadata_der = load_cadata(args.cadata) if args.cadata else None
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    targets = []
    for h, entry in data["hosts"].items():
        explicit = isinstance(entry, dict) and "ports" in entry
        for port in pinsetfile.host_ports(entry):
            targets.append(Target(h, port, explicit, rules))
    if not targets:
        raise UserError("%s: no hosts" % args.file)
    now = datetime.datetime.now(datetime.timezone.utc)
    pinset_days, pinset_errors, pinset_warnings = pinset_state(data, now, args.warn_days)

    results = {}
    progress = len(targets) >= PROGRESS_MIN_HOSTS  # on stderr: never mixes with --json output
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(args.jobs, len(targets))) as pool:
        futures = {pool.submit(check_host, t, obj, data, args, now): t for t in targets}
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            t = futures[fut]
            try:
                results[t] = fut.result()
            except Exception as e:  # one odd host must not hide the others' results; fail closed
                results[t] = _blank(t)
                results[t].update(status="refused", error="internal error: %s: %s" % (type(e).__name__, e))
            if progress:
                print("verify: [%d/%d] %s: %s" % (n, len(targets), t.label, results[t]["status"]), file=sys.stderr)
    ordered = [results[t] for t in targets]
    for t, r in zip(targets, ordered):
        r["pinset_days_left"] = pinset_days
        r["label"] = t.label
    refused = [r for r in ordered if not r["accepted"]]
    warned = [r for r in ordered if r.get("warnings")] or ([True] if pinset_warnings else [])
    failed = bool(refused) or bool(pinset_errors) or (args.strict and bool(warned))
    if args.json:
        print(json.dumps({"file": args.file, "ok": not failed, "serial": data.get("serial"),
                          "expires": data.get("expires"), "pinset_days_left": pinset_days,
                          "pinset_errors": pinset_errors, "pinset_warnings": pinset_warnings,
                          "device": "cadata" if args.cadata else "leaf-only",
                          "device_library": device.using_device_library(), "hosts": ordered}, indent=2))
    else:
        for r in ordered:
            _print_host(r)
        for e in pinset_errors:
            print("FAILED       %s: %s" % (args.file, e))
        for w in pinset_warnings:
            print("warning: %s" % w)
        acc = len(ordered) - len(refused)
        print("%s: %d host(s)%s: %d accepted, %d refused or unreachable%s%s%s" % (
            args.file, len(ordered), " as a device with --cadata %s" % args.cadata if args.cadata
            else " as a device without cadata", acc, len(refused),
            ", %d with warnings" % len([r for r in ordered if r.get("warnings")]) if warned else "",
            "; the pinset has expired" if pinset_errors else "",
            " (failing on warnings: --strict)" if args.strict and warned and not refused and not pinset_errors
            else ""))
    return EXIT_FAIL if failed else 0


def _print_host(r):
    host = r["label"]
    if r["status"] == "unreachable":
        print("UNREACHABLE  %s: %s" % (host, r["error"]))
    elif r["status"] == "refused":
        print("REFUSED      %s: %s" % (host, r["error"]))
    elif r["status"] == "report-only":
        print("REPORT-ONLY  %s: no pin matches (%s)" % (host, r["error"]))
    else:
        print("ok           %s: %s matched at depth %s (%s)%s" % (
            host, r["matched_pin"], r["matched_depth"], r["matched_subject"],
            "; chain verified against cadata" if r["device"] == "cadata" else
            "; leaf pin (a device without cadata)"))
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
