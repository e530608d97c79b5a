# Device-side scenario driver: runs unchanged under CPython and the MicroPython
# unix port. Usage: client.py CONFIG.json; prints one JSON result line.
#
# CONFIG: {"pinset": path | "pinset_text": str, "host": name (SNI and pinset
# key), "addr": "127.0.0.1", "port": N, "cadata": [DER paths] | null,
# "cadata_bytearray": true (pass them as bytearray, not bytes),
# "mode": "blocking" | "deferred" | "deferred_read" | "asyncio" | "connect" |
# "check" (certpin.check() of the DER file "leaf", no network) |
# "retry" (deferred: write, and after a refusal write and read again on the
# same socket; "again" in the result says what the second attempt did),
# "fake_date": [Y, M, D] (optional: the clock says so), "ntp": [host, port]
# (optional: the clock is set from this NTP server), "floor": "YYYY-MM-DD"
# (optional: pinset_text is written to certpin.json beside CONFIG with this
# time floor in certpin.floor, and read with certpin.load()), "timeout": socket
# timeout in seconds (default 10), "on_failure_raises": true (the callback
# records, then raises RuntimeError, as a buggy application's would)}.
# A failure that is not a certpin.Error reports "oserror": whether it is an
# OSError (network/TLS refusal).
import json
import sys

import certpin

cfg = json.load(open(sys.argv[1]))
failures = []
again = None
raw_closed = None


def on_failure(rec):
    failures.append(rec)
    if cfg.get("on_failure_raises"):
        raise RuntimeError("the application's on_failure raised")

if cfg.get("ntp"):
    # Set the clock from an NTP server, as the board examples do with ntptime
    # (which the unix port lacks): a real SNTP exchange over UDP, then the
    # clock reads what the server said (fake_date below). NTP is not
    # authenticated: an on-path attacker answers whatever it likes.
    import socket

    q = bytearray(48)
    q[0] = 0x1B  # LI 0, version 3, mode 3 (client)
    ai = socket.getaddrinfo(cfg["ntp"][0], cfg["ntp"][1])[0][-1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(q, ai)
    m = u.recv(48)
    u.close()
    secs = int.from_bytes(m[40:44], "big")
    if secs < 0x80000000:
        secs += 0x100000000  # RFC 4330 section 3: MSB clear means era 1 (after 2036-02-07)
    secs -= 2208988800  # NTP -> Unix seconds
    days = secs // 86400 + 719468  # civil date from days since 1970-01-01 (H. Hinnant)
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    dd = doy - (153 * mp + 2) // 5 + 1
    mm = mp + 3 if mp < 10 else mp - 9
    cfg["fake_date"] = [yoe + era * 400 + (mm <= 2), mm, dd]
    cfg["ntp_date"] = cfg["fake_date"]

if cfg.get("fake_date"):
    # The device clock says fake_date from now on: every later `import time`
    # (the library's included) gets this stand-in. Expiry must not depend on it.
    import time as _real

    class _Clock:
        def gmtime(self, *a):
            return tuple(cfg["fake_date"]) + (0, 0, 0, 0, 0)

        def __getattr__(self, name):
            return getattr(_real, name)

    sys.modules["time"] = _Clock()


def read_all(s):
    data = b""
    while True:
        chunk = s.read(512)
        if not chunk:
            return data
        data += chunk


def request(s):
    s.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    return read_all(s)


def run():
    if "pinset_text" in cfg and cfg.get("floor"):
        # A pinset file with a time floor file next to it, read by load().
        d = sys.argv[1].rsplit("/", 1)[0]
        with open(d + "/certpin.json", "w") as f:
            f.write(cfg["pinset_text"])
        with open(d + "/certpin.floor", "w") as f:
            f.write(cfg["floor"] + "\n")
        ps = certpin.load(d + "/certpin.json")
    elif "pinset_text" in cfg:
        ps = certpin.loads(cfg["pinset_text"])
    else:
        ps = certpin.load(cfg["pinset"])
    cadata = None
    if cfg.get("cadata"):
        cadata = [open(p, "rb").read() for p in cfg["cadata"]]
        if cfg.get("cadata_bytearray"):
            cadata = [bytearray(c) for c in cadata]
    mode = cfg.get("mode", "blocking")
    host, port = cfg["host"], cfg["port"]
    if mode == "check":
        return certpin.check(ps, host, [open(cfg["leaf"], "rb").read()], verified=bool(cadata))
    if mode == "connect":
        s = certpin.connect(host, port, pinset=ps, cadata=cadata, timeout=10)
        try:
            return request(s)
        finally:
            s.close()
    if mode == "asyncio":
        import asyncio

        async def go():
            ctx = certpin.SSLContext(ps, cadata, on_failure=on_failure)
            r, w = await asyncio.open_connection(cfg.get("addr", "127.0.0.1"), port, ssl=ctx, server_hostname=host)
            try:
                w.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                await w.drain()
                data = b""
                while True:
                    chunk = await r.read(512)
                    if not chunk:
                        return data
                    data += chunk
            finally:
                w.close()

        return asyncio.run(go())
    import socket

    ctx = certpin.SSLContext(ps, cadata, on_failure=on_failure)
    ai = socket.getaddrinfo(cfg.get("addr", "127.0.0.1"), port, 0, socket.SOCK_STREAM)[0]
    raw = socket.socket(ai[0], socket.SOCK_STREAM)
    raw.connect(ai[-1])
    if hasattr(raw, "settimeout"):
        raw.settimeout(cfg.get("timeout", 10))
    try:
        if mode == "blocking":
            try:
                s = ctx.wrap_socket(raw, server_hostname=host)
            except Exception:
                global raw_closed
                try:  # a refused connection must be closed, the TCP socket too
                    raw.send(b"x")
                    raw_closed = False
                except OSError:
                    raw_closed = True
                raise
            return request(s)
        s = ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        if mode == "deferred_read":
            # Read first: nothing from an unmatched peer may come back.
            return s.read(16) or b""
        if mode == "retry":
            try:
                return request(s)
            except Exception as e:
                first = e
            global again
            try:  # the same socket again: it must stay refused
                s.write(b"GET /again HTTP/1.0\r\n\r\n")
                again = {"ok": True, "reply": repr(s.read(64))}
            except Exception as e:
                again = {"ok": False, "type": type(e).__name__, "message": str(e)[:300]}
            raise first
        return request(s)
    finally:
        raw.close()


try:
    reply = run()
    out = {"ok": True, "reply": reply.decode() if isinstance(reply, bytes) else str(reply)}
except certpin.Error as e:
    out = {"ok": False, "type": type(e).__name__, "message": e.args[0] if e.args else ""}
except Exception as e:
    out = {"ok": False, "type": type(e).__name__, "message": str(e), "oserror": isinstance(e, OSError)}
out["failures"] = failures
out["again"] = again
out["raw_closed"] = raw_closed
out["runtime"] = sys.implementation.name
out["ntp_date"] = cfg.get("ntp_date")
if cfg.get("floor"):
    try:
        with open(sys.argv[1].rsplit("/", 1)[0] + "/certpin.floor") as f:
            out["floor_after"] = f.read().strip()
    except OSError:
        out["floor_after"] = None
print(json.dumps(out))
