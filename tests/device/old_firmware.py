# certpin on MicroPython 1.19-1.22: on a real build of ../shared/runtimes
# ("firmware": "real", also the unix port as it is), or simulated on the unix
# port: the stand-in TLS modules of oldfw.py (the old firmware's API around the
# real TLS) are installed before certpin is imported.
#
# argv: CONFIG.json {"firmware": "1.19" | "1.20" | "1.21" | "1.22" | "real", "peercert": "leaf" |
# "none" | "absent", "error_strings": bool, "ssl_alias": bool, "port": N,
# "pinset_text": str, "host": "localhost", "cadata": [DER paths] | null,
# "mode": "blocking" | "deferred" (do_handshake_on_connect=False) |
# "nonblocking" (the same on a non-blocking socket, as asyncio calls it) |
# "connect" | "asyncio" | "trap" (the stand-in's own 1.22 load_verify_locations
# with a positional DER: proves the trap is modelled), "timeout": seconds}.
# Prints one JSON line: ok, reply | type + message (+ oserror, errno), failures,
# old_loaded (whether certpin/_old.py was imported).
import json
import sys

cfg = json.load(open(sys.argv[1]))
if cfg["firmware"] != "real":  # "real": the firmware as it is, no stand-ins
    import oldfw

    oldfw.install(cfg["firmware"], cfg.get("peercert", "leaf"), cfg.get("error_strings", True), cfg.get("ssl_alias", True))

import certpin  # noqa: E402  (after the stand-ins, as on the old firmware)

failures = []


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
    ps = certpin.loads(cfg["pinset_text"])
    cadata = [open(p, "rb").read() for p in cfg["cadata"]] if cfg.get("cadata") else None
    host, port, mode = cfg.get("host", "localhost"), cfg["port"], cfg.get("mode", "blocking")
    timeout = cfg.get("timeout", 10)
    if mode == "trap":
        import ssl

        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata[0])
        return b"loaded"
    if mode == "connect":
        s = certpin.connect(host, port, pinset=ps, cadata=cadata, timeout=timeout)
        try:
            return request(s)
        finally:
            s.close()
    ctx = certpin.SSLContext(ps, cadata, on_failure=failures.append)
    if mode == "asyncio":
        import asyncio

        async def go():
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
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

    raw = socket.socket()
    raw.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    raw.settimeout(timeout)
    try:
        if mode == "blocking":
            return request(ctx.wrap_socket(raw, server_hostname=host))
        if mode == "nonblocking":
            raw.setblocking(False)
        s = ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        s.setblocking(True)
        return request(s)
    finally:
        raw.close()


try:
    out = {"ok": True, "reply": run().decode()}
except certpin.Error as e:
    out = {"ok": False, "type": type(e).__name__, "message": e.args[0] if e.args else ""}
except Exception as e:
    out = {"ok": False, "type": type(e).__name__, "message": str(e), "oserror": isinstance(e, OSError),
           "errno": e.args[0] if isinstance(e, OSError) and e.args else None}
out["failures"] = failures
out["old_loaded"] = "certpin._old" in sys.modules
print(json.dumps(out))
