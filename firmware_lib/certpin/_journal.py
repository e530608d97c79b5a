# The failure journal (docs/reports.md): what certpin refused, kept on the
# device's filesystem beside the pinset file (/certpin.json ->
# /certpin.journal) until the application hands it over: certpin.reports(),
# certpin.send_reports() (certpin/_send.py).
#
# One record per kind of failure: the same reason, host, port, presented
# certificates (and update rule and URL) make one record with a count and the
# first and last time. The file holds the newest records that fit in MAX
# bytes, one JSON object a line, written whole to a temporary file that is
# then renamed over the journal (LittleFS: atomic; FAT: delete then rename,
# and a journal found missing is read from the temporary file). A line that
# does not parse is dropped, so a corrupt or truncated journal heals at the
# next write; a full or read-only filesystem drops the record and nothing
# else. Nothing here raises: record() swallows everything (MemoryError too).
#
# Wear: the flash is not written on every failure. The RAM state (certpin._jr,
# made at the first failure, never before) counts repeats of a record already
# on flash and writes them at most every COUNT seconds; a record of a new kind
# is written at once while tokens last (BURST, one more every NEW seconds),
# else waits in RAM (at most QUEUE of them; more are not recorded) for the
# next write. Under one refused attempt a second for an hour: 7 writes for
# one kind of failure, 16 when every attempt presents another key
# (`make bench`). A power cut loses at most the repeats of the last COUNT
# seconds and the records still waiting, never a record already written.
#
# Loaded on a failure (certpin/_refuse.py, _installmsg.py, the update entry
# points) or for reports(), and dropped again on a device.
import json
import os
import sys
import time
from binascii import b2a_base64
from hashlib import sha256

from certpin import __version__

if hasattr(time, "ticks_ms"):  # MicroPython (attributes: a stand-in time module works on every version)
    ticks_ms, ticks_diff = time.ticks_ms, time.ticks_diff
else:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


MAX = 4096  # bytes of journal file at most (the newest records that fit)
COUNT = 600  # s: repeats of a record already on flash are written at most this often
NEW = 300  # s: one more new record may be written at once every NEW seconds ...
BURST = 4  # ... and this many in a row
QUEUE = 4  # new records waiting in RAM for a write, at most
KEYS = 8  # kinds of failure whose repeats are counted in RAM, at most
CLOCK = 2026  # a clock before this year is not set (no NTP yet)


def path_of(p):
    # The journal of the pinset file p (or of its floor file ps._fp):
    # /certpin.json -> /certpin.journal, as certpin._load.floor_path does.
    if p[-6:] == ".floor":
        p = p[:-6]
    elif p[-5:] == ".json":
        p = p[:-5]
    return p + ".journal"


# ---- recording (never raises) ----


def conn(st, reason, enforced):
    # A refused (or reported) connection: certpin/_refuse.py notify().
    try:
        ps = st.ps
        if ps._fp:  # a pinset from loads() has no file beside which to keep a journal
            from certpin._report import pins

            pres = []
            for _, d in sorted(st.seen or ()):  # (depth, digest or why it could not be hashed), leaf first
                pres.append(_pin(d) if isinstance(d, bytes) else None)
            add(ps._fp, ps, {"reason": reason, "host": st.host, "port": getattr(st.ctx, "port", None),
                             "enforced": enforced, "presented": pres, "pins": pins(ps, st.host)})
    except Exception:  # recording never breaks a connection's refusal (or its success)
        pass


def install(code, a):
    # certpin.install() refused a connection (certpin/_installmsg.py codes):
    # 6 a host outside the pinset, 7 CA validation failed for it
    # (others="ca"). Not 4 (install() failed, so every connection is
    # refused): there is no pinset whose file a journal could be kept beside
    # (certpin status shows a board's broken pinset).
    try:
        p = sys.modules["certpin._install"]._policy
        if type(p) is not tuple or code not in (6, 7):
            return
        ps = p[0]
        if ps._fp:  # a pinset from loads() has no file, so no journal
            add(ps._fp, ps, {"reason": "not_pinned" if code == 6 else "tls_refused", "host": a[1] if code == 6 else a[0],
                             "port": None, "enforced": True, "presented": [], "pins": []})
    except Exception:
        pass


