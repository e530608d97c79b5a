# Runs on the MicroPython unix port (from .mpy): certpin's per-call figures.
# argv: DIR holding rsa2048.der, p256.der, pinset50.json, and for updates
# update/certpin.json (serial 1) with update/b2.jws ... b7.jws. Prints JSON:
# the heap and time of spki_sha256 and check, RAM per pin, signed updates,
# certpin.install(). (What an application pays: bench/app_bench.py.)
import gc
import hashlib
import json
import micropython
import sys
import time


def mark(name):
    # A qstr_info line after "MARK name": bench/run.py reads how much of a
    # figure is the qstr pool growing (pools double when full, so one more
    # interned name can cost 2 KB at once, whoever interns it).
    print("MARK", name)
    micropython.qstr_info()


d = sys.argv[1]
gc.collect()
m0 = gc.mem_alloc()
import certpin  # noqa: E402

gc.collect()
import_ram = gc.mem_alloc() - m0



def alloc(f, *a):
    f(*a)  # warm up (first calls may intern or cache)
    gc.collect()
    gc.disable()
    m = gc.mem_alloc()
    f(*a)
    r = gc.mem_alloc() - m
    gc.enable()
    return r


def best_us(f, a, n=500, runs=40):
    # Best of many short runs: robust against other load on the machine.
    best = None
    for _ in range(runs):
        t = time.ticks_us()
        for _ in range(n):
            f(a)
        us = time.ticks_diff(time.ticks_us(), t) / n
        best = us if best is None or us < best else best
    return best


def full_hash(der):
    return hashlib.sha256(der).digest()


out = {"import_ram": import_ram}
for name in ("rsa2048", "p256"):
    der = open(d + "/" + name + ".der", "rb").read()
    mv = memoryview(der)
    out[name] = {
        "cert_bytes": len(der),
        "spki_alloc_memoryview": alloc(certpin.spki_sha256, mv),
        "spki_alloc_bytes": alloc(certpin.spki_sha256, der),
        "spki_us": best_us(certpin.spki_sha256, mv),
        "full_hash_us": best_us(full_hash, mv),
    }
    out[name]["ratio"] = out[name]["spki_us"] / out[name]["full_hash_us"]

def scrub(n):
    # Overwrite stale stack slots: the GC scans the C stack conservatively, and
    # a stale pointer to the parsed JSON would be counted as pinset RAM.
    a = [0] * 32
    return scrub(n - 1) if n else len(a)


text = open(d + "/pinset50.json").read()
ps = certpin.loads(text)
leaf = open(d + "/p256.der", "rb").read()
host = ps.hosts()[-1]
chain = [leaf]
out["check_alloc_bytes_leaf"] = alloc(certpin.check, ps, host, chain)
out["check_alloc_memoryview_leaf"] = alloc(certpin.check, ps, host, [memoryview(leaf)])
del ps
scrub(30)
gc.collect()
m = gc.mem_alloc()
ps = certpin.loads(text)
scrub(30)
gc.collect()
ram = gc.mem_alloc() - m
pins = sum(len(ps.pins(h)) for h in ps.hosts())
out["pinset_hosts"] = len(ps.hosts())
out["pinset_pins"] = pins
out["pinset_ram"] = ram
out["ram_per_pin"] = out["pinset_ram"] / pins

# ---- pinset updates (issue 8) ----

up = d + "/update/certpin.json"
del ps, leaf, chain, text
ps = certpin.load(up)
scrub(30)
gc.collect()
m_before = gc.mem_alloc()
times = []
retained = []
for i in range(2, 8):
    b = open(d + "/update/b%d.jws" % i).read()
    gc.collect()
    m = gc.mem_alloc()
    t = time.ticks_us()
    ps = certpin.update(b, up)
    times.append(time.ticks_diff(time.ticks_us(), t))
    del b
    scrub(30)
    gc.collect()
    retained.append(gc.mem_alloc() - m)
out["update_us_first"] = times[0]  # includes loading _update, _load, _p256 from .mpy
out["update_us_best"] = min(times)
out["update_retained_first"] = retained[0]  # new qstrs are interned once and stay
out["update_retained_steady"] = max(retained[1:])
out["update_retained_total"] = gc.mem_alloc() - m_before
out["modules_after_update"] = sorted(k for k in sys.modules if k.startswith("certpin."))
# Heap allocated by one update with the GC off: an upper bound of its peak.
b = open(d + "/update/b7.jws").read()
gc.collect()
gc.disable()
m = gc.mem_alloc()
certpin.update(b, up)  # the identical bundle: verified, then a no-op
out["update_alloc_noop"] = gc.mem_alloc() - m
gc.enable()
# What a refusal can cost (issue 15.4): the flood and the worst bundle (bench/run.py).
def refusal(bundle_path, path):
    b = open(bundle_path).read()
    best = None
    for _ in range(5):
        t = time.ticks_us()
        try:
            certpin.update(b, path)
            reason = None
        except certpin.UpdateError as e:
            reason = e.reason
        us = time.ticks_diff(time.ticks_us(), t)
        best = us if best is None or us < best else best
    return best, reason


def verifications(bundle_path, path):
    # certpin._p256.verify calls during one refusal (the module patched while imported)
    import certpin._p256 as m

    real = m.verify
    n = [0]

    def v(*a):
        n[0] += 1
        return real(*a)

    m.verify = v
    try:
        certpin.update(open(bundle_path).read(), path)
    except certpin.UpdateError:
        pass
    return n[0]


out["flood_us"], out["flood_reason"] = refusal(d + "/update/flood.jws", up)
out["flood_verified"] = verifications(d + "/update/flood.jws", up)
out["worst_us"], out["worst_reason"] = refusal(d + "/update/worst.jws", d + "/update/worst/certpin.json")
out["worst_verified"] = verifications(d + "/update/worst.jws", d + "/update/worst/certpin.json")
# certpin.install(): what it keeps resident once the TLS layer and the pinset
# are loaded (its module, the policy, the sys.modules entries), with the
# modules a typical application has imported for install() to walk.
import asyncio  # noqa: E402
import requests  # noqa: E402,F401
import ssl  # noqa: E402,F401

scrub(30)
gc.collect()
mark("install_before")
m = gc.mem_alloc()
certpin.install(ps)
scrub(30)
gc.collect()
out["install_ram"] = gc.mem_alloc() - m
mark("install_after")
out["install_modules"] = len(sys.modules)
best = None
for _ in range(20):  # the walk of sys.modules, each time (uninstall() undoes it)
    certpin.uninstall()
    t = time.ticks_us()
    certpin.install(ps)
    us = time.ticks_diff(time.ticks_us(), t)
    best = us if best is None or us < best else best
out["install_us"] = best
print(json.dumps(out))
