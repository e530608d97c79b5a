"""certpin status: what a board holds (library, pinset, time floor, failure journal), read over USB."""
import argparse
import base64
import datetime
import hashlib
import json
import os

from certpin_host import board, reports
from certpin_host.errors import EXIT_FAIL, UserError

EPILOG = """\
One script runs on the board (through mpremote or ampy, as `certpin flash`
uses them) and prints, between markers: MicroPython's version and platform,
the certpin library's version and where it is, the pinset file, its time
floor and its failure journal, and the journal's records as
certpin.reports() returns them (the file, plus what still waits in the
board's RAM; nothing is cleared). Everything is checked here with the device
library's own rules: a pinset the board would refuse, or a record that is
not a device's, is reported, never trusted.

With mpremote the board is not reset: the running program is interrupted
(Ctrl-C, as at its REPL) and its RAM state read; reset the board to start it
again. ampy resets the board first: only what reached the journal file is
seen then.

exit status: 0 the board holds a valid pinset in force and its journal is
empty; 1 the journal holds records, or the pinset is missing, refused or
expired; 2 the board could not be read (no port, no answer, tool missing).

examples:
  certpin status --port /dev/ttyUSB0
  certpin status --port /dev/ttyACM0 --tool ampy --json
"""

_MARK = "CERTPIN-STATUS"


def register(sub):
    p = sub.add_parser(
        "status",
        help="what a board holds: library, pinset, time floor, failure journal",
        description="Read a board over USB: its certpin library version, pinset (serial, issued, expires, "
        "hosts and pins, update keys and URL, report URL), time floor and failure journal (newest first).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", required=True, help="the board's serial port (/dev/ttyUSB0, COM3, a vboard's /dev/pts/N), "
                   "or auto: the one attached board, as mpremote finds it")
    p.add_argument("--tool", choices=("mpremote", "ampy"), default="mpremote", help="tool to talk to the board (default: mpremote)")
    p.add_argument("--path", default="/certpin.json", help="the pinset file on the board (default: /certpin.json)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--timeout", type=float, default=60, metavar="S", help="give up after S seconds (default 60)")
    p.set_defaults(func=run, command="status")


def board_code(path):
    """MicroPython source that prints what status needs; every path quoted with repr()."""
    journal = (path[:-5] if path.endswith(".json") else path) + ".journal"
    floor = (path[:-5] if path.endswith(".json") else path) + ".floor"
    return "\n".join([
        "def _status():",
        "    import sys, json, os, binascii",
        "    m = %r" % _MARK,
        "    print(m, 'impl', json.dumps(['.'.join(str(v) for v in sys.implementation.version[:3]), sys.platform]))",
        "    for i, p in enumerate(%r):" % ([path, floor, journal, path + ".bak"],),
        "        try:",
        "            f = open(p, 'rb')",
        "        except OSError as e:",
        "            print(m, 'missing' if e.args[0] == 2 else 'unreadable', i, e.args[0])",
        "            continue",
        "        with f:",
        "            n = 0",
        "            while n < 70000:",
        "                b = f.read(384)",
        "                if not b:",
        "                    break",
        "                n += len(b)",
        "                print(m, 'data', i, binascii.b2a_base64(b).decode().strip())",
        "        print(m, 'end', i)",
        "    lib = None",
        "    for x in ('/lib/certpin/__init__.mpy', '/lib/certpin/__init__.py'):",
        "        try:",
        "            os.stat(x)",
        "            lib = x",
        "            break",
        "        except OSError:",
        "            pass",
        "    print(m, 'lib', json.dumps(lib))",
        "    try:",
        "        import certpin",
        "        print(m, 'version', json.dumps(certpin.__version__))",
        "        print(m, 'reports', json.dumps(certpin.reports(False, %r)))" % path,
        "    except Exception as e:",
        "        print(m, 'error', json.dumps(repr(e)[:200]))",
        "_status()",
        "del _status",
    ]) + "\n"


def run_on_board(port, tool, code, timeout):
    """Run MicroPython code on the board through the transport `certpin flash` uses (certpin_host.board:
    mpremote's, resuming the board without a reset, or ampy's); its stdout."""
    try:
        with board.connect(port, tool, timeout, soft_reset=False) as b:
            return b.exec(code, timeout=timeout).decode("utf-8", "replace")
    except board.BoardError as e:
        raise UserError(str(e))


