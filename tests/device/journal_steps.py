# The failure journal (certpin/_journal.py) and reports, under CPython and the
# MicroPython unix port. argv: STEPS.json DIR. DIR holds the pinset
# (DIR/certpin.json, read with certpin.load) unless a step mounts a LittleFS
# image and moves there. STEPS: a list of
#   {"op": "write", "name": N, "text": str} / {"op": "remove", "name": N} /
#   {"op": "mkdir", "name": N} / {"op": "read", "name": N} (text or null) /
#   {"op": "list"}                            files in the pinset's directory
#   {"op": "clock", "ticks": ms, "date": [Y, M, D, h, m, s]}
#                                             the device clock from now on: a stand-in
#                                             time module (ticks_ms and gmtime); "advance": ms
#                                             moves it on (ticks, and the date by as many seconds)
#   {"op": "conn", "host": h, "port": p, "cadata": [DER paths], "deferred": bool}
#                                             a pinned connection (certpin.SSLContext) to 127.0.0.1:p
#   {"op": "connect", "host": h, "port": p}   certpin.connect(h, p) (a port the journal knows)
#   {"op": "fail", "host": h, "leaf": DER path, "n": N, "step": ms, "rotate": bool}
#                                             N refusals without a network: the pin check of a
#                                             connection shown this leaf (certpin.Conn, as the
#                                             verify callback does), the clock moved on by step ms
#                                             after each; rotate: a different leaf key each time
#                                             (the last byte of the key changed)
#   {"op": "install_unpinned", "host": h, "port": p, "others": o, "cadata": [DER paths]}
#                                             MicroPython: certpin.install(), then a TLS client for h
#                                             (connected to 127.0.0.1:p when given)
#   {"op": "update", "hex": bundle bytes}     certpin.update(bundle, path)
#   {"op": "fetch", "url": u, "timeout": s}   certpin.fetch_update(u, path, s)
#   {"op": "reports", "clear": bool}          certpin.reports(clear, path)
#   {"op": "send", "url": u, "timeout": s}    certpin.send_reports(u, s, path)
#   {"op": "device_id", "value": v}           certpin.device_id = v
#   {"op": "lfs", "size": bytes, "readonly": bool, "copy": [names]}
#                                             MicroPython: a LittleFS2 RAM "flash" mounted at
#                                             /flash (the names copied there from DIR first),
#                                             the pinset's directory from now on; readonly
#                                             remounts it read-only. CPython: {"skipped": why}
#   {"op": "writes"}                          LittleFS block writes so far (null on CPython)
#   {"op": "fill"}                            fill the LittleFS until it is full (ENOSPC)
#   {"op": "mem"}                             heap in use after gc.collect() (MicroPython)
#   {"op": "state"}                           certpin modules loaded, the journal's RAM state
# Prints one JSON line: a result per step. "ok": false results carry "type",
# "message" and, for updates, "reason"; "ms" is how long a step took.
import gc
import json
import os
import sys
import time

import certpin

steps = json.load(open(sys.argv[1]))
d = sys.argv[2]
MP = sys.implementation.name == "micropython"
_real = time
clock = None
bdev = None


class Clock:
    # The device clock as a step set it: ticks_ms and the UTC date move
    # together (advance()); everything else is the real time module's.
    def __init__(self, ticks, date):
        self.t = ticks
        self.base = date

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):  # own, not through __getattr__: v1.20's `from time import` does not ask it
        return a + b

    def gmtime(self, *a):
        y, mo, dd, h, mi, s = self.base
        s += self.t // 1000
        mi += s // 60
        s %= 60
        h += mi // 60
        mi %= 60
        dd += h // 24  # the tests stay within a month
        h %= 24
        return (y, mo, dd, h, mi, s, 0, 0)

    def __getattr__(self, name):
        return getattr(_real, name)


