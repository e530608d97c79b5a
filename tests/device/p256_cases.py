# P-256 case replay: runs unchanged under CPython and the MicroPython unix port,
# ALL cases in ONE process (so heap growth across thousands of verifies shows).
#
# Usage: p256_cases.py CASES
# CASES is text, one case per line, fields separated by ",":
#   k,<spki hex>                        certpin._p256.public_key(spki)
#   v,<x hex>,<y hex>,<digest hex>,<sig hex>
#                                       certpin._p256.verify((x, y), digest, sig)
# Case n passes its byte strings as bytes (n % 3 == 0), bytearray (1) or
# memoryview (2), so every accepted input type is exercised.
# Output: one line per case, "R <n> <result>" where result is
#   "ok <x hex> <y hex>" or "refused <message>" for k,
#   "True" or "False" for v,
#   "crash <ExceptionClass> <message>" for any other exception (a bug);
# then a last JSON line: runtime, tried, crashes, and on MicroPython
#   max_alloc (heap bytes one verify allocated, gc disabled),
#   mem_warm/mem_end (gc.mem_alloc() after gc.collect() after the first
#   case and at the end, certpin._ptext dropped as a device drops it: heap
#   retained across the run).
import gc
import json
import sys
from binascii import hexlify, unhexlify

import certpin._p256  # noqa: E402

_p256 = sys.modules["certpin._p256"]

mem = getattr(gc, "mem_alloc", None)


def form(b, n):
    k = n % 3
    return b if k == 0 else bytearray(b) if k == 1 else memoryview(b)


def hx(v):
    return hexlify(v.to_bytes(32, "big")).decode()


tried = 0
crashes = []
max_alloc = 0
mem_warm = None
n = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    f = line.split(",")
    line = None
    n += 1
    tried += 1
    a0 = None
    if mem and n > 1:
        if n == 2:
            gc.collect()
            mem_warm = mem()
        gc.collect()
        gc.disable()
        a0 = mem()
    try:
        if f[0] == "k":
            try:
                x, y = _p256.public_key(form(unhexlify(f[1]), n))
                res = "ok %s %s" % (hx(x), hx(y))
            except ValueError as e:
                res = "refused %s" % e
        else:
            key = (int(f[1], 16), int(f[2], 16))
            d = form(unhexlify(f[3]), n)
            s = form(unhexlify(f[4]), n)
            if a0 is not None:
                gc.collect()
                a0 = mem()
            res = str(_p256.verify(key, d, s))
            if a0 is not None:
                a = mem() - a0
                if a > max_alloc:
                    max_alloc = a
    except Exception as e:  # the only refusal allowed out of public_key is ValueError
        res = "crash %s %s" % (type(e).__name__, e)
        if len(crashes) < 20:
            crashes.append([n, res])
    if a0 is not None:
        gc.enable()
    f = key = d = s = None
    print("R", n, res)

if mem:
    # The texts and the whole SPKI parser of refusals (certpin/_ptext.py,
    # loaded at the first refused key) go as a device drops them after a
    # call: what is measured is what the verifications themselves retain.
    sys.modules.pop("certpin._ptext", None)
    if hasattr(sys.modules["certpin"], "_ptext"):
        delattr(sys.modules["certpin"], "_ptext")
    gc.collect()
print(
    json.dumps(
        {
            "runtime": sys.implementation.name,
            "tried": tried,
            "crashes": crashes,
            "max_alloc": max_alloc,
            "mem_warm": mem_warm,
            "mem_end": mem() if mem else None,
        }
    )
)
