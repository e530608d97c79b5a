"""certpin pinset: build and check pinset files (new, add, from-server, lint)."""
import argparse
import json
import os
import sys

from certpin_host import fetch, lint, pinsetfile
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.pins import cert_item, check_pin, load_file, print_warnings

EPILOG = """\
subcommands:
  new          create FILE with one host (refuses fewer than two distinct pins)
  add          add or replace a host in FILE, bump "serial"
  from-server  pin what a live server sends, plus your offline backup keys
  lint         check FILE: what a device would refuse, plus governance rules

examples:
  certpin keygen backup-1.pem
  certpin pinset from-server pins.json api.example.com --backup backup-1.pem
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --key backup-1.pem --expires 2027-06-30
  certpin pinset add pins.json mqtt.example.com --pin sha256/BBBB...= --pin sha256/CCCC...=
  certpin pinset lint pins.json
"""

_HOST_FLAGS_EPILOG = """\
Pins are sha256/<base64> (SPKI) or cert-sha256/<base64> (whole certificate).
--key FILE adds the SPKI pin of the first certificate, key or CSR in FILE
(handy for a backup key from `certpin keygen`). A pinset with a single pin has
no backup: one rotated or lost key locks every device out, so two distinct pins
are required unless --allow-single-pin.
"""


def register(sub):
    p = sub.add_parser(
        "pinset",
        help="build and check pinset files (new, add, from-server, lint)",
        description="Build and check pinset files: the JSON a device loads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_no_sub, command="pinset", pinset_parser=p)
    ps = p.add_subparsers(dest="pinset_command", metavar="SUBCOMMAND")

    n = ps.add_parser(
        "new", help="create a pinset with one host",
        description="Create FILE holding one host and its pins (serial 1).",
        epilog=_HOST_FLAGS_EPILOG + """
examples:
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --pin sha256/BBBB...=
  certpin pinset new pins.json api.example.com --pin sha256/AAAA...= --key backup-1.pem --expires 2027-06-30
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument("file", metavar="FILE")
    n.add_argument("host", metavar="HOST")
    _host_flags(n)
    n.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    n.set_defaults(func=run_new)

    a = ps.add_parser(
        "add", help="add or replace a host, bump serial",
        description="Add HOST to FILE, or replace its entry, and increase \"serial\" by one.",
        epilog=_HOST_FLAGS_EPILOG + """
examples:
  certpin pinset add pins.json mqtt.example.com --pin sha256/AAAA...= --pin sha256/BBBB...=
  certpin pinset add pins.json example.com --subdomains --pin sha256/... --key backup-2.pem
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("file", metavar="FILE")
    a.add_argument("host", metavar="HOST")
    _host_flags(a)
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
    f.add_argument("--connect", metavar="ADDR", help="connect to ADDR instead of HOST (SNI and name check stay HOST)")
    f.add_argument("--timeout", type=float, default=10.0, metavar="S")
    f.add_argument("--subdomains", action="store_true", help="the entry also covers every subdomain of HOST")
    f.add_argument("--report-only", action="store_true", help="report mismatches but let connections go ahead")
    f.add_argument("--expires", metavar="DATE", help="pinset expiry, YYYY-MM-DD (UTC)")
    f.add_argument("--allow-single-pin", action="store_true", help="allow no --backup (not recommended)")
    f.set_defaults(func=run_from_server)

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


def _host_flags(p):
    p.add_argument("--pin", action="append", default=[], metavar="PIN", help="a pin; repeatable")
    p.add_argument("--key", action="append", default=[], metavar="FILE",
                   help="add the SPKI pin of the first certificate/key/CSR in FILE; repeatable")
    p.add_argument("--subdomains", action="store_true", help="the entry also covers every subdomain of HOST")
    p.add_argument("--report-only", action="store_true", help="report mismatches but let connections go ahead")
    p.add_argument("--expires", metavar="DATE", help="pinset expiry, YYYY-MM-DD (UTC)")
    p.add_argument("--allow-single-pin", action="store_true", help="allow a host with one pin (no backup)")


def _no_sub(args):
    args.pinset_parser.print_help(sys.stderr)
    raise UserError("missing subcommand: new, add, from-server or lint")


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


def _entry(host, pins, args):
    distinct = list(dict.fromkeys(pins))  # order kept, duplicates dropped
    if not distinct:
        raise UserError("%s: no pins: give --pin PIN and/or --key FILE" % host)
    if len(distinct) < 2 and not args.allow_single_pin:
        raise UserError(
            "%s: only one distinct pin: add a backup pin (`certpin keygen backup.pem`, then --key backup.pem); "
            "with a single pin, one rotated or lost key locks every device out. --allow-single-pin overrides"
            % host)
    if args.subdomains and pinsetfile.is_public_suffix(host):
        raise UserError("%s is a public suffix: --subdomains would cover every site under it" % host)
    entry = {"pins": distinct}
    if args.subdomains:
        entry["subdomains"] = True
    if args.report_only:
        entry["report_only"] = True
    return entry


def _lint_hint(path):
    """After writing: what `pinset lint` would say about the whole file (stderr, never fatal here)."""
    findings = lint.lint_file(path)
    for f in findings:
        print("certpin: pinset: lint: %s" % lint.format_finding(f), file=sys.stderr)


def run_new(args):
    host = _host(args.host)
    entry = _entry(host, _pins_from_args(args), args)
    data = {"format": pinsetfile.FORMAT, "serial": 1}
    exp = _expires(args.expires)
    if exp:
        data["expires"] = exp
    data["hosts"] = {host: entry}
    pinsetfile.write(args.file, data, overwrite=args.force)
    print("%s: new pinset, serial 1, host %s with %d pins" % (args.file, host, len(entry["pins"])))
    _lint_hint(args.file)
    return 0


def _update(path, host, entry, expires):
    data = pinsetfile.read(path)
    serial = data.get("serial", 0)
    if type(serial) is not int or serial < 0:
        raise UserError("%s: \"serial\" is %r, not an integer >= 0: fix it first" % (path, serial))
    hosts = data.setdefault("hosts", {})
    old = None
    for k in list(hosts):  # replace a spelling variant (case, trailing dot) too
        if isinstance(k, str) and pinsetfile.normalise_host(k) == host:
            old = hosts.pop(k)
    hosts[host] = entry
    data["serial"] = serial + 1
    if expires:
        data["expires"] = expires
    pinsetfile.write(path, data)
    action = "replaced" if old is not None else "added"
    print("%s: %s host %s (%d pins), serial %d -> %d" % (path, action, host, len(entry["pins"]), serial, serial + 1))
    return 0


def run_add(args):
    host = _host(args.host)
    entry = _entry(host, _pins_from_args(args), args)
    exp = _expires(args.expires)
    if not os.path.exists(args.file):
        raise UserError("%s: no such file (create it with `certpin pinset new`)" % args.file)
    _update(args.file, host, entry, exp)
    _lint_hint(args.file)
    return 0


def run_from_server(args):
    try:
        host, port = fetch.split_hostport(args.hostport)
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
        got = fetch.fetch(host, port, address=args.connect, cafile=args.cafile, timeout=args.timeout)
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
    entry = _entry(host, pins, args)
    print("%s: pinning %s at depth %d: %s (%s)" % (got.where(), args.level, chosen.depth, chosen.spki_sha256,
                                                   chosen.subject), file=sys.stderr)
    if args.level != "leaf":
        print("certpin: pinset: NOTE: an %s pin only works on a device that validates the chain: give it the CA as "
              "cadata (certpin.SSLContext(pinset, cadata=...) / certpin.connect(..., cadata=...)). Without cadata a "
              "device checks only the leaf and refuses %s." % (args.level, host), file=sys.stderr)
    if os.path.exists(args.file):
        _update(args.file, host, entry, exp)
    else:
        data = {"format": pinsetfile.FORMAT, "serial": 1}
        if exp:
            data["expires"] = exp
        data["hosts"] = {host: entry}
        pinsetfile.write(args.file, data, overwrite=False)
        print("%s: new pinset, serial 1, host %s with %d pins" % (args.file, host, len(entry["pins"])))
    _lint_hint(args.file)
    return 0


# ---------------------------------------------------------------- lint


def run_lint(args):
    if not os.path.exists(args.file):
        raise UserError("%s: no such file" % args.file)
    if os.path.isdir(args.file):
        raise UserError("%s: is a directory" % args.file)
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
