"""Failure reports from devices (docs/reports.md): read, validate, summarise.

A report is one record of a device's failure journal (certpin/_journal.py),
as certpin.reports() and certpin.send_reports() hand it over. Collectors keep
what devices POST; `certpin reports` and `certpin status` read it here.

Nothing in a report is trusted: it comes from devices in the field and
through whatever collected it. ``parse_record`` accepts only the documented
shape (every string checked against what the device can write: pins,
host names, times, printable ASCII) and returns None for anything else,
which callers count and skip. No field of a refused record is ever printed.
"""
import json
import os
import re


MAX_LINE = 1 << 20  # a device's journal is 4 KiB: a line longer than this is not a device's
MAX_FILE = 64 << 20  # bytes read from one file at most

_PIN = re.compile(r"(sha256|cert-sha256)/[A-Za-z0-9+/]{43}=\Z")
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}\Z")  # a name the device accepted, or an IP literal
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_PRINTABLE = re.compile(r"[\x21-\x7e]+\Z")
_WORD = re.compile(r"[a-z_]{1,32}\Z")
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,32}\Z")


def _str(v, rx, null=False):
    if v is None:
        return null
    return isinstance(v, str) and bool(rx.match(v))


def _int(v, lo, hi, null=False):
    if v is None:
        return null
    return type(v) is int and lo <= v <= hi


def parse_record(r):
    """The record as a clean dict, or None when it is not a device's record."""
    if not isinstance(r, dict):
        return None
    ok = (
        _str(r.get("reason"), _WORD)
        and _str(r.get("host"), _HOST, null=True)
        and _int(r.get("port"), 1, 65535, null=True)
        and isinstance(r.get("presented"), list) and len(r["presented"]) <= 16
        and all(_str(p, _PIN, null=True) for p in r["presented"])
        and isinstance(r.get("pins"), list) and len(r["pins"]) <= 255
        and all(_str(p, _PIN) for p in r["pins"])
        and _int(r.get("count"), 1, 10 ** 12)
        and _str(r.get("first"), _TIME) and _str(r.get("last"), _TIME) and r["first"] <= r["last"]
        and isinstance(r.get("enforced"), bool)
        and isinstance(r.get("clock", False), bool)
        and _int(r.get("serial"), 0, 2 ** 53 - 1, null=True)
        and _str(r.get("version"), _VERSION)
        and (len(r.get("device") or "") <= 64 and _str(r.get("device"), _PRINTABLE, null=True))
        and _str(r.get("rule"), _WORD, null=True)
        and (len(r.get("url") or "") <= 512 and _str(r.get("url"), _PRINTABLE, null=True))
    )
    if not ok:
        return None
    keys = ("reason", "host", "port", "presented", "pins", "enforced", "rule", "url", "serial", "version",
            "count", "first", "last", "clock", "device")
    out = {k: r.get(k) for k in keys}
    out["clock"] = r.get("clock") is True
    return out