def update(path, e, url):
    # update()/fetch_update() raised UpdateError e for the pinset file at path.
    # url: fetch_update's url argument (None: the pinset's update.url), or ""
    # for update(bundle), which fetched nothing.
    try:
        ps = None
        try:
            from certpin._load import floor_path, parse, read, read_floor

            d, ps = parse(read(path))
            f = read_floor(floor_path(path))
            if f and (ps.floor is None or f > ps.floor):
                ps.floor = f  # (the clock counts as set only from the floor on)
            if url is None:
                url = (d.get("update") or {}).get("url")
        except Exception:  # an unreadable pinset: the record still says what was refused
            pass
        host = port = None
        pins = []
        if url:
            i = url.find("://") + 3
            j = url.find("/", i)
            hp = url[i:] if j < 0 else url[i:j]
            k = hp.rfind(":")
            host, port = hp, 443 if url[:5] == "https" else 80
            if k > 0 and "]" not in hp[k:]:
                host = hp[:k]
                try:
                    port = int(hp[k + 1 :])
                except ValueError:  # the URL itself was refused (rule "fetch"): its port is not one
                    port = None
            if ps:
                from certpin._report import pins as _pins

                pins = _pins(ps, host)
        add(path, ps, {"reason": "update_refused", "rule": getattr(e, "reason", None), "url": url or None,
                       "host": host, "port": port, "enforced": True, "presented": [], "pins": pins})
    except Exception:
        pass


def _pin(d):
    return "sha256/" + b2a_base64(d)[:44].decode()


def _key(r):
    # What makes two failures the same kind: 8 bytes of a digest (RAM).
    return sha256(("%s|%s|%s|%s|%s|%s" % (r.get("reason"), r.get("host"), r.get("port"), r.get("rule"),
                   r.get("url"), ",".join([p or "-" for p in r.get("presented") or ()]))).encode()).digest()[:8]


def _now(ps):
    # (the device's UTC time as RFC 3339, whether the clock looks set): not
    # before CLOCK, nor before the pinset's time floor.
    t = tuple(time.gmtime()[:6])
    f = ps and ps.floor
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t, t[0] >= CLOCK and not (f and t[:3] < f)


def _state(p):
    # The RAM state of journal p: [path, tick of the last write or None,
    # tokens, tick of the last token, {key: [occurrences not on flash yet,
    # last time, clock set at all of them, the record when it is not on
    # flash at all yet]}, journal writes since boot (`make bench` reads it)].
    c = sys.modules["certpin"]
    s = getattr(c, "_jr", None)
    if s is None or s[0] != p:
        if s is not None:
            _flush(s)  # another pinset file's journal: write what waits for it first
        s = c._jr = [p, None, BURST, ticks_ms(), {}, 0]
    return s


