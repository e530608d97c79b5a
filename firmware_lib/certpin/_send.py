# certpin.send_reports() (certpin/_journal.py): POST the journal's records as
# a JSON array, HTTP/1.0 over http or https, to the url given, else to the
# pinset's report.url (a host entry's own report.url for that host's
# records). Only a 2xx status line drops the records that request carried;
# a refused connection, a timeout, another status or garbage keeps them all.
#
# Bounded like fetch_update(): the whole call ends by `timeout` seconds
# however slowly a server reads or answers (name resolution aside:
# getaddrinfo has no timeout on MicroPython), and at most 1 KiB of an answer
# is read. https: a collector that is in the pinset gets its pins (certpin's
# own SSLContext, the TLS module certpin captured at import); any other is
# TLS without pins or CA validation, so an on-path attacker could answer 2xx
# and erase the reports: `certpin pinset lint` warns (docs/reports.md).
# Loaded for one call and dropped afterwards.
import json
import socket
import sys

from certpin import Error, PinsetError, __version__
from certpin._http import connect, parts, ticks_add, ticks_ms  # fetch_update()'s transport: one way to connect
from certpin._journal import _key, device, pending, write


def _post(url, body, ps, end):
    # The HTTP status code of POSTing body to url, or OSError/Error.
    u = parts(url)
    if type(u) is int:
        raise Error("%r is not an http:// or https:// URL of printable ASCII (at most 512 characters)" % (url,))
    tls, host, port, path = u
    pinned = ps if tls and ps._find(host) >= 0 else None  # a PinError for a name that is no host name
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    # TLS as fetch_update's: certpin's pinned SSLContext for a collector in the pinset, else TLS
    # that checks nothing; firmware < 1.23 through certpin/_old.py
    s, c = connect(ai, host, port, tls, pinned, None, end)
    try:
        req = ("POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
               "User-Agent: certpin/%s\r\nConnection: close\r\n\r\n" % (path, host, len(body), __version__)).encode() + body
        while req:
            req = req[c.write(req) :]
        buf = bytearray(1024)
        n = 0
        while n < len(buf):
            k = c.readinto(memoryview(buf)[n:])
            if not k:
                break
            n += k
            if bytes(buf[:n]).find(b"\r\n") >= 0:
                break
        line = bytes(buf[:n]).split(b"\r\n", 1)[0].split(b" ")
        if len(line) < 2 or line[0][:5] != b"HTTP/" or len(line[1]) != 3 or line[1].strip(b"0123456789"):
            raise Error("not an HTTP answer: %r" % bytes(buf[: min(n, 60)]))
        return int(line[1])
    finally:
        s.close()


def _entry(ps, d, host):
    # The pinset entry (dict) covering host, or None.
    try:
        r = ps._find(host)
    except Exception:
        return None
    if r < 0:
        return None
    b = ps._b
    for i in range(len(ps._n)):
        if b[2 * i] << 8 | b[2 * i + 1] == r:
            return d["hosts"][ps._n[i]]
    return None


def send(url, timeout, path):
    from certpin._load import floor_path, parse, read, read_floor

    try:
        d, ps = parse(read(path))
    except (OSError, ValueError) as e:
        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    ps._fp = floor_path(path)  # a pinned collector's refusal is journaled like any other
    f = read_floor(ps._fp)
    if f and (ps.floor is None or f > ps.floor):
        ps.floor = f
    top = (d.get("report") or {}).get("url")
    p, recs = pending(path)
    groups = {}
    for r in recs:
        u = url
        if u is None and r.get("host") is not None:
            e = _entry(ps, d, r["host"])
            u = ((e or {}).get("report") or {}).get("url")
        u = u or top
        if u is not None:
            if u not in groups:
                groups[u] = []
            groups[u].append(r)
    if url is None and top is None and not [1 for h in d["hosts"].values() if "report" in h]:
        raise Error("no url given, and the pinset at %s has no report.url" % path)
    dev = device(path)
    try:
        end = ticks_add(ticks_ms(), int(timeout * 1000))
    except (TypeError, ValueError):
        raise Error("timeout: expected a number of seconds, not %r" % (timeout,))
    sent = {}
    failed = []
    for u in groups:
        rs = groups[u]
        for r in rs:
            r["device"] = dev
        try:
            st = _post(u, json.dumps(rs).encode(), ps, end)
            if not 200 <= st < 300:
                raise Error("HTTP %d" % st)
        except Exception as e:  # OSError (refused, reset, timeout), a TLS or pin failure, MemoryError
            t = isinstance(e, OSError) and (e.args[:1] in ((11,), (110,)) or "timed out" in str(e))
            failed.append("%s: %s" % (u, "no answer within %s s" % timeout if t else
                                      e.args[0] if isinstance(e, Error) and e.args else repr(e)[:200]))
            continue
        for r in rs:
            sent[_key(r)] = (r["count"], r["last"])
    if sent:
        # Drop what was acknowledged from the journal as it is NOW: a failure
        # recorded meanwhile (this call's own connections) stays, and so does a
        # record that grew meanwhile (sent again later, whole: collectors keep
        # the largest count of a device's record).
        p, now = pending(path)
        keep = [r for r in now if sent.get(_key(r)) != (r["count"], r["last"])]
        s = getattr(sys.modules["certpin"], "_jr", None)
        if s is not None and s[0] == p:
            s[4] = {}  # folded into what is written now
        write(p, keep)
    if failed:
        raise Error("reports not delivered, the journal keeps them (%d delivered elsewhere): %s"
                    % (len(sent), "; ".join(failed)))
    return len(sent)
