"""Lint rules for pinset files: what a device would refuse, plus governance.

    lint_file(path, **opts) -> [Finding]
    lint_pinset_text(text, **opts) -> [Finding]

A Finding is (level, host, message): level is "error" (a device would refuse
the file, or the policy is a likely outage) or "warning"; host is the host
entry concerned or None. Options: ``today`` (a date, default today UTC) and
``max_days`` (an expiry further away than this is a warning, default 400).
"""
import collections

from certpin_host import pinsetfile, updates
from certpin_host.pins import PinFormatError, parse_pin

Finding = collections.namedtuple("Finding", "level host message")

ERROR = "error"
WARNING = "warning"
DEFAULT_MAX_DAYS = 400
SOON_DAYS = 30


def lint_file(path, **opts):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return [Finding(ERROR, None, "%s: no such file" % path)]
    except OSError as e:
        return [Finding(ERROR, None, "%s: cannot read: %s" % (path, e.strerror or e))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [Finding(ERROR, None, "not UTF-8 text: %s" % e)]
    return lint_pinset_text(text, **opts)


def has_errors(findings):
    return any(f.level == ERROR for f in findings)


def lint_pinset_text(text, today=None, max_days=DEFAULT_MAX_DAYS):
    """The findings for a pinset's text, each once (in the order found)."""
    return list(dict.fromkeys(_lint(text, today, max_days)))


def _lint(text, today, max_days):
    out = []
    today = today or pinsetfile.today()

    def err(msg, host=None):
        out.append(Finding(ERROR, host, msg))

    def warn(msg, host=None):
        out.append(Finding(WARNING, host, msg))

    if text.startswith("\ufeff"):
        err("the file starts with a byte-order mark: save it as plain UTF-8")
        text = text[1:]
    try:
        data, dups = pinsetfile.loads_with_duplicates(text)
    except ValueError as e:
        err("not valid JSON: %s" % e)
        return out + _device_findings(text, out)
    for k in dups:
        err("duplicate JSON key %r: JSON readers silently keep only the last one" % k)
    if not isinstance(data, dict):
        err("a pinset is a JSON object, not %s" % type(data).__name__)
        return out + _device_findings(text, out)

    for k in data:
        if k not in pinsetfile.TOP_KEYS:
            err("unknown top-level key %r (allowed: %s)" % (k, ", ".join(pinsetfile.TOP_KEYS)))
    fmt = data.get("format")
    if "format" not in data:
        err("missing \"format\": 1")
    elif type(fmt) is not int or fmt != pinsetfile.FORMAT:
        err("\"format\" must be %d, found %r" % (pinsetfile.FORMAT, fmt))

    if "serial" not in data:
        warn("no \"serial\": nothing tells which release of the pinset a device holds (`pinset add` keeps one)")
    else:
        s = data["serial"]
        if type(s) is not int or s < 0:
            err("\"serial\" must be an integer >= 0, found %r" % (s,))

    if "expires" not in data:
        warn("no \"expires\" date: a pinset that never expires outlives the keys it pins; set one within %d days" % max_days)
    else:
        try:
            exp = pinsetfile.parse_date(data["expires"])
        except ValueError as e:
            err("\"expires\": %s" % e)
        else:
            days = (exp - today).days
            if days < 0:
                err("\"expires\" %s is in the past (%d days ago): ship a new pinset" % (data["expires"], -days))
            elif days < SOON_DAYS:
                warn("\"expires\" %s is only %d days away: ship the next pinset to every device before then"
                     % (data["expires"], days))
            elif days > max_days:
                warn("\"expires\" %s is %d days away (more than %d): a long-lived pinset outlives its keys"
                     % (data["expires"], days, max_days))

    _lint_issued(data, today, err)
    updates.lint_update(data, err, warn)

    hosts = data.get("hosts")
    if "hosts" not in data:
        err("missing \"hosts\"")
    elif not isinstance(hosts, dict):
        err("\"hosts\" must be an object mapping host names to entries")
    elif not hosts:
        err("\"hosts\" is empty: a device with this pinset refuses every connection")
    else:
        seen = {}
        for host, entry in hosts.items():
            _lint_host(host, entry, err, warn)
            key = pinsetfile.normalise_host(host) if isinstance(host, str) else host
            if key in seen:
                err("host %r and %r are the same host (names match case-insensitively, without trailing dot)"
                    % (seen[key], host), key)
            else:
                seen[key] = host
    return out + _device_findings(text, out)


def _lint_issued(data, today, err):
    if "issued" not in data:
        return
    try:
        issued = pinsetfile.parse_date(data["issued"])
    except ValueError as e:
        err("\"issued\": %s" % e)
        return
    try:
        exp = pinsetfile.parse_date(data.get("expires"))
    except ValueError:
        exp = None
    if exp is not None and issued > exp:
        err("\"issued\" %s is after \"expires\" %s" % (data["issued"], data["expires"]))
    if (issued - today).days > 1:  # a day of slack for time zones
        err("\"issued\" %s is in the future: a device takes it as authenticated time, so its pinset would "
            "count as expired early" % data["issued"])


def _lint_host(host, entry, err, warn):
    problem = pinsetfile.hostname_problem(host)
    if problem:
        err("invalid host name: %s" % problem, host)
    if not isinstance(entry, dict):
        err("entry must be an object with \"pins\", found %s" % type(entry).__name__, host)
        return
    for k in entry:
        if k not in pinsetfile.HOST_KEYS:
            err("unknown key %r (allowed: %s)" % (k, ", ".join(pinsetfile.HOST_KEYS)), host)
    pins = entry.get("pins")
    if "pins" not in entry:
        err("missing \"pins\"", host)
    elif not isinstance(pins, list):
        err("\"pins\" must be a list of pin strings", host)
    elif not pins:
        err("\"pins\" is empty", host)
    else:
        good = []
        for p in pins:
            try:
                parse_pin(p)
            except PinFormatError as e:
                err(str(e), host)
            else:
                good.append(p)
        distinct = set(pins if all(isinstance(p, str) for p in pins) else good)
        if len(distinct) < len(pins):
            warn("a pin is listed twice", host)
        if len(set(good)) < 2:
            err("only %d distinct valid pin(s): add a backup pin (`certpin keygen`), or one outage "
                "(a rotated or lost key) locks every device out" % len(set(good)), host)
        elif all(p.startswith("cert-sha256/") for p in good):
            warn("only cert-sha256/ pins: they break at every certificate renewal, even with the same key; "
                 "prefer sha256/ key pins", host)
    for flag in ("subdomains", "report_only"):
        if flag in entry and not isinstance(entry[flag], bool):
            err("\"%s\" must be true or false, found %r" % (flag, entry[flag]), host)
    if entry.get("subdomains") is True and isinstance(host, str):
        h = pinsetfile.normalise_host(host)
        if pinsetfile.is_public_suffix(h):
            err("\"subdomains\": true on public suffix %r would cover every site under it (Public Suffix List, "
                "publicsuffixlist %s)" % (h, pinsetfile.psl_version()), host)
        elif pinsetfile.is_ip(h):
            warn("\"subdomains\": true on an IP address has no effect", host)
    if "ports" in entry:
        problem = pinsetfile.ports_problem(entry["ports"])
        if problem:
            err(problem, host)
    if entry.get("report_only") is True:
        warn("\"report_only\": true: mismatches are only reported, the connection goes ahead "
             "(no protection for this host)", host)


def _device_findings(text, own):
    """What the device library itself says (certpin.loads), unless lint already found errors it would repeat."""
    try:
        import certpin
    except Exception as e:  # a broken install must not make lint pass silently
        return [Finding(ERROR, None, "cannot import the device library certpin to check the file: %s" % e)]
    loads = getattr(certpin, "loads", None)
    if loads is None:
        return [Finding(WARNING, None, "the installed device library has no certpin.loads: device-side check skipped")]
    try:
        loads(text)
    except getattr(certpin, "Error", Exception) as e:
        if any(f.level == ERROR for f in own):
            msg = "a device refuses this file: %s" % e
        else:
            msg = "a device refuses this file (lint found no other problem): %s" % e
        return [Finding(ERROR, None, msg)]
    except Exception as e:  # the device library must only raise certpin.Error: report, don't crash
        return [Finding(ERROR, None, "the device library crashed reading this file (%s: %s): a device would refuse it"
                        % (type(e).__name__, e))]
    return []


def findings_as_dicts(findings):
    return [f._asdict() for f in findings]


def format_finding(f):
    where = ("%s: " % f.host) if f.host else ""
    return "%s: %s%s" % (f.level, where, f.message)


__all__ = ["Finding", "lint_file", "lint_pinset_text", "has_errors", "format_finding", "ERROR", "WARNING"]
