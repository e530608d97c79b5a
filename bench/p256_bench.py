# Runs on the MicroPython unix port (from .mpy): ES256 verify speed and memory.
# argv: CASE [peak]. CASE holds one line "x,y,digest,sig" (hex) of a valid
# signature. Prints JSON:
#   verify_us       best of 200 single verifies (time.ticks_us), in 5 bursts
#   alloc           heap bytes one verify allocates in total, gc disabled
#                   (churn, not peak: it sets how often the GC runs)
#   import_ram      growth of gc.mem_alloc() from importing certpin._p256 into
#                   a process that already has certpin and certpin._load
#                   (loaded with it in an update: _p256 reads keys with
#                   _load's public_key)
#   retained        growth left after the module is dropped again (as certpin
#                   drops its lazily loaded modules): the first import/drop
#   retained_again  the same for a second import/drop cycle
# or, with "peak", only:
#   peak            the least free heap one verify succeeds in (bench/peak.py)
#
# Peak heap: bench/peak.py's measure, the one every bench uses (the least
# free heap in which one verify() succeeds, certpin imported: see there).
# bench/run.py runs "peak" with -X heapsize=96k so that the many collections
# at tight F are quick, and the rest with the default heap (the churn figure
# needs ~1 MB with the GC off).
import gc
import sys
import time
from binascii import unhexlify

import certpin
import certpin._load  # noqa: F401  (as in an update, where it is loaded before _p256)

f = open(sys.argv[1]).read().strip().split(",")
key = (int(f[0], 16), int(f[1], 16))
digest = unhexlify(f[2])
sig = unhexlify(f[3])
f = None
PEAK = sys.argv[2:] == ["peak"]
r = {}


def drop():
    # As certpin._use does: out of sys.modules and out of the package.
    sys.modules.pop("certpin._p256")
    delattr(certpin, "_p256")
    gc.collect()


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
    from peak import peak  # bench/peak.py (this script's directory is on sys.path)

    print('{"peak": %d}' % peak(lambda: m.verify(key, digest, sig) is True))
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
