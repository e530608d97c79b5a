# Pinset updates on the device library, under CPython and the MicroPython
# unix port. argv: STEPS.json DIR. DIR is the board's filesystem root for the
# run. STEPS: a list of
#   {"op": "write", "name": N, "text": str}   write DIR/N
#   {"op": "remove", "name": N}               remove DIR/N (a missing one is fine)
#   {"op": "mkdir", "name": N}                make DIR/N a directory
#   {"op": "update", "bundle": str | "hex": hex of bytes}
#                                             certpin.update(bundle, DIR/certpin.json)
#   {"op": "fetch", "url": str|null, "timeout": s, "cadata": [DER paths]}
#                                             certpin.fetch_update(...)
#   {"op": "load"}                            certpin.load(DIR/certpin.json)
#   {"op": "read", "name": N}                 the text of DIR/N, or null
#   {"op": "prefixes", "hex": hex of bytes}   certpin.update() of every proper
#                                             prefix of the bundle: {"tried": n,
#                                             "outcomes": sorted distinct [type, reason],
#                                             "accepted": [lengths that were not refused]}
# Prints one JSON line: a result per step. An update/fetch/load result is
# {"ok": true, "serial", "issued", "floor", "changed"} or {"ok": false,
# "type", "reason", "message"}; "seconds" is how long it took, "verified"
# how many P-256 verifications it made (certpin._p256.verify, counted).
import json
import os
import sys
import time
from binascii import unhexlify

import certpin

steps = json.load(open(sys.argv[1]))
d = sys.argv[2]
path = d + "/certpin.json"


def date(t):
    return None if t is None else "%04d-%02d-%02d" % t


def pinset(ps, changed=None):
    return {"ok": True, "serial": ps.serial, "issued": date(ps.issued), "floor": date(ps.floor), "changed": changed}


def run(s):
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
    if op == "prefixes":
        whole = unhexlify(s["hex"])
        outcomes = []
        accepted = []
        for n in range(len(whole)):
            try:
                certpin.update(whole[:n], path)
                accepted.append(n)
            except Exception as e:
                o = [type(e).__name__, getattr(e, "reason", None)]
                if o not in outcomes:
                    outcomes.append(o)
        return {"tried": len(whole), "outcomes": sorted(outcomes, key=str), "accepted": accepted}
    n = counting()
    t = time.time()
    try:
        if op == "update":
            r = pinset(certpin.update(s["bundle"] if "bundle" in s else unhexlify(s["hex"]), path))
        elif op == "fetch":
            ca = [open(p, "rb").read() for p in s.get("cadata") or ()] or None
            ps, changed = certpin.fetch_update(s.get("url"), path, s.get("timeout", 10), ca)
            r = pinset(ps, changed)
        else:
            r = pinset(certpin.load(path))
    except certpin.Error as e:
        r = {"ok": False, "type": type(e).__name__, "reason": getattr(e, "reason", None),
             "message": e.args[0] if e.args else ""}
    except Exception as e:  # never expected: the test fails on it
        r = {"ok": False, "type": type(e).__name__, "reason": None, "message": repr(e)}
    r["seconds"] = time.time() - t
    r["verified"] = n[0]
    return r


def counting():
    # Count certpin._p256.verify calls during the next step: the module is
    # imported now (MicroPython drops it after each certpin call), and the
    # update code's `from certpin._p256 import verify` finds it patched.
    import certpin._p256 as m

    real = getattr(m, "_real_verify", m.verify)
    n = [0]

    def verify(*a):
        n[0] += 1
        return real(*a)

    m._real_verify = real
    m.verify = verify
    return n


# One JSON array on one line, written a result at a time (one json.dumps of
# them all can outgrow the unix port's heap).
results = [run(s) for s in steps]
print("[", end="")
for i, r in enumerate(results):
    print(("," if i else "") + json.dumps(r), end="")
print("]")
