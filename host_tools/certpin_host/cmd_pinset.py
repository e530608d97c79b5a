"""certpin pinset: build, check, sign and publish pinset files (new, add, from-server, set-update, lint, sign,
check-update, publish)."""
import argparse
import json
import os
import sys

from certpin_host import fetch, lint, pinset_check, pinset_publish, pinset_sign, pinsetfile, updates
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.pins import cert_item, check_pin, load_file, print_warnings

EPILOG = """\
subcommands:
  new           create FILE with one host (refuses fewer than two distinct pins)
  add           add a host to FILE, or pins to a host (--replace: replace it), bump "serial"
  from-server   pin what a live server sends, plus your offline backup keys
  set-update    set the keys allowed to sign the next pinset (and threshold, URL), bump "serial"
  lint          check FILE: what a device would refuse, plus governance rules
  sign          make or extend a signed bundle (JWS) of FILE that devices install themselves
  check-update  would a device holding the current pinset install a bundle now? (--site: every published release)
  publish       put a signed release on a static update site, refusing one that strands devices

Every command that writes FILE sets "issued" to today (UTC) when it bumps
"serial", and lints the file afterwards.

examples:
  certpin keygen backup-1.pem
  certpin pinset from-server pins.json api.example.com --backup backup-1.pem
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --key backup-1.pem --expires 2027-06-30
  certpin pinset add pins.json mqtt.example.com --pin sha256/BBBB...= --pin sha256/CCCC...=
  certpin keygen --signing sign-a.pem --public sign-a.pub.pem
  certpin pinset set-update pins.json --update-key sign-a.pub.pem --update-key sign-b.pub.pem --threshold 2
  certpin pinset lint pins.json
  certpin pinset sign pins.json --key sign-a.pem -o pins.jws
  certpin pinset check-update pins.jws --current installed.json
  certpin pinset check-update fleet.jws --site www/ && certpin pinset publish fleet.jws www/
"""

_HOST_FLAGS_EPILOG = """\
Pins are sha256/<base64> (SPKI) or cert-sha256/<base64> (whole certificate).
--key FILE adds the SPKI pin of the first certificate, key or CSR in FILE
(handy for a backup key from `certpin keygen`). A pinset with a single pin has
no backup: one rotated or lost key locks every device out, so two distinct pins
are required unless --allow-single-pin.
--update-key FILE (a P-256 public or private key, `certpin keygen --signing`)
writes the "update" section: the keys allowed to sign the next pinset, of
which --threshold N (default 1) must sign; --update-url URL is where devices
fetch it.
"""