class Reading:
    """Records read from files: ``records`` (clean dicts), ``skipped`` (malformed
    reports, by count), ``sources`` (files read), ``errors`` (files that could not be read)."""

    def __init__(self):
        self.records, self.skipped, self.sources, self.errors = [], 0, [], []

    def add_json(self, value):
        """A decoded JSON value: a record, or a list of records (a POST body)."""
        items = value if isinstance(value, list) else [value]
        for item in items:
            rec = parse_record(item)
            if rec is None:
                self.skipped += 1
            else:
                self.records.append(rec)

    def add_text(self, data):
        """A whole document (one JSON value), else JSON lines, one value a line."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(text)
            except ValueError:
                pass
            else:
                if len(data) <= MAX_LINE or isinstance(value, list):
                    self.add_json(value)
                    return
        for line in data.split(b"\n"):
            line = line.strip()
            if not line:
                continue
            if len(line) > MAX_LINE:
                self.skipped += 1
                continue
            try:
                value = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                self.skipped += 1
                continue
            self.add_json(value)

    def add_path(self, path):
        if os.path.isdir(path):
            for d, dirs, files in os.walk(path):
                dirs[:] = sorted(x for x in dirs if not x.startswith("."))
                for f in sorted(files):
                    if not f.startswith("."):
                        self.add_file(os.path.join(d, f))
        else:
            self.add_file(path)

    def add_file(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE + 1)
        except FileNotFoundError:
            self.errors.append("%s: no such file or directory" % path)
            return
        except OSError as e:
            self.errors.append("%s: cannot read: %s" % (path, e.strerror or e))
            return
        self.sources.append(path)
        if len(data) > MAX_FILE:
            data = data[: data.rfind(b"\n", 0, MAX_FILE) + 1]  # whole lines only
            self.errors.append("%s: larger than %d MiB: only its first %d MiB read" % (path, MAX_FILE >> 20, MAX_FILE >> 20))
        self.add_text(data)


def deduplicate(records):
    """One record per device and kind of failure: a device sends a record again
    (with a larger count) when the 2xx of an earlier send never reached it."""
    best = {}
    for r in records:
        k = (r["device"], r["reason"], r["host"], r["port"], tuple(r["presented"]), r["rule"], r["url"], r["first"])
        old = best.get(k)
        if old is None or (r["count"], r["last"]) > (old["count"], old["last"]):
            best[k] = r
    return list(best.values())


def key_of(r):
    """What a summary groups by: the host and the key it presented (its leaf's pin)."""
    leaf = r["presented"][0] if r["presented"] else None
    return (r["host"] or "", leaf or "", r["reason"] if not leaf else "")


def summarise(records):
    """[group]: per host and presented key, newest last-seen first."""
    groups = {}
    for r in deduplicate(records):
        k = key_of(r)
        g = groups.get(k)
        if g is None:
            g = groups[k] = {
                "host": r["host"], "presented": r["presented"][0] if r["presented"] else None,
                "reasons": [], "rules": [], "ports": [], "devices": [], "serials": [], "versions": [],
                "pins": [], "count": 0, "records": 0, "first": None, "last": None, "clock_unset": 0,
                "enforced": False, "unnamed": False,
            }
        g["unnamed"] = g["unnamed"] or r["device"] is None
        g["records"] += 1
        g["count"] += r["count"]
        g["enforced"] = g["enforced"] or r["enforced"]
        for field, value in (("reasons", r["reason"]), ("rules", r["rule"]), ("ports", r["port"]),
                             ("devices", r["device"]), ("serials", r["serial"]), ("versions", r["version"])):
            if value is not None and value not in g[field]:
                g[field].append(value)
        for p in r["pins"]:
            if p not in g["pins"]:
                g["pins"].append(p)
        if not r["clock"]:
            g["clock_unset"] += 1  # its times are the device's unset clock: not counted in first/last
            continue
        g["first"] = min(g["first"] or r["first"], r["first"])
        g["last"] = max(g["last"] or r["last"], r["last"])
    out = list(groups.values())
    for g in out:
        for field in ("ports", "serials", "devices", "versions", "reasons", "rules"):
            g[field].sort(key=str)
    out.sort(key=lambda g: (g["last"] or "", g["count"]), reverse=True)
    return out


# ---------------------------------------------------------------- the pinset's "report" sections

REPORT_KEYS = ("url", "device")  # at the top; a host entry's has only "url"


def _url_host(url):
    rest = url.split("://", 1)[1]
    hp = rest.split("/", 1)[0].split("#", 1)[0].split("?", 1)[0]
    if hp.startswith("["):
        return hp[1 : hp.find("]")].lower()
    return hp.rsplit(":", 1)[0].lower() if hp.count(":") == 1 else hp.lower()


def lint_report(data, err, warn):
    """Lint rules for data["report"] and each host entry's "report" (docs/reports.md)."""
    from certpin_host.device import entry_for
    from certpin_host.updates import url_problem

    sections = []
    if "report" in data:
        sections.append(("report", data["report"], REPORT_KEYS, None))
    hosts = data.get("hosts")
    if isinstance(hosts, dict):
        for h, e in hosts.items():
            if isinstance(e, dict) and "report" in e:
                sections.append(("hosts[%r].report" % h, e["report"], ("url",), h))
    for where, r, allowed, host in sections:
        if not isinstance(r, dict):
            err("%s must be an object with \"url\"%s, found %s" % (where, "" if host else " and/or \"device\"",
                                                                   type(r).__name__), host)
            continue
        for k in r:
            if k not in allowed:
                err("%s: unknown key %r (allowed: %s)" % (where, k, ", ".join(allowed)), host)
        if host and "url" not in r:
            err("%s: missing \"url\" (where reports about this host go)" % where, host)
        if "device" in r:
            d = r["device"]
            if not (isinstance(d, str) and 0 < len(d) <= 64 and _PRINTABLE.match(d)):
                err("%s: \"device\" must be 1 to 64 printable ASCII characters, found %r" % (where, d))
            elif "update" in data:
                warn("%s: \"device\" %r in a pinset with signed updates: an update replaces it with the fleet's "
                     "pinset; set certpin.device_id in the device's boot.py instead (docs/reports.md)" % (where, d))
        if "url" not in r:
            continue
        problem = url_problem(r["url"])
        if problem:
            err("%s: \"url\": %s" % (where, problem), host)
            continue
        u = r["url"]
        if u.startswith("http://"):
            warn("%s: \"url\" %s is plain HTTP: anyone on the path can read the reports, and erase them by "
                 "answering 200; use https:// to a collector in the pinset" % (where, u), host)
        elif isinstance(hosts, dict) and entry_for(data, _url_host(u))[1] is None:
            warn("%s: the collector %s is not in the pinset, so the device reaches it with TLS that checks "
                 "nothing: an on-path attacker can answer 200 and erase the reports; pin it" % (where, _url_host(u)), host)
