# Corpus replay: runs unchanged under CPython and the MicroPython unix port, in
# ONE process, so allocation across thousands of inputs can be watched.
#
# Usage: replay.py CORPUS [verbose]
# CORPUS is text, one case per line, "<op> <hex>":
#   s <der>      certpin.spki_sha256(der)
#   c <der>      certpin.cert_sha256(der)
#   l <text>     certpin.loads(text)          (text given as raw bytes)
#   f <path>     certpin.load(path)           (path as UTF-8 bytes)
#   p <text>     set the pinset used by "k" (must load)
#   k <der>      certpin.check(pinset, "localhost", [der]) leaf-only, then
#                certpin.check(pinset, "localhost", [der, der], verified=True)
#   i <text>     the installed pinset file for the "u" cases that follow
#   u <bundle>   certpin.update(bundle, CORPUS + ".pinset.json") with the "i"
#                text written there first: ok (detail: the new serial) or
#                refused (detail: UpdateError:<reason>, or PinsetError); a
#                refusal that changed the file is a crash
# Output: with "verbose", one line per case "R <n> ok <hex digest or ->" or
# "R <n> refused <ExceptionClass>" or "R <n> crash <ExceptionClass> <message>";
# always a last JSON line with the summary:
#   tried, ok, refused, crashes (first 20), mem_warm/mem_end (gc.mem_alloc()
#   after gc.collect(), after the first `warm` cases and at the end), max_alloc
#   per op (heap bytes one call allocated, gc disabled, after the warm-up in
#   which lazily imported modules load; MicroPython only).
import gc
import json
import sys
from binascii import hexlify, unhexlify

import certpin

verbose = len(sys.argv) > 2 and sys.argv[2] == "verbose"
mem = getattr(gc, "mem_alloc", None)
WARM = 50

pinset = None
installed = None
upath = sys.argv[1] + ".pinset.json"
tried = ok = refused = 0
crashes = []
max_alloc = {}
mem_warm = None


def run(op, arg):
    if op == "s":
        return certpin.spki_sha256(arg)
    if op == "c":
        return certpin.cert_sha256(arg)
    if op == "l":
        certpin.loads(arg)
        return None
    if op == "f":
        certpin.load(str(arg, "utf-8"))
        return None
    if op == "u":
        with open(upath, "wb") as f:
            f.write(installed)
        try:
            return ("%d" % certpin.update(arg, upath).serial).encode()
        except certpin.Error:
            with open(upath, "rb") as f:
                if f.read() != installed:
                    raise RuntimeError("a refused update changed the installed pinset")
            raise
    if op == "k":
        try:
            certpin.check(pinset, "localhost", [arg])
        except certpin.PinError:
            pass
        return certpin.check(pinset, "localhost", [arg, arg], verified=True).encode()
    raise ValueError("unknown op %r" % op)


f = open(sys.argv[1])
n = 0
for line in f:
    line = line.strip()
    if not line:
        continue
    op = line[0]
    arg = unhexlify(line[2:])
    line = None
    if op == "p":
        pinset = certpin.loads(arg)
        continue
    if op == "i":
        installed = arg
        continue
    n += 1
    if n == WARM + 1 and mem:
        gc.collect()
        mem_warm = mem()
    tried += 1
    res = None
    a0 = None
    if mem and op in "sck" and n > WARM:  # after warm-up: lazy imports done
        gc.collect()
        gc.disable()
        a0 = mem()
    try:
        res = run(op, arg)
        ok += 1
        kind = "ok"
    except certpin.Error as e:
        refused += 1
        kind = "refused"
        res = type(e).__name__
        if getattr(e, "reason", None):
            res += ":" + e.reason
    except Exception as e:  # the only exception allowed out is certpin.Error
        kind = "crash"
        res = "%s %s" % (type(e).__name__, e)
        if len(crashes) < 20:
            crashes.append([n, op, res, hexlify(arg[:64]).decode()])
    if a0 is not None:
        a = mem() - a0
        gc.enable()
        if a > max_alloc.get(op, 0):
            max_alloc[op] = a
    arg = None
    if verbose:
        if kind == "ok":
            res = res.decode() if op == "u" else hexlify(res).decode() if isinstance(res, bytes) else "-"
        print("R", n, kind, res)

if mem:
    gc.collect()
mem_end = mem() if mem else None
print(
    json.dumps(
        {
            "runtime": sys.implementation.name,
            "tried": tried,
            "ok": ok,
            "refused": refused,
            "crashes": crashes,
            "mem_warm": mem_warm,
            "mem_end": mem_end,
            "max_alloc": max_alloc,
        }
    )
)
