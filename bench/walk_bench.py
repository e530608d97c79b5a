# Runs on the MicroPython unix port (from .mpy): a catch-up walk over HTTP.
# Its peak heap is bench/run.py's peak_figures() (bench/peak.py's measure).
# argv: CONFIG.json {"url": the site's newest release, "held": a pinset file
# a device holds (three rotations behind), "path": where the device's pinset
# lives}. Prints one JSON line: walks, walk_us (best), walk_retained_first /
# walk_retained_again (heap still in use after a walk, gc.collect()ed: qstrs
# interned once, then nothing), walk_modules (certpin modules resident
# afterwards), walk_live (the live heap at the first and the last request of
# a walk: what it keeps between steps), walk_verified (P-256 verifications).
import gc
import json
import sys
import time

import certpin

cfg = json.load(open(sys.argv[1]))
held = open(cfg["held"], "rb").read()
path = cfg["path"]
WALKS = 4


def scrub(n):
    a = [0] * 32
    return scrub(n - 1) if n else len(a)


def one():
    with open(path, "wb") as f:
        f.write(held)
    t = time.ticks_us()
    ps, changed = certpin.fetch_update(cfg["url"], path, 30)
    return time.ticks_diff(time.ticks_us(), t), ps.serial


out = {}
times = []
retained = []
for i in range(WALKS):
    scrub(30)
    gc.collect()
    m = gc.mem_alloc()
    us, serial = one()
    times.append(us)
    scrub(30)
    gc.collect()
    retained.append(gc.mem_alloc() - m)
out["walk_us"] = min(times)
out["walk_retained_first"] = retained[0]
out["walk_retained_again"] = max(retained[1:])
out["walk_modules"] = sorted(k for k in sys.modules if k.startswith("certpin."))
out["serial"] = serial

# The live heap at each request of one walk (certpin._fetch._req wrapped:
# the driver is imported first, so fetch_update finds it patched).
import certpin._fetch  # noqa: E402

F = sys.modules["certpin._fetch"]
_req = F._req
live = []


def traced(*a):
    gc.collect()
    live.append(gc.mem_alloc())
    return _req(*a)


F._req = traced
one()
out["walk_live"] = "%d -> %d" % (live[0], live[-1])
F = _req = traced = live = None

# P-256 verifications of one walk (certpin._p256 patched while imported)
import certpin._p256 as m  # noqa: E402

real = m.verify
n = [0]


def v(*a):
    n[0] += 1
    return real(*a)


m.verify = v
one()
out["walk_verified"] = n[0]
out["walks"] = WALKS + 2
print(json.dumps(out))
