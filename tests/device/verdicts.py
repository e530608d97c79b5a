# The device library's verdicts on a list of tasks, under CPython and the
# MicroPython unix port alike (tests/test_host_device_verdicts.py holds the
# host tool's verdicts against them). argv: TASKS DIR. TASKS: one JSON task a
# line (a large corpus never sits in the unix port's heap at once):
#   {"op": "loads", "text": str}                  certpin.loads(text)
#   {"op": "check", "pinset": str, "host": h, "chain": [hex DER, leaf first],
#    "verified": bool}                             certpin.check(...)
#   {"op": "update", "installed": hex, "bundle": hex, "floor": "YYYY-MM-DD" | null}
#                                                  certpin.update(bundle, DIR/certpin.json)
#                                                  with DIR/certpin.floor holding floor
# Prints one JSON line per task: ["ok", detail] or [exception type, reason or message].
import json
import os
import sys
from binascii import unhexlify

import certpin

d = sys.argv[2]


def rm(p):
    try:
        os.remove(p)
    except OSError:
        pass


def task(t):
    try:
        if t["op"] == "loads":
            return ["ok", certpin.loads(t["text"]).serial]
        elif t["op"] == "check":
            ps = certpin.loads(t["pinset"])
            return ["ok", certpin.check(ps, t["host"], [unhexlify(c) for c in t["chain"]], verified=t["verified"])]
        else:
            path = d + "/certpin.json"
            for n in ("certpin.json", "certpin.json.bak", "certpin.json.tmp", "certpin.floor", "certpin.floor.tmp"):
                rm(d + "/" + n)
            with open(path, "wb") as f:
                f.write(unhexlify(t["installed"]))
            if t.get("floor"):
                with open(d + "/certpin.floor", "w") as f:
                    f.write(t["floor"] + "\n")
            with open(path, "rb") as f:
                before = f.read()
            ps = certpin.update(unhexlify(t["bundle"]), path)
            with open(path, "rb") as f:
                after = f.read()
            return ["ok", [ps.serial, after == before]]
    except certpin.Error as e:
        return [type(e).__name__, getattr(e, "reason", None) or (e.args[0] if e.args else "")]
    except Exception as e:  # never expected: the test fails on it
        return ["crash", "%s: %s" % (type(e).__name__, e)]


with open(sys.argv[1]) as f:
    for line in f:
        print(json.dumps(task(json.loads(line))))
