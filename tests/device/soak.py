# Soak: N pinned handshakes in ONE process (MicroPython unix port or CPython).
# Usage: soak.py CONFIG.json; prints one JSON line.
#
# CONFIG: {"pinset_text": str, "host": "localhost", "port": genuine server,
# "rogue_port": server with a key the pinset does not hold, "count": N,
# "rogue_every": k (every k-th connection goes to the rogue server and must be
# refused), "warmup": W}
# Heap in use (gc.mem_alloc() right after gc.collect()) is sampled after the
# warm-up and at ten checkpoints; the caller judges the drift.
import gc
import json
import socket
import sys
import time

import certpin

cfg = json.load(open(sys.argv[1]))
ps = certpin.loads(cfg["pinset_text"])
ctx = certpin.SSLContext(ps)
mem = getattr(gc, "mem_alloc", None)
N = cfg["count"]
W = cfg.get("warmup", 10)
K = cfg.get("rogue_every", 10)
ok = refused = 0
errors = []
# Heap in use at each checkpoint, in a list allocated up front: appending a
# tuple per sample would itself show up as growth (32 bytes a sample).
samples = [0] * 12
at = [0] * 12
ns = 0
addr = socket.getaddrinfo("127.0.0.1", cfg["port"])[0][-1]
raddr = socket.getaddrinfo("127.0.0.1", cfg["rogue_port"])[0][-1]


def one(rogue):
    s = socket.socket()
    try:
        s.connect(raddr if rogue else addr)
        t = ctx.wrap_socket(s, server_hostname=cfg["host"])
        t.write(b"GET / HTTP/1.0\r\n\r\n")
        data = t.read(256)
        t.close()
        return data
    finally:
        s.close()


def sample(i):
    global ns
    if mem and ns < 12:
        gc.collect()
        samples[ns] = mem()
        at[ns] = i
        ns += 1


t0 = time.time()
for i in range(1, W + N + 1):
    rogue = i % K == 0
    try:
        data = one(rogue)
        if rogue or not data.startswith(b"HTTP/1.0 200"):
            errors.append([i, "accepted", str(data[:40])])
        else:
            ok += 1
    except certpin.PinError:
        if rogue:
            refused += 1
        else:
            errors.append([i, "PinError", ""])
    except Exception as e:
        errors.append([i, type(e).__name__, str(e)])
    if i == W or (i > W and (i - W) % max(1, N // 10) == 0):
        sample(i - W)
    if len(errors) > 5:
        break
dt = time.time() - t0
print(json.dumps({"runtime": sys.implementation.name, "count": N, "warmup": W, "ok": ok, "refused": refused,
                  "errors": errors, "samples": [[at[k], samples[k]] for k in range(ns)], "seconds": dt}))
