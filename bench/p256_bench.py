# Runs on the MicroPython unix port (from .mpy): ES256 verify speed and memory.
# argv: CASE [peak]. CASE holds one line "x,y,digest,sig" (hex) of a valid
# signature. Prints JSON:
#   verify_us       best of 200 single verifies (time.ticks_us), in 5 bursts
#   alloc           heap bytes one verify allocates in total, gc disabled
#                   (churn, not peak: it sets how often the GC runs)
#   import_ram      growth of gc.mem_alloc() from importing certpin._p256 into
#                   a process that already has certpin
#   retained        growth left after the module is dropped again (as certpin
#                   drops its lazily loaded modules): the first import/drop
#   retained_again  the same for a second import/drop cycle
# or, with "peak", only:
#   peak            heap a verify needs at its peak, beyond what is in use
#                   before it
#
# Peak heap: gc.mem_alloc() only sees the moments one samples, and a verify
# allocates ~1 MB of short-lived big integers. So instead: fill the heap with
# ballast until only F bytes are free, run verify(), release the ballast.
# The smallest F at which verify() succeeds (no MemoryError) for F and every
# F' up to F + 1 KB is the peak: the most heap that is ever live at once
# during a verify, plus the fragmentation the GC has to cope with (the ballast
# leaves the F free bytes in whatever holes the heap had), so an upper bound.
# bench/run.py runs "peak" with -X heapsize=96k so that the many collections
# at tight F are quick, and the rest with the default heap (the churn figure
# needs ~1 MB with the GC off).
import gc
import sys
import time
from binascii import unhexlify

import certpin

f = open(sys.argv[1]).read().strip().split(",")
key = (int(f[0], 16), int(f[1], 16))
digest = unhexlify(f[2])
sig = unhexlify(f[3])
f = None
PEAK = sys.argv[2:] == ["peak"]
ballast = [None] * 64
r = {}


def drop():
    # As certpin._use does: out of sys.modules and out of the package.
    sys.modules.pop("certpin._p256")
    delattr(certpin, "_p256")
    gc.collect()


def scrub(n):
    # Overwrite stale C-stack words (recursion, no heap): the GC scans the
    # stack conservatively, and a stale pointer keeps garbage alive.
    return scrub(n - 1) + 1 if n else 0


def fits(m, free):
    # verify() with only `free` bytes of heap left free; True, or None on MemoryError.
    scrub(40)
    gc.collect()
    k = 0
    n = gc.mem_free() - free
    while n > 48 and k < 64:
        try:
            ballast[k] = bytearray(n - 48)
            k += 1
        except MemoryError:
            n //= 2  # no hole that large: fill smaller ones
            continue
        n = gc.mem_free() - free
    try:
        ok = m.verify(key, digest, sig)
    except MemoryError:
        ok = None
    for k in range(64):
        ballast[k] = None
    if ok is False:
        raise SystemExit("verify gave a wrong answer under memory pressure")
    return ok


def peak(m):
    lo, hi = 0, 32768
    if not fits(m, hi):
        raise SystemExit("verify needs more than 32 KB of free heap")
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if fits(m, mid):
            hi = mid
        else:
            lo = mid
    while not all(fits(m, hi + d) for d in range(0, 1024, 16)):
        hi += 16
    return hi


def speed(m):
    # Best single verify of 200, in 5 bursts 0.2 s apart: on a shared machine
    # a burst can be slowed throughout by a neighbour; the best run is the one
    # least disturbed.
    best = None
    for _ in range(5):
        time.sleep_ms(200)
        for _ in range(40):
            t = time.ticks_us()
            m.verify(key, digest, sig)
            us = time.ticks_diff(time.ticks_us(), t)
            best = us if best is None or us < best else best
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    m.verify(key, digest, sig)
    a = gc.mem_alloc() - a0
    gc.enable()
    return best, a


gc.collect()
m0 = gc.mem_alloc()
import certpin._p256  # noqa: E402

m = sys.modules["certpin._p256"]
gc.collect()
r["import_ram"] = gc.mem_alloc() - m0
if not m.verify(key, digest, sig) or m.verify(key, digest, sig[:32] + bytes(32)):
    raise SystemExit("verify gave a wrong answer")
if PEAK:
    print('{"peak": %d}' % peak(m))
    sys.exit(0)
r["verify_us"], r["alloc"] = speed(m)
m = None
drop()
r["retained"] = gc.mem_alloc() - m0
m0 = gc.mem_alloc()
import certpin._p256  # noqa: E402, F811

drop()
r["retained_again"] = gc.mem_alloc() - m0
print("{" + ", ".join('"%s": %d' % kv for kv in r.items()) + "}")
