# Runs on the MicroPython unix port (library from .mpy): what the failure
# journal (certpin/_journal.py) costs. argv: CONFIG.json {"pinset_text": a
# 1-host pinset for localhost, "leaf": DER path of a leaf it does not pin}.
# The pinset lives on a LittleFS2 "flash" in RAM (4 KiB blocks, as on an
# ESP32) that counts block writes; the clock is a stand-in (ticks_ms and
# gmtime) moved on by the bench, so an hour of attempts takes seconds.
# A refusal is the pin check of a connection shown the leaf (certpin.Conn, as
# mbedTLS's verify callback shows it), then finish(): PinError, as a refused
# handshake ends. Prints one JSON line:
#   alloc_nojournal   heap one refusal allocates, pinset from loads() (no journal), gc off
#   alloc_first       ... pinset from load(): the first failure (journal written, RAM state made)
#   alloc_repeat      ... a repeat of it (counted in RAM)
#   us_nojournal, us_first, us_repeat   the same refusals' time (best of several; first: once)
#   retained_first    heap retained after the first failure (RAM state, names interned)
#   retained_repeat   ... after 100 more (the same kind)
#   hour_same         {"attempts", "journal_writes", "programs" (writeblocks calls),
#                     "erases" (4 KiB blocks erased: the wear)}: one refusal a second
#                     for an hour, the same key every time
#   hour_rotate       the same, another key every attempt
#   journal_bytes     the journal file's size after hour_rotate
import gc
import json
import os
import sys
import time

import vfs

cfg = json.load(open(sys.argv[1]))
LEAF = open(cfg["leaf"], "rb").read()
real = time
us = real.ticks_us
out = {}


class Clock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def gmtime(self, *a):
        s = self.t // 1000
        return (2026, 6, 1 + s // 86400, s // 3600 % 24, s // 60 % 60, s % 60, 0, 0)

    def __getattr__(self, name):
        return getattr(real, name)


class RAMFlash:
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


def variant(i):
    # the leaf with its P-256 point's last two bytes changed: another key
    b = bytearray(LEAF)
    j = bytes(b).find(b"\x03\x42\x00\x04")
    b[j + 67] ^= (i + 1) >> 8
    b[j + 68] ^= (i + 1) & 0xFF
    return bytes(b)


def scrub(n):
    a = [0] * 32
    return scrub(n - 1) if n else len(a)


def in_use():
    scrub(30)
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


clock = Clock()
sys.modules["time"] = clock  # the library's `import time` from now on (the journal imports it per failure)
flash = RAMFlash(64)  # 256 KiB
vfs.VfsLfs2.mkfs(flash)
vfs.mount(vfs.VfsLfs2(flash), "/flash")
with open("/flash/certpin.json", "w") as f:
    f.write(cfg["pinset_text"])
VARIANTS = [variant(i) for i in range(8)]
refused = [0]

import certpin  # noqa: E402

ps_file = certpin.load("/flash/certpin.json")
ps_text = certpin.loads(cfg["pinset_text"])
ctx_file = certpin.SSLContext(ps_file)
ctx_text = certpin.SSLContext(ps_text)


def refuse(ctx, der=LEAF):
    st = certpin.Conn(ctx, "localhost")
    st.see(der, 0)
    try:
        st.finish()
    except certpin.PinError:
        refused[0] += 1


def alloc_of(f, *a):
    scrub(30)
    gc.collect()
    gc.disable()
    m = gc.mem_alloc()
    t = us()
    f(*a)
    t = real.ticks_diff(us(), t)
    r = gc.mem_alloc() - m
    gc.enable()
    return r, t


def best(f, *a):
    b = None
    for _ in range(7):
        t = us()
        f(*a)
        t = real.ticks_diff(us(), t)
        b = t if b is None or t < b else b
    return b


# A refusal without a journal: twice first, so that the failure modules'
# names are interned before the baseline (they are not the journal's cost).
refuse(ctx_text)
refuse(ctx_text)
out["alloc_nojournal"], _ = alloc_of(refuse, ctx_text)
out["us_nojournal"] = best(refuse, ctx_text)
base = in_use()
out["alloc_first"], out["us_first"] = alloc_of(refuse, ctx_file)
out["retained_first"] = in_use() - base
clock.t += 1000
out["alloc_repeat"], _ = alloc_of(refuse, ctx_file)
out["us_repeat"] = best(refuse, ctx_file)
for _ in range(100):
    clock.t += 1000
    refuse(ctx_file)
out["retained_repeat"] = in_use() - base


def hour(rotate):
    certpin.reports(True, "/flash/certpin.json")  # an empty journal, a fresh RAM state
    certpin._jr = None
    clock.t = 10 ** 8
    w0, e0 = flash.writes, flash.erases
    for i in range(3600):
        refuse(ctx_file, variant(i) if rotate else LEAF)
        clock.t += 1000
    return {"attempts": 3600, "journal_writes": certpin._jr[5], "programs": flash.writes - w0,
            "erases": flash.erases - e0}


refused[0] = 0
out["hour_same"] = hour(False)
out["hour_rotate"] = hour(True)
out["refused"] = refused[0]
out["journal_bytes"] = os.stat("/flash/certpin.journal")[6]
print(json.dumps(out))