def register(sub):
    p = sub.add_parser(
        "pinset",
        help="build, check, sign and publish pinset files (new, add, from-server, set-update, lint, sign, "
        "check-update, publish)",
        description="Build, check and sign pinset files: the JSON a device loads, and the signed bundles a "
        "device fetches and installs itself.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_no_sub, command="pinset", pinset_parser=p)
    ps = p.add_subparsers(dest="pinset_command", metavar="SUBCOMMAND")

    n = ps.add_parser(
        "new", help="create a pinset with one host",
        description="Create FILE holding one host and its pins (serial 1, issued today).",
        epilog=_HOST_FLAGS_EPILOG + """
examples:
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --pin sha256/BBBB...=
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --key backup-1.pem --expires 2027-06-30
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --key backup-1.pem \\
      --update-key sign-a.pub.pem --update-key sign-b.pub.pem --threshold 1 --update-url https://updates.example.com/pins.jws
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument("file", metavar="FILE")
    n.add_argument("host", metavar="HOST")
    _host_flags(n)
    updates.add_flags(n, editing=False)
    n.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    n.set_defaults(func=run_new)

    a = ps.add_parser(
        "add", help="add a host, or pins to a host (--replace: replace its entry), bump serial",
        description="Add HOST to FILE, or append pins to its entry (--replace: replace the entry), increase "
        "\"serial\" by one and set \"issued\" to today.",
        epilog=_HOST_FLAGS_EPILOG + """
examples:
  certpin pinset add pins.json mqtt.example.com --pin sha256/AAAA...= --pin sha256/BBBB...= --port 8883
  certpin pinset add pins.json example.com --subdomains --pin sha256/... --key backup-2.pem
  certpin pinset add pins.json api.example.com --key backup-3.pem          # a new spare: appended
  certpin pinset add pins.json api.example.com --replace --pin sha256/... --key backup-3.pem
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("file", metavar="FILE")
    a.add_argument("host", metavar="HOST")
    _host_flags(a)
    a.add_argument("--replace", action="store_true",
                   help="replace HOST's entry with exactly these pins and flags (default: append to it)")
    updates.add_flags(a, editing=True)
    a.set_defaults(func=run_add)

    f = ps.add_parser(
        "from-server", help="pin a live server's chain plus backup keys",
        description="Fetch HOST's chain over a verified connection, take the pin at --level, add the "
        "pins of the --backup keys, and write FILE (created, or the host added/replaced and serial bumped).",
        epilog="""\
--level leaf (default) pins the server's own key: works on every device.
--level intermediate / root pin a CA key: a device only accepts that when it
validates the chain, i.e. it is given the CA as cadata
(certpin.SSLContext(pinset, cadata=...)); without cadata only the leaf counts
and the device refuses the host.

examples:
  certpin pinset from-server pins.json api.example.com --backup backup-1.pem
  certpin pinset from-server pins.json localhost:8443 --cafile ca.pem --level intermediate --backup b1.pem --backup b2.pem
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("file", metavar="FILE")
    f.add_argument("hostport", metavar="HOST[:PORT]")
    f.add_argument("--backup", action="append", default=[], metavar="KEYFILE",
                   help="a backup key (private or public key, certificate, CSR); repeatable")
    f.add_argument("--level", choices=("leaf", "intermediate", "root"), default="leaf",
                   help="which certificate of the chain to pin (default leaf)")
    f.add_argument("--cafile", metavar="FILE", help="trust only this PEM CA file (default: the system trust store)")
    f.add_argument("--connect-to", action="append", default=[], metavar="HOST:PORT:ADDR:PORT",
                   help=fetch.CONNECT_TO_HELP)
    f.add_argument("--connect", help=argparse.SUPPRESS)  # replaced by --connect-to: says so
    f.add_argument("--timeout", type=float, default=10.0, metavar="S")
    f.add_argument("--subdomains", action="store_true", help="the entry also covers every subdomain of HOST")
    f.add_argument("--report-only", action="store_true", help="report mismatches but let connections go ahead")
    f.add_argument("--expires", metavar="DATE", help="pinset expiry, YYYY-MM-DD (UTC)")
    f.add_argument("--allow-single-pin", action="store_true", help="allow no --backup (not recommended)")
    f.add_argument("--replace", action="store_true",
                   help="replace HOST's entry in an existing FILE (default: append the pins to it)")
    updates.add_flags(f, editing=True)
    f.set_defaults(func=run_from_server)

    su = ps.add_parser(
        "set-update", help="set the keys allowed to sign the next pinset, bump serial",
        description="Set FILE's \"update\" section: the P-256 keys allowed to sign the next pinset, how many of "
        "them must sign (threshold), and where devices fetch it (url). Increases \"serial\" and sets \"issued\".",
        epilog="""\
--update-key replaces the whole list of keys (give every key that should
remain); without it the current keys stay and only --threshold/--update-url
change. The keys of the pinset a device holds sign its NEXT update: to rotate
a signing key, sign a pinset that lists the new key with the old keys.

examples:
  certpin keygen --signing sign-a.pem --public sign-a.pub.pem     # on offline machine A
  certpin keygen --signing sign-b.pem --public sign-b.pub.pem     # on offline machine B
  certpin pinset set-update pins.json --update-key sign-a.pub.pem --update-key sign-b.pub.pem --threshold 2
  certpin pinset set-update pins.json --update-url https://updates.example.com/fleet-a/certpin.jws
  certpin pinset set-update pins.json --update-key sign-b.pub.pem --update-key sign-c.pub.pem  # rotate A out
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    su.add_argument("file", metavar="FILE")
    updates.add_flags(su, editing=True)
    su.set_defaults(func=run_set_update)

    li = ps.add_parser(
        "lint", help="check a pinset: device refusals and governance rules",
        description="Check FILE: everything a device would refuse (it runs the device library's loader), "
        "plus governance rules: fewer than two distinct pins for a host, expiry in the past or far away, "
        "pins in a foreign format (hex fingerprints, curl's sha256//, SHA-1 lengths, no prefix), duplicate "
        "or invalid host names, subdomains on a public suffix, report_only hosts.",
        epilog="""\
exit status: 0 no errors (warnings are printed), 1 errors found (or warnings
with --strict), 2 FILE unreadable.
The public-suffix list built in is partial (common suffixes only).

examples:
  certpin pinset lint pins.json
  certpin pinset lint pins.json --json --max-days 200 --strict
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    li.add_argument("file", metavar="FILE")
    li.add_argument("--json", action="store_true", help="print findings as JSON")
    li.add_argument("--max-days", type=int, default=lint.DEFAULT_MAX_DAYS, metavar="N",
                    help="warn when \"expires\" is more than N days away (default %d)" % lint.DEFAULT_MAX_DAYS)
    li.add_argument("--strict", action="store_true", help="warnings fail too")
    li.set_defaults(func=run_lint)

    pinset_sign.register(ps)
    pinset_check.register(ps)
    pinset_publish.register(ps)


def _host_flags(p):
    p.add_argument("--pin", action="append", default=[], metavar="PIN", help="a pin; repeatable")
    p.add_argument("--key", action="append", default=[], metavar="FILE",
                   help="add the SPKI pin of the first certificate/key/CSR in FILE; repeatable")
    p.add_argument("--subdomains", action="store_true", help="the entry also covers every subdomain of HOST")
    p.add_argument("--report-only", action="store_true", help="report mismatches but let connections go ahead")
    p.add_argument("--expires", metavar="DATE", help="pinset expiry, YYYY-MM-DD (UTC)")
    p.add_argument("--allow-single-pin", action="store_true", help="allow a host with one pin (no backup)")
    p.add_argument("--port", action="append", type=_port_arg, metavar="N",
                   help="a port `certpin verify` checks for HOST (\"ports\"; default 443); repeatable")


def _port_arg(text):
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError("%r is not a port number from 1 to 65535" % text)
    return int(text)


def _no_sub(args):
    args.pinset_parser.print_help(sys.stderr)
    raise UserError("missing subcommand: new, add, from-server, set-update, lint, sign, check-update or publish")


# ---------------------------------------------------------------- building


def _host(text):
    h = pinsetfile.normalise_host(text)
    problem = pinsetfile.hostname_problem(h)
    if problem:
        raise UserError(problem)
    return h


def _expires(text):
    if text is None:
        return None
    try:
        d = pinsetfile.parse_date(text)
    except ValueError as e:
        raise UserError("--expires: %s" % e)
    if d <= pinsetfile.today():
        raise UserError("--expires %s is not in the future" % text)
    return text


def _key_pin(path, flag):
    """The SPKI pin of the first certificate, key or CSR in path; its warnings go to stderr."""
    item = load_file(path)[0]
    print_warnings("pinset", item, "%s %s" % (flag, path))
    return item


def _pins_from_args(args):
    pins = [check_pin(p) for p in args.pin]
    for path in args.key:
        pins.append(_key_pin(path, "--key").spki_sha256)
    return pins


def _entry(host, pins, args, ports=()):
    """The host entry the flags describe (pins deduplicated, order kept); checked by _check_entry."""
    entry = {"pins": list(dict.fromkeys(pins))}
    if args.subdomains:
        if pinsetfile.is_public_suffix(host):
            raise UserError("%s is a public suffix (Public Suffix List): --subdomains would cover every site "
                            "under it" % host)
        entry["subdomains"] = True
    if args.report_only:
        entry["report_only"] = True
    # from-server's HOST:PORT is written when it is not the default 443; --port always
    ports = [p for p in ports if p not in pinsetfile.HOST_PORTS] + list(getattr(args, "port", None) or ())
    if ports:
        entry["ports"] = list(dict.fromkeys(ports))
    return entry


def _check_entry(host, entry, args):
    distinct = entry["pins"]
    if not distinct:
        raise UserError("%s: no pins: give --pin PIN and/or --key FILE" % host)
    if len(distinct) < 2 and not args.allow_single_pin:
        raise UserError(
            "%s: only one distinct pin: add a backup pin (`certpin keygen backup.pem`, then --key backup.pem); "
            "with a single pin, one rotated or lost key locks every device out. --allow-single-pin overrides"
            % host)
    if "ports" in entry:
        problem = pinsetfile.ports_problem(entry["ports"])
        if problem:
            raise UserError("%s: %s" % (host, problem))
    return entry


def _merge(old, new):
    """`pinset add` on an existing host: its pins, then the new ones; flags given are set; ports joined."""
    merged = dict(old) if isinstance(old, dict) else {}
    pins = [p for p in merged.get("pins", []) if isinstance(p, str)] if isinstance(merged.get("pins"), list) else []
    merged["pins"] = list(dict.fromkeys(pins + new["pins"]))
    for flag in ("subdomains", "report_only"):
        if new.get(flag):
            merged[flag] = True
    if "ports" in new:
        before = merged.get("ports") if isinstance(merged.get("ports"), list) else list(pinsetfile.HOST_PORTS)
        merged["ports"] = list(dict.fromkeys(before + new["ports"]))
    return merged


def _lint_hint(path):
    """After writing: what `pinset lint` would say about the whole file (stderr, never fatal here)."""
    findings = lint.lint_file(path)
    for f in findings:
        print("certpin: pinset: lint: %s" % lint.format_finding(f), file=sys.stderr)


def run_new(args):
    host = _host(args.host)
    entry = _check_entry(host, _entry(host, _pins_from_args(args), args), args)
    data = {"format": pinsetfile.FORMAT}
    pinsetfile.stamp(data, 1)
    exp = _expires(args.expires)
    if exp:
        data["expires"] = exp
    upd = updates.apply_flags(data, args)
    data["hosts"] = {host: entry}
    pinsetfile.write(args.file, data, overwrite=args.force)
    print("%s: new pinset, serial 1, host %s with %d pins%s" % (args.file, host, len(entry["pins"]),
                                                                 ("; " + upd) if upd else ""))
    _lint_hint(args.file)
    return 0


def _edit(path, change):
    """Read FILE, apply change(data) -> description, bump serial and stamp issued, write; print what changed."""
    data = pinsetfile.read(path)
    serial = data.get("serial", 0)
    if type(serial) is not int or serial < 0:
        raise UserError("%s: \"serial\" is %r, not an integer >= 0: fix it first" % (path, serial))
    what = change(data)
    pinsetfile.stamp(data, serial + 1)
    pinsetfile.write(path, data)
    print("%s: %s, serial %d -> %d" % (path, what, serial, serial + 1))
    return 0


def _update(path, host, entry, expires, args):
    """Add host's entry to the file at path: appended to an existing entry of that host (its pins kept,
    the new ones after them), or replacing it with --replace; serial bumped."""
    def change(data):
        hosts = data.setdefault("hosts", {})
        old = None
        for k in list(hosts):  # a spelling variant (case, trailing dot) is the same host
            if isinstance(k, str) and pinsetfile.normalise_host(k) == host:
                old = hosts.pop(k)
        if old is None:
            new, action = entry, "added host %s (%d pins)" % (host, len(entry["pins"]))
        elif getattr(args, "replace", False):
            new, action = entry, "replaced host %s (%d pins; --replace)" % (host, len(entry["pins"]))
        else:
            new = _merge(old, entry)
            gained = len(new["pins"]) - len([p for p in old.get("pins", []) if p in new["pins"]])
            action = "appended to host %s: %d new pin(s), %d in all (--replace replaces its entry instead)" % (
                host, gained, len(new["pins"]))
        hosts[host] = _check_entry(host, new, args)
        if expires:
            data["expires"] = expires
        upd = updates.apply_flags(data, args)
        return "%s%s" % (action, ("; " + upd) if upd else "")

    return _edit(path, change)


def run_set_update(args):
    if not updates.any_flag(args):
        raise UserError("nothing to set: give --update-key FILE (repeatable), --threshold N, --update-url URL "
                        "or --no-update-url")
    if not os.path.exists(args.file):
        raise UserError("%s: no such file (create it with `certpin pinset new`)" % args.file)
    _edit(args.file, lambda data: updates.apply_flags(data, args))
    _lint_hint(args.file)
    return 0


def run_add(args):
    host = _host(args.host)
    entry = _entry(host, _pins_from_args(args), args)
    exp = _expires(args.expires)
    if not os.path.exists(args.file):
        raise UserError("%s: no such file (create it with `certpin pinset new`)" % args.file)
    _update(args.file, host, entry, exp, args)
    _lint_hint(args.file)
    return 0


def run_from_server(args):
    try:
        host, port = fetch.split_hostport(args.hostport)
    except ValueError as e:
        raise UserError(str(e))
    if args.connect is not None:
        raise UserError(fetch.replaced_flag("--connect ADDR", "certpin pinset from-server %s %s --connect-to "
                                            "%s:%d:%s:%d" % (args.file, args.hostport, host, port, args.connect, port)))
    try:
        rules = fetch.parse_connect_to(args.connect_to)
    except ValueError as e:
        raise UserError(str(e))
    host = _host(host)
    if not args.backup and not args.allow_single_pin:
        raise UserError("give at least one --backup KEYFILE (`certpin keygen backup.pem` makes one): "
                        "a pinset without a backup pin is the classic self-inflicted outage")
    exp = _expires(args.expires)
    try:
        fetch.check_cafile(args.cafile)
    except fetch.FetchError as e:
        raise UserError(str(e))
    backups = []
    for path in args.backup:
        backups.append((path, _key_pin(path, "--backup").spki_sha256))
    try:
        address, cport = fetch.route(rules, host, port)
        got = fetch.fetch(host, port, address=address, connect_port=cport, cafile=args.cafile, timeout=args.timeout)
    except fetch.FetchError as e:
        raise UserError("%s (pins are only taken from a verified connection; --cafile for a private CA)" % e)
    chain = got.verified_chain
    served = [cert_item(d, source=host, depth=i) for i, d in enumerate(got.served)]
    verified = [cert_item(d, source=host, depth=i) for i, d in enumerate(chain)]
    if args.level == "leaf":
        chosen = verified[0]
    elif args.level == "intermediate":
        if len(verified) < 3:
            raise UserError("%s: the verified chain has %d certificate(s): no intermediate between leaf and root"
                            % (got.where(), len(verified)))
        chosen = verified[1]
    else:
        chosen = verified[-1]
    leaf = served[0]
    for it, what in ((leaf, "the certificate the server sends"), (chosen, "the certificate to pin")):
        if it.device_error:
            raise UserError("%s: a device cannot check %s (depth %d; the device library says: %s): %s. Nothing "
                            "written; the host reads its key as %s. Fix the server's certificate."
                            % (got.where(), what, it.depth, it.device_error,
                               "every device refuses this server whatever the pinset says" if it is leaf
                               else "a pin of it never matches on a device", it.spki_sha256))
    print_warnings("pinset", chosen, got.where())
    in_chain = {}
    for it in served + verified:  # a backup must be another key, in whatever form a tool printed this one
        for p in [it.spki_sha256] + it.other_pins():
            in_chain.setdefault(p, it)
    for path, pin in backups:
        if pin in in_chain:
            raise UserError("--backup %s has the same key as the certificate %r the server uses: a backup must be "
                            "a key that is not in use (`certpin keygen` makes one)" % (path, in_chain[pin].subject))
    pins = [chosen.spki_sha256] + [p for _, p in backups]
    entry = _entry(host, pins, args, ports=[port])
    print("%s: pinning %s at depth %d: %s (%s)" % (got.where(), args.level, chosen.depth, chosen.spki_sha256,
                                                   chosen.subject), file=sys.stderr)
    if args.level != "leaf":
        print("certpin: pinset: NOTE: an %s pin only works on a device that validates the chain: give it the CA as "
              "cadata (certpin.SSLContext(pinset, cadata=...) / certpin.connect(..., cadata=...)). Without cadata a "
              "device checks only the leaf and refuses %s." % (args.level, host), file=sys.stderr)
    if os.path.exists(args.file):
        _update(args.file, host, entry, exp, args)
    else:
        data = {"format": pinsetfile.FORMAT}
        pinsetfile.stamp(data, 1)
        if exp:
            data["expires"] = exp
        upd = updates.apply_flags(data, args)
        data["hosts"] = {host: _check_entry(host, entry, args)}
        pinsetfile.write(args.file, data, overwrite=False)
        print("%s: new pinset, serial 1, host %s with %d pins%s" % (args.file, host, len(entry["pins"]),
                                                                     ("; " + upd) if upd else ""))
    _lint_hint(args.file)
    return 0


# ---------------------------------------------------------------- lint


def _refuse_bundle(path):
    """`pinset lint` on a signed bundle: say what the file is and what to run instead (exit 2)."""
    from certpin_host import jws
    from certpin_host.files import read_bytes

    raw = read_bytes(path, "pinset")
    if not jws.looks_like_bundle(raw):
        return
    try:
        serial = json.loads(jws.loads(raw).payload.decode("utf-8")).get("serial")
    except (jws.BundleError, UnicodeDecodeError, ValueError, AttributeError):
        serial = None
    raise UserError("%s is a signed bundle (JWS%s), not a pinset: lint the pinset it was signed from "
                    "(certpin pinset lint PINSET); to check the bundle as a device would: certpin pinset "
                    "check-update %s --current INSTALLED.json (or --port PORT: a board's own pinset)"
                    % (path, ", of serial %s" % serial if serial is not None else "", path))


def run_lint(args):
    if not os.path.exists(args.file):
        raise UserError("%s: no such file" % args.file)
    if os.path.isdir(args.file):
        raise UserError("%s: is a directory" % args.file)
    _refuse_bundle(args.file)
    findings = lint.lint_file(args.file, max_days=args.max_days)
    errors = [f for f in findings if f.level == lint.ERROR]
    warnings = [f for f in findings if f.level == lint.WARNING]
    failed = bool(errors) or (args.strict and bool(warnings))
    if args.json:
        print(json.dumps({"file": args.file, "ok": not failed, "errors": len(errors), "warnings": len(warnings),
                          "findings": lint.findings_as_dicts(findings)}, indent=2))
    else:
        for f in findings:
            print("%s: %s" % (args.file, lint.format_finding(f)))
        print("%s: %d error(s), %d warning(s)%s" % (args.file, len(errors), len(warnings),
                                                    "" if findings else ": clean"))
    return EXIT_FAIL if failed else 0