def parse_output(out):
    """{"impl", "files": [bytes or None] x3, "lib", "version", "reports", "error"} from the board's output."""
    res = {"files": [None] * 4, "impl": None, "lib": None, "version": None, "reports": None, "error": None,
           "unreadable": {}}
    chunks = {0: [], 1: [], 2: [], 3: []}
    ended = set()
    for line in out.splitlines():
        if not line.startswith(_MARK + " "):
            continue
        words = line.split(" ", 2)
        if len(words) < 3:
            continue
        kind, rest = words[1], words[2]
        try:
            if kind == "data":
                i, b = rest.split(" ", 1)
                chunks[int(i)].append(base64.b64decode(b, validate=True))
            elif kind == "end":
                ended.add(int(rest))
            elif kind == "missing":
                ended.discard(int(rest.split(" ")[0]))
            elif kind == "unreadable":  # the file exists but open() failed (EIO, EMFILE...): not missing
                i, n = rest.split(" ", 1)
                res["unreadable"][int(i)] = n
            elif kind in ("impl", "lib", "version", "reports", "error"):
                res[kind] = json.loads(rest)
        except (ValueError, KeyError):
            raise UserError("the board's answer is garbled (%r)" % line[:120])
    if res["impl"] is None:
        raise UserError("no answer from the board (output: %r)" % out[-300:])
    for i in range(4):
        if i in ended:
            res["files"][i] = b"".join(chunks[i])
    return res


def status(port, tool, path, timeout):
    """What the board holds, checked with the device library: a dict (the --json output)."""
    import certpin

    res = parse_output(run_on_board(port, tool, board_code(path), timeout))
    pinset_bytes, floor_bytes, journal_bytes, bak_bytes = res["files"]
    st = {"port": port, "micropython": res["impl"][0] if isinstance(res["impl"], list) else None,
          "platform": res["impl"][1] if isinstance(res["impl"], list) else None,
          "library": {"version": res["version"] if isinstance(res["version"], str) else None,
                      "path": res["lib"] if isinstance(res["lib"], str) else None},
          "pinset": {"path": path, "present": pinset_bytes is not None},
          "floor": None, "expired": None, "problems": []}
    if res["error"] and isinstance(res["error"], str):
        st["library"]["error"] = res["error"]
    if st["library"]["version"] is None:
        st["problems"].append("the certpin library does not import on the board%s" % (
            ": " + res["error"] if isinstance(res["error"], str) else ""))
    ps = None
    for i, what in enumerate((path, "the time floor", "the journal", path + ".bak")):
        if i in res["unreadable"]:
            st["problems"].append("cannot read %s on the board (OSError %s): check its filesystem" % (what, res["unreadable"][i]))
    if pinset_bytes is None and 0 not in res["unreadable"] and bak_bytes is not None:
        # certpin.load() puts path.bak back when path is missing (an update cut by a power loss): judge that
        st["problems"].append("%s is missing and %s.bak is there: the device recovers it at its next load" % (path, path))
        pinset_bytes = bak_bytes
        st["pinset"]["present"] = True
        st["pinset"]["from_bak"] = True
    if pinset_bytes is None:
        if 0 not in res["unreadable"]:
            st["problems"].append("no pinset at %s: flash one (certpin flash)" % path)
    else:
        try:
            ps = certpin.loads(pinset_bytes)
            data = json.loads(pinset_bytes.decode("utf-8"))
        except (certpin.Error, ValueError) as e:
            st["problems"].append("the board would refuse its pinset: %s" % e)
        else:
            st["pinset"].update(_pinset_facts(ps, data))
    if floor_bytes is not None:
        try:
            text = floor_bytes.decode("ascii")
            datetime.date.fromisoformat(text.strip())
            st["floor"] = text.strip() if len(text) == 11 and text[10] == "\n" else None
        except (UnicodeDecodeError, ValueError):
            pass
        if st["floor"] is None:
            st["problems"].append("the time floor file is unreadable (the board ignores it)")
    if ps is not None:
        dates = [f for f in (st["floor"], st["pinset"].get("issued")) if f]
        floor = max(dates) if dates else None  # the board's time floor: the later of the file and `issued`
        exp = st["pinset"].get("expires")
        st["expired"] = bool(floor and exp and floor > exp)
        if st["expired"]:
            st["problems"].append("the pinset expired on %s (the time floor is %s): the board %s" % (
                exp, floor, "keeps enforcing the pins without cadata, validates by CA alone with cadata"))
    # The records: certpin.reports() on the board (file + RAM), else the journal file read here.
    skipped = 0
    recs = []
    source = "certpin.reports() on the board: the file and the board's RAM"
    raw = res["reports"]
    if not isinstance(raw, list):
        source = "the journal file"
        raw = []
        for line in (journal_bytes or b"").split(b"\n"):
            if line.strip():
                try:
                    raw.append(json.loads(line.decode("utf-8")))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    skipped += 1
    for r in raw:
        rec = reports.parse_record(r)
        if rec is None:
            skipped += 1
        else:
            recs.append(rec)
    recs.sort(key=lambda r: r["last"], reverse=True)
    st["journal"] = {"path": (path[:-5] if path.endswith(".json") else path) + ".journal",
                     "bytes": len(journal_bytes) if journal_bytes is not None else None,
                     "source": source, "records": recs, "skipped": skipped}
    return st