def add(fp, ps, rec):
    # Record one failure in the journal of the pinset file (or floor file) fp.
    p = path_of(fp)
    now, ok = _now(ps)
    s = _state(p)
    t = ticks_ms()
    d = ticks_diff(t, s[3])
    if d < 0 or d >= NEW * 1000:  # d < 0: the tick counter wrapped, a long time passed
        s[2] = min(BURST, s[2] + (BURST if d < 0 else d // (NEW * 1000)))
        s[3] = t
    e = s[4]
    k = _key(rec)
    x = e.get(k)
    if x is None:
        if len([1 for v in e.values() if v[3] is not None]) >= QUEUE:
            return  # a flood of new kinds: at most QUEUE wait for the next write
        if len(e) >= KEYS:
            for j in e:
                if e[j][0] == 0:  # on flash, nothing pending: forget it (a repeat then counts as new)
                    del e[j]
                    break
            else:
                return
        rec["serial"] = ps.serial if ps else None
        rec["version"] = __version__
        rec["first"] = now
        x = e[k] = [0, now, ok, rec]
    x[0] += 1
    x[1] = now
    x[2] = x[2] and ok
    w = s[1]
    if w is None or x[3] is not None and s[2] > 0:  # the first since boot, or a new kind while tokens last
        s[2] -= 1
        _flush(s)
    elif ticks_diff(t, w) >= COUNT * 1000 or ticks_diff(t, w) < 0:
        _flush(s)


# ---- the file ----


def read(p):
    # The records in journal p, oldest first ([] when there is none, or
    # nothing in it parses).
    out = []
    for q in (p, p + ".tmp"):
        try:
            with open(q, "rb") as f:
                b = f.read(MAX + 512)  # written at most MAX: anything beyond is not ours
        except OSError:  # no journal (or unreadable): the temporary file when a FAT rename lost power
            continue
        for line in b.split(b"\n"):
            try:
                r = json.loads(line)
                if _good(r):
                    out.append(r)
            except Exception:  # not UTF-8 / not JSON / too deep: a broken line is dropped
                pass
        break
    return out


def _good(r):
    # The shape a record must have for the journal to keep it (MicroPython's
    # json is lax: a damaged line can parse into something else).
    if type(r) is not dict or type(r.get("count")) is not int or r["count"] < 1:
        return False
    for f in ("reason", "first", "last", "version"):
        if type(r.get(f)) is not str:
            return False
    for f in ("host", "rule", "url"):
        if r.get(f) is not None and type(r[f]) is not str:
            return False
    if r.get("port") is not None and type(r["port"]) is not int:
        return False
    for f in ("presented", "pins"):
        v = r.get(f)
        if type(v) is not list or [1 for x in v if x is not None and type(x) is not str]:
            return False
    return True


def _fold(recs, s):
    # recs with what waits in RAM state s folded in (s is left unchanged).
    e = s[4]
    keys = [_key(r) for r in recs]
    for k in e:
        n, last, ok, rec = e[k]
        if not n:
            continue
        for i in range(len(recs)):
            r = recs[i]
            if keys[i] == k:
                r["count"] += n
                r["last"] = last
                r["clock"] = r.get("clock") is True and ok
                recs.append(recs.pop(i))  # the newest at the end
                keys.append(keys.pop(i))
                break
        else:
            if rec is not None:  # repeats of a record no longer in the file are not kept
                r = dict(rec)
                r["count"] = n
                r["last"] = last
                r["clock"] = ok
                recs.append(r)
                keys.append(k)
    return recs


def write(p, recs):
    # Replace journal p by the newest records that fit in MAX bytes. False
    # when the filesystem refused (full, read-only): the old journal stays.
    lines = []
    n = 0
    for r in reversed(recs):
        t = json.dumps(r)
        n += len(t) + 1
        if n > MAX:
            break
        lines.append(t)
    q = p + ".tmp"
    try:
        if not lines:
            try:
                os.remove(p)
            except OSError:
                pass
        else:
            with open(q, "w") as f:
                for t in reversed(lines):
                    f.write(t)
                    f.write("\n")
            os.rename(q, p)
        return True
    except Exception:  # OSError: full or read-only; MemoryError
        try:
            os.remove(q)
        except Exception:
            pass
        return False


def _flush(s):
    # Write what waits in RAM. Written or not (a full or read-only
    # filesystem), it is dropped from RAM: the record is lost, nothing else;
    # a kind that never reached the file is forgotten, so that its next
    # failure makes a new record.
    s[1] = ticks_ms()  # the time of this write, also when the filesystem refused it
    e = s[4]
    if [1 for v in e.values() if v[0]]:
        s[5] += 1
        ok = write(s[0], _fold(read(s[0]), s))
        for k in list(e):
            v = e[k]
            if not ok and v[3] is not None:
                del e[k]
            else:
                v[0] = 0
                v[3] = None


# ---- reports() ----


def device(path):
    # The device id a report carries: certpin.device_id (set by the
    # application), else the pinset's report.device, else the board's
    # machine.unique_id() in hex, else None.
    v = getattr(sys.modules["certpin"], "device_id", None)
    if v is None:
        try:
            from certpin._load import parse, read

            v = (parse(read(path))[0].get("report") or {}).get("device")
        except Exception:
            pass
    if v is None:
        try:
            from binascii import hexlify
            from machine import unique_id

            v = hexlify(unique_id()).decode()
        except Exception:
            pass
    return v


def pending(path):
    # (journal path, every record: the file's and what waits in RAM, oldest first)
    p = path_of(path)
    recs = read(p)
    s = getattr(sys.modules["certpin"], "_jr", None)
    if s is not None and s[0] == p:
        _fold(recs, s)
    return p, recs


def forget(p):
    # Everything in journal p is handed over: the RAM state and the file go.
    c = sys.modules["certpin"]
    s = getattr(c, "_jr", None)
    if s is not None and s[0] == p:
        s[4] = {}
    write(p, [])


def reports(clear=False, path="/certpin.json"):
    """The journal's records (docs/reports.md), oldest first, each with "device".

    clear=True hands them over: the journal is emptied.
    """
    p, recs = pending(path)
    dev = device(path)
    for r in recs:
        r["device"] = dev
    if clear:
        forget(p)
    return recs


def send_reports(url=None, timeout=10, path="/certpin.json"):
    """POST the records to url (None: the pinset's report.url, per host where
    its entry names one); drop those a 2xx acknowledged; -> how many."""
    from certpin._send import send

    return send(url, timeout, path)
