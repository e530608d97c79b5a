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
# "fake_date": [Y, M, D] (optional: pretend today's date), "timeout": socket
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
print(json.dumps(out))
