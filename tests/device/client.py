# Device-side scenario driver: runs unchanged under CPython and the MicroPython
# unix port. Usage: client.py CONFIG.json; prints one JSON result line.
#
# CONFIG: {"pinset": path | "pinset_text": str, "host": name (SNI and pinset
# key), "addr": "127.0.0.1", "port": N, "cadata": [DER paths] | null,
# "mode": "blocking" | "deferred" | "deferred_write" | "asyncio" | "connect",
# "fake_date": [Y, M, D] (optional: pretend today's date), "timeout": socket
# timeout in seconds (default 10)}. A failure that is not a certpin.Error
# reports "oserror": whether it is an OSError (network/TLS refusal).
import json
import sys

import certpin

cfg = json.load(open(sys.argv[1]))
failures = []

if cfg.get("fake_date"):
    import certpin._tls

    _date = tuple(cfg["fake_date"])
    certpin._tls.today = lambda: _date  # the library's one reading of the clock


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
    if "pinset_text" in cfg:
        ps = certpin.loads(cfg["pinset_text"])
    else:
        ps = certpin.load(cfg["pinset"])
    cadata = None
    if cfg.get("cadata"):
        cadata = [open(p, "rb").read() for p in cfg["cadata"]]
    mode = cfg.get("mode", "blocking")
    host, port = cfg["host"], cfg["port"]
    if mode == "connect":
        s = certpin.connect(host, port, pinset=ps, cadata=cadata, timeout=10)
        try:
            return request(s)
        finally:
            s.close()
    if mode == "asyncio":
        import asyncio

        async def go():
            ctx = certpin.SSLContext(ps, cadata, on_failure=failures.append)
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

    ctx = certpin.SSLContext(ps, cadata, on_failure=failures.append)
    ai = socket.getaddrinfo(cfg.get("addr", "127.0.0.1"), port, 0, socket.SOCK_STREAM)[0]
    raw = socket.socket(ai[0], socket.SOCK_STREAM)
    raw.connect(ai[-1])
    if hasattr(raw, "settimeout"):
        raw.settimeout(cfg.get("timeout", 10))
    try:
        if mode == "blocking":
            s = ctx.wrap_socket(raw, server_hostname=host)
            return request(s)
        s = ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        if mode == "deferred_read":
            # Read first: nothing from an unmatched peer may come back.
            return s.read(16) or b""
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
out["runtime"] = sys.implementation.name
print(json.dumps(out))
