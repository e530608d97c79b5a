"""Reading and writing pinset files; host name rules.

Pinsets are written with a stable key order, indent=2 and a trailing newline,
atomically (temporary file in the same directory, then rename), so a reader
never sees half a file.
"""
import datetime
import ipaddress
import json
import re

from certpin_host.errors import UserError
from certpin_host.files import write_atomic

FORMAT = 1
TOP_KEYS = ("format", "serial", "issued", "expires", "update", "report", "hosts")
HOST_KEYS = ("pins", "subdomains", "report_only", "ports", "report")
UPDATE_KEYS = ("keys", "threshold", "url")
REPORT_KEYS = ("url", "device")

HOST_PORTS = (443,)  # the ports `certpin verify` checks for a host without "ports"
MAX_PORTS = 16

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def normalise_host(host):
    """The pinset key for a host: lowercase, no trailing dot."""
    return host.strip().rstrip(".").lower()


def hostname_problem(host):
    """None if host is a valid pinset key, else what is wrong with it."""
    if not isinstance(host, str) or not host:
        return "empty host name"
    if host != host.lower():
        return "host %r is not lowercase (write %r)" % (host, normalise_host(host))
    if host.endswith("."):
        return "host %r has a trailing dot (write %r)" % (host, normalise_host(host))
    if is_ip(host):
        return None
    if host.startswith("*."):
        return "host %r is a wildcard: write %r with \"subdomains\": true" % (host, host[2:])
    if len(host) > 253:
        return "host name is longer than 253 characters"
    if "://" in host or "/" in host:
        return "host %r is a URL or path: write just the host name" % host
    if ":" in host:
        return "host %r carries a port: pins are per host name, write %r" % (host, host.rsplit(":", 1)[0])
    for label in host.split("."):
        if not _LABEL.match(label):
            return "host %r is not a valid DNS name (label %r)" % (host, label)
    if host.replace(".", "").isdigit():
        return "host %r is neither a DNS name nor a valid IP address" % host
    return None


_PSL = None


def _psl():
    global _PSL
    if _PSL is None:
        try:
            from publicsuffixlist import PublicSuffixList
        except ImportError as e:  # a broken install must not make --subdomains on "com" pass
            raise UserError("the Public Suffix List package is missing (%s): reinstall certpin "
                            "(pip install publicsuffixlist)" % e)
        _PSL = PublicSuffixList()  # ICANN and private suffixes (github.io, ddns.net, eu.org, ...)
    return _PSL


def psl_version():
    """The version of the installed Public Suffix List package (its releases track the list)."""
    try:
        from importlib.metadata import version

        return version("publicsuffixlist")
    except Exception:
        return "unknown"


def is_public_suffix(host):
    """True for a public suffix of the Public Suffix List (publicsuffix.org, through the
    `publicsuffixlist` package), private section included; an unlisted single label counts too
    (the list's "*" rule). IP literals are not suffixes."""
    if not host or is_ip(host):
        return False
    return bool(_psl().is_public(host.rstrip(".").lower()))


def ports_problem(v):
    """None if v is a valid "ports" value (as the device loader checks it), else what is wrong."""
    if not isinstance(v, list) or not 0 < len(v) <= MAX_PORTS:
        return "\"ports\" must be a list of 1 to %d port numbers, found %r" % (MAX_PORTS, v)
    for p in v:
        if type(p) is not int or not 0 < p < 65536:
            return "\"ports\": %r is not a port number from 1 to 65535" % (p,)
        if v.count(p) > 1:
            return "\"ports\": %d is listed twice" % p
    return None


def host_ports(entry):
    """The ports verify checks for a host entry: its "ports", else 443."""
    v = entry.get("ports") if isinstance(entry, dict) else None
    return list(v) if isinstance(v, list) and v else list(HOST_PORTS)


def parse_date(text):
    """'YYYY-MM-DD' -> date, else ValueError."""
    # [0-9], not \d: \d and int() also take other scripts' digits ("２０２７"),
    # which a device's MicroPython refuses. Lint must not pass what a device refuses.
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise ValueError("%r is not a date in the form YYYY-MM-DD (ASCII digits)" % (text,))
    return datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def today_arg(text):
    """--today DATE as (Y, M, D) for the device library's rules, None when not given; UserError otherwise."""
    if text is None:
        return None
    try:
        d = parse_date(text)
    except ValueError as e:
        raise UserError("--today: %s" % e)
    return (d.year, d.month, d.day)


def stamp(data, serial):
    """A new release of the pinset: set "serial" and "issued" (today, UTC).

    Every write that bumps the serial stamps "issued": a device takes a signed
    pinset's "issued" as authenticated time (its expiry floor)."""
    data["serial"] = serial
    data["issued"] = today().isoformat()


class DuplicateKeys(list):
    pass


def loads_with_duplicates(text):
    """json.loads that also returns [(path, key)] for every duplicated key."""
    dups = DuplicateKeys()

    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(pairs)

    data = json.loads(text, object_pairs_hook=hook)
    return data, dups


def read(path):
    """Parse a pinset file for editing; UserError if it is not a JSON object with format 1."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % path)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError("%s: cannot read: %s" % (path, e))
    try:
        data, dups = loads_with_duplicates(text)
    except ValueError as e:
        raise UserError("%s: not valid JSON: %s" % (path, e))
    if not isinstance(data, dict):
        raise UserError("%s: a pinset is a JSON object, not %s" % (path, type(data).__name__))
    if dups:
        raise UserError("%s: duplicate JSON keys %s: fix by hand (see `certpin pinset lint`)" % (path, ", ".join(map(repr, dups))))
    if data.get("format") != FORMAT:
        raise UserError("%s: \"format\" must be %d, found %r" % (path, FORMAT, data.get("format")))
    if not isinstance(data.get("hosts", {}), dict):
        raise UserError("%s: \"hosts\" must be an object" % path)
    return data


def dumps(data):
    """Stable key order (TOP_KEYS, then hosts sorted, update and report as UPDATE_KEYS and REPORT_KEYS), indent=2, trailing newline."""
    out = {}
    for k in TOP_KEYS:
        if k in data:
            out[k] = data[k]
    for k in sorted(data):  # keep (so lint can flag) anything unexpected, after the known keys
        if k not in out:
            out[k] = data[k]
    for name, keys in (("update", UPDATE_KEYS), ("report", REPORT_KEYS)):
        sec = out.get(name)
        if isinstance(sec, dict):
            u = {k: sec[k] for k in keys if k in sec}
            u.update({k: sec[k] for k in sorted(sec) if k not in u})
            out[name] = u
    hosts = {}
    for h in sorted(out.get("hosts", {})):
        entry = out["hosts"][h]
        if isinstance(entry, dict):
            e = {k: entry[k] for k in HOST_KEYS if k in entry}
            e.update({k: entry[k] for k in sorted(entry) if k not in e})
            entry = e
        hosts[h] = entry
    out["hosts"] = hosts
    return json.dumps(out, indent=2, ensure_ascii=True) + "\n"


def write(path, data, overwrite=True):
    """Write atomically. overwrite=False refuses an existing file (checked again at rename)."""
    text = dumps(data)
    write_atomic(path, text.encode("utf-8"), overwrite=overwrite)
    return text