class RAMFlash:
    # A flash chip in RAM for vfs.VfsLfs2 (4 KiB erase blocks); counts writes.
    def __init__(self, n):
        self.b = bytearray(n * 4096)
        self.n = n
        self.writes = 0
        self.erases = 0

    def readblocks(self, n, buf, off=0):
        o = n * 4096 + off
        buf[:] = self.b[o : o + len(buf)]

    def writeblocks(self, n, buf, off=0):
        self.writes += 1
        o = n * 4096 + off
        self.b[o : o + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return 4096
        if op == 6:  # erase a block: what wears flash out
            self.erases += 1
        return 0


def path():
    return d + "/certpin.json"


def err(e):
    return {"ok": False, "type": type(e).__name__, "reason": getattr(e, "reason", None),
            "message": e.args[0] if e.args and isinstance(e.args[0], str) else repr(e)}


def leaf_variant(der, i):
    # The leaf with the last two bytes of its P-256 public key changed: another
    # key (not on the curve: certpin only hashes it), still strict DER.
    b = bytearray(der)
    j = bytes(b).find(b"\x03\x42\x00\x04")  # the BIT STRING of an uncompressed P-256 point
    b[j + 67] ^= (i + 1) >> 8
    b[j + 68] ^= (i + 1) & 0xFF
    return bytes(b)


def run(s):
    global clock, d, bdev
    op = s["op"]
    if op == "write":
        with open(d + "/" + s["name"], "w") as f:
            f.write(s["text"])
        return None
    if op == "remove":
        try:
            os.remove(d + "/" + s["name"])
        except OSError:
            pass
        return None
    if op == "mkdir":
        os.mkdir(d + "/" + s["name"])
        return None
    if op == "read":
        try:
            with open(d + "/" + s["name"]) as f:
                return f.read()
        except OSError:
            return None
    if op == "list":
        return sorted(os.listdir(d))
    if op == "clock":
        if "advance" in s:
            clock.t += s["advance"]
        else:
            clock = Clock(s.get("ticks", 0), s["date"])
            sys.modules["time"] = clock
        return None
    if op == "device_id":
        certpin.device_id = s["value"]
        return None
    if op == "lfs":
        if not MP:
            return {"skipped": "CPython has no LittleFS"}
        import vfs

        bdev = RAMFlash(s["size"] // 4096)
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(vfs.VfsLfs2(bdev), "/flash")
        for n in s.get("copy", ()):
            with open(d + "/" + n, "rb") as f:
                data = f.read()
            with open("/flash/" + n, "wb") as f:
                f.write(data)
        if s.get("readonly"):
            vfs.umount("/flash")
            vfs.mount(vfs.VfsLfs2(bdev), "/flash", readonly=True)
        d = "/flash"
        bdev.writes = 0
        return None
    if op == "writes":
        return bdev.writes if bdev else None
    if op == "fill":
        # one big file until the data blocks run out, then small ones (LittleFS
        # keeps a small file inline in its directory) until nothing fits
        n = 0
        try:
            with open(d + "/filler", "wb") as f:
                while True:
                    f.write(bytearray(4096))
                    n += 1
        except OSError:
            pass
        for size in (256, 64, 16, 1):
            try:
                while True:
                    with open(d + "/f%d" % n, "wb") as f:
                        f.write(bytearray(size))
                    n += 1
            except OSError as e:
                code = e.args[0]
        return {"filled": n, "errno": code}
    if op == "state":
        # what certpin holds now: its modules, and the journal's RAM state
        jr = getattr(certpin, "_jr", None)
        return {"modules": sorted(m for m in sys.modules if m.startswith("certpin")),
                "jr": None if jr is None else {"writes": jr[5], "tokens": jr[2], "kinds": len(jr[4])}}
    if op == "mem":
        gc.collect()
        return gc.mem_alloc() if MP else None
    t = _real.ticks_ms() if MP else int(_real.monotonic() * 1000)
    try:
        r = step(s)
    except certpin.Error as e:
        r = err(e)
    except Exception as e:  # never expected from certpin: the test fails on it
        r = err(e)
        r["type"] = "unexpected " + r["type"]
    t2 = _real.ticks_ms() if MP else int(_real.monotonic() * 1000)
    if isinstance(r, dict):
        r["ms"] = t2 - t
    return r


def step(s):
    op = s["op"]
    if op == "conn":
        import socket

        ps = certpin.load(path())
        ca = [open(p, "rb").read() for p in s.get("cadata") or ()] or None
        ctx = certpin.SSLContext(ps, ca)
        raw = socket.socket()
        raw.connect(socket.getaddrinfo("127.0.0.1", s["port"])[0][-1])
        try:
            c = ctx.wrap_socket(raw, server_hostname=s.get("host", "localhost"),
                                do_handshake_on_connect=not s.get("deferred"))
            c.write(b"GET / HTTP/1.0\r\n\r\n")
            c.read(1)
            c.close()
            return {"ok": True}
        finally:
            raw.close()
    if op == "connect":
        certpin.connect(s.get("host", "localhost"), s["port"], pinset=certpin.load(path()), timeout=10).close()
        return {"ok": True}
    if op == "fail":
        ps = certpin.load(path())
        ctx = certpin.SSLContext(ps)
        der = open(s["leaf"], "rb").read()
        refused = 0
        for i in range(s.get("n", 1)):
            st = certpin.Conn(ctx, s.get("host", "localhost"))
            st.see(leaf_variant(der, i) if s.get("rotate") else der, 0)
            try:
                st.finish()
            except certpin.PinError:
                refused += 1
            if clock and s.get("step"):
                clock.t += s["step"]
        return {"ok": True, "refused": refused}
    if op == "install_unpinned":  # MicroPython: install(), then a TLS client for a host outside the pinset
        import socket

        ca = [open(p, "rb").read() for p in s.get("cadata") or ()] or None
        certpin.install(certpin.load(path()), ca, s.get("others", "refuse"))
        import tls  # after install(): its stand-in

        raw = socket.socket()
        try:
            if s.get("port"):
                raw.connect(socket.getaddrinfo("127.0.0.1", s["port"])[0][-1])
            tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(raw, server_hostname=s["host"]).close()
        finally:
            raw.close()
            certpin.uninstall()
        return {"ok": True}
    if op == "update":
        from binascii import unhexlify

        certpin.update(unhexlify(s["hex"]), path())
        return {"ok": True}
    if op == "fetch":
        certpin.fetch_update(s.get("url"), path(), s.get("timeout", 10))
        return {"ok": True}
    if op == "reports":
        return {"ok": True, "reports": certpin.reports(s.get("clear", False), path())}
    if op == "send":
        return {"ok": True, "sent": certpin.send_reports(s.get("url"), s.get("timeout", 10), path())}
    raise ValueError("unknown op %r" % op)


print(json.dumps([run(s) for s in steps]))