def _pinset_facts(ps, data):
    hosts = {}
    for h in sorted(data["hosts"]):
        e = data["hosts"][h]
        hosts[h] = {"pins": e["pins"], "subdomains": e.get("subdomains") is True,
                    "report_only": e.get("report_only") is True,
                    "report_url": (e.get("report") or {}).get("url")}
    out = {"serial": ps.serial, "issued": data.get("issued"), "expires": data.get("expires"), "hosts": hosts}
    u = data.get("update")
    if u:
        out["update"] = {"threshold": u["threshold"], "url": u.get("url"),
                         "keys": ["sha256/" + base64.b64encode(hashlib.sha256(base64.b64decode(k)).digest()).decode()
                                  for k in u["keys"]]}
    r = data.get("report")
    if r:
        out["report"] = {"url": r.get("url"), "device": r.get("device")}
    return out


def run(args):
    if args.port == "auto":
        try:
            args.port = board.auto_port()
        except board.BoardError as e:
            raise UserError(str(e))
    if not os.path.exists(args.port) and args.port.startswith("/dev/"):
        raise UserError("%s: no such port (is the board plugged in? is the vboard running?)" % args.port)
    if not args.path.startswith("/"):
        raise UserError("--path must be an absolute file path on the board, like /certpin.json")
    st = status(args.port, args.tool, args.path, args.timeout)
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        _print(st)
    return EXIT_FAIL if st["problems"] or st["journal"]["records"] or st["journal"]["skipped"] else 0


def _print(st):
    lib = st["library"]
    print("board %s: MicroPython %s (%s), certpin %s%s" % (
        st["port"], st["micropython"], st["platform"], lib["version"] or "not importable",
        " in %s" % os.path.dirname(lib["path"]) + (" (.mpy)" if lib["path"].endswith(".mpy") else " (.py)")
        if lib["path"] else ""))
    p = st["pinset"]
    if "serial" in p:
        print("pinset %s: serial %s, issued %s, expires %s" % (p["path"], p["serial"], p["issued"] or "-", p["expires"] or "never"))
        print("  time floor: %s%s" % (st["floor"] or "none (the pinset's issued date only)",
                                     "; EXPIRED" if st["expired"] else "; in force"))
        u = p.get("update")
        if u:
            print("  update: %d of %d key(s) (%s); url %s" % (u["threshold"], len(u["keys"]), ", ".join(u["keys"]), u["url"] or "-"))
        else:
            print("  update: none (signed updates impossible: reflash over USB)")
        r = p.get("report")
        print("  report: url %s, device %s" % ((r or {}).get("url") or "-", (r or {}).get("device") or "-"))
        for h, e in p["hosts"].items():
            flags = [f for f in ("subdomains", "report_only") if e[f]]
            print("  %s%s: %s%s" % (h, " [%s]" % ", ".join(flags) if flags else "", ", ".join(e["pins"]),
                                    "; reports to %s" % e["report_url"] if e["report_url"] else ""))
    for problem in st["problems"]:
        print("problem: %s" % problem)
    j = st["journal"]
    n = len(j["records"])
    print("journal %s: %s" % (j["path"], "empty" if not n else "%d record(s), newest first (from %s)" % (n, j["source"])))
    if j["skipped"]:
        print("  %d malformed record(s) skipped" % j["skipped"])
    for r in j["records"]:
        where = r["host"] or "-"
        if r["port"]:
            where += ":%d" % r["port"]
        what = r["reason"] + (" (%s)" % r["rule"] if r["rule"] else "")
        print("  %s  %s  %s  %dx since %s%s, %s" % (
            r["last"], what, where, r["count"], r["first"], "" if r["clock"] else " (clock not set)",
            "enforced" if r["enforced"] else "not enforced"))
        if r["presented"]:
            print("    presented %s" % ", ".join(x or "(unreadable certificate)" for x in r["presented"]))
        if r["pins"]:
            print("    pinned %s" % ", ".join(r["pins"]))
        if r["url"]:
            print("    url %s" % r["url"])
