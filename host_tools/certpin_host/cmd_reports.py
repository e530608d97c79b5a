"""certpin reports: summarise the failure reports devices sent, and tell a key rotation from an interception."""
import argparse
import concurrent.futures
import json
import sys

from certpin_host import fetch, reports
from certpin_host.errors import UserError

EXIT_INTERCEPTION = 3

EPILOG = """\
FILE: what a collector kept of certpin.send_reports() POSTs or of
certpin.reports() handed over another way (MQTT): JSON lines, each a record or
a list of records (a POST body), or one JSON document. DIR: every file under it.
Records are validated against the documented schema (docs/reports.md); a
malformed or hostile one is skipped and counted, never printed. A record a
device sent twice (the acknowledgement of the first send was lost) counts once.

The summary has one entry per host and presented key (the leaf's pin): the
failures and devices, first and last seen (records from a device whose clock
was not set are counted, not dated), the serials and certpin versions they
ran, and the pins they had.

--live connects to each host (at the port the records name, else --port) and
compares the key it presents NOW with the one the devices were shown:
  the same key: "a rotation without a pin update": the server changed its
    key to one the devices do not pin; ship a pin (certpin pinset add ...
    --pin ..., sign, publish);
  another key: "interception suspected": the devices were shown a key the
    server does not use (more so when the server's key is one they pin).
It sees what this machine's network path sees: run it from where the
server's real key is served.

exit status (for alerting): 0 no failure reports; 1 failure reports (or
malformed input skipped), none judged an interception; 3 with --live, an
interception suspected; 2 no FILE could be read.

examples:
  certpin reports /var/lib/certpin/reports.jsonl
  certpin reports collected/ --live --json
"""


def register(sub):
    p = sub.add_parser(
        "reports",
        help="summarise failure reports from devices; --live tells a key rotation from an interception",
        description="Read the failure reports devices sent (certpin.send_reports(), certpin.reports()) and "
        "summarise them per host and presented key. --live asks each server which key it presents now.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="FILE|DIR", help="files of reports (JSON lines or JSON), or directories of them")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--live", action="store_true", help="connect to each host: does it present the reported key now?")
    p.add_argument("--port", type=int, default=fetch.DEFAULT_PORT, metavar="N",
                   help="--live: the port of hosts whose records name none (default 443)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="--live: per-connection timeout (default 10)")
    p.set_defaults(func=run, command="reports")


def live_check(group, default_port, timeout):
    """{"verdict": "rotation" | "interception" | "unreachable" | "not_applicable", "detail", "served", "port"}"""
    host, presented = group["host"], group["presented"]
    if not host or not presented or "pin_mismatch" not in group["reasons"]:
        return {"verdict": "not_applicable", "detail": "nothing to compare: no presented key of a pin mismatch",
                "served": None, "port": None}
    port = group["ports"][0] if group["ports"] else default_port
    try:
        got = fetch.fetch(host, port, timeout=timeout, allow_unverified=True)
    except fetch.FetchError as e:
        return {"verdict": "unreachable", "detail": "%s: %s" % (host, e), "served": None, "port": port}
    if not got.served:
        return {"verdict": "unreachable", "detail": "%s:%d presented no certificate" % (host, port), "served": None,
                "port": port}
    from certpin_host.pins import cert_item

    served = cert_item(got.served[0], source=host, depth=0).spki_sha256
    if served == presented:
        return {"verdict": "rotation", "served": served, "port": port,
                "detail": "the server presents this key now: a rotation without a pin update; ship a pin "
                          "(certpin pinset add PINS.json %s --pin %s, then sign and publish)" % (host, presented)}
    pinned = " (a key the devices pin)" if served in group["pins"] else ""
    return {"verdict": "interception", "served": served, "port": port,
            "detail": "the server does not present it (it presents %s%s): interception suspected" % (served, pinned)}


def run(args):
    reading = reports.Reading()
    for path in args.paths:
        reading.add_path(path)
    for e in reading.errors:
        print("certpin: reports: %s" % e, file=sys.stderr)
    if not reading.sources:
        raise UserError("no report file could be read")
    groups = reports.summarise(reading.records)
    if args.live:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for g, v in zip(groups, pool.map(lambda g: live_check(g, args.port, args.timeout), groups)):
                g["live"] = v
    recs = reports.deduplicate(reading.records)
    devices = {r["device"] for r in recs}  # records without a device id count as one unnamed device
    summary = {"files": len(reading.sources), "records": len(recs),
               "skipped": reading.skipped, "devices": len(devices), "groups": groups}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print(summary)
    if any(g.get("live", {}).get("verdict") == "interception" for g in groups):
        return EXIT_INTERCEPTION
    return 1 if groups or reading.skipped else 0


def _print(s):
    line = "%d record(s) from %d device(s) in %d file(s)" % (s["records"], s["devices"], s["files"])
    if s["skipped"]:
        line += "; %d malformed report(s) skipped" % s["skipped"]
    print(line)
    if not s["groups"]:
        print("no failures reported")
    for g in s["groups"]:
        print()
        what = ("presented %s" % g["presented"]) if g["presented"] else ", ".join(
            r + (" (%s)" % ", ".join(g["rules"]) if r == "update_refused" and g["rules"] else "") for r in g["reasons"])
        print("%s  %s" % (g["host"] or "(no host)", what))
        devs = g["devices"] + (["(a device without an id)"] if g["unnamed"] else [])
        named = ", ".join(devs[:5]) + (", ..." if len(devs) > 5 else "")
        when = ("%s .. %s" % (g["first"], g["last"])) if g["first"] else "no time (device clocks not set)"
        print("  %s; %d failure(s) on %d device(s)%s; %s%s" % (
            ", ".join(g["reasons"]), g["count"], len(devs), " (%s)" % named if named else "",
            when, "; %d record(s) with the device clock not set" % g["clock_unset"] if g["clock_unset"] and g["first"] else ""))
        print("  %s; serial(s) %s; certpin %s%s" % (
            "enforced (refused)" if g["enforced"] else "not enforced (report_only, or an expired pinset's CA fallback)",
            ", ".join(map(str, g["serials"])) or "-", ", ".join(g["versions"]),
            "; port(s) %s" % ", ".join(map(str, g["ports"])) if g["ports"] else ""))
        if g["pins"]:
            print("  pinned: %s" % ", ".join(g["pins"]))
        live = g.get("live")
        if live:
            print("  live: %s" % live["detail"])
