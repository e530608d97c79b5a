# Runs on the MicroPython unix port (library from .mpy, or frozen): what an
# application pays for certpin. argv: CONFIG.json {"port": a genuine TLS server
# on 127.0.0.1, "pinset_text": a 1-host pinset for localhost, "cadata": DER
# path, "runs": N}. Prints one JSON line:
#   retained_import   heap in use after `import certpin` (gc.collect())
#   retained_loaded   ... and a 1-host pinset loaded (certpin.loads)
#   retained_first    ... and the first pinned connection made and closed
#   retained_connect  ... and a connection made with certpin.connect()
#   alloc_plain       heap allocated by one plain tls connection (gc disabled)
#   alloc_pinned      heap allocated by one pinned connection, same (gc disabled)
#   us_plain, us_optional, us_pinned, us_plain_ca, us_pinned_ca   best connection times
# and two qstr_info lines, before `import certpin` and after the first connection.
# Everything the bench itself needs is defined before the first measurement,
# so only the library's own RAM is counted.
import gc
import json
import micropython
import socket
import sys
import time

cfg = json.load(open(sys.argv[1]))
ADDR = socket.getaddrinfo("127.0.0.1", cfg["port"])[0][-1]
CADATA = open(cfg["cadata"], "rb").read()
out = {}
names = ("us_plain", "us_optional", "us_pinned", "us_plain_ca", "us_pinned_ca")
for k in names:
    out[k] = None
certpin = ps = None


def scrub(n):
    # Overwrite stale stack slots: the GC scans the C stack conservatively.
    a = [0] * 32
    return scrub(n - 1) if n else len(a)


def in_use():
    scrub(30)
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


def qstrs():
    # Prints "qstr pool: n_pool=.., n_qstr=.., ..." (micropython.qstr_info):
    # the host side (bench/run.py) reads the counts from these lines.
    micropython.qstr_info()


def plain(cadata=None, optional=False):
    # What an application does without certpin: CERT_NONE (micropython-lib's
    # requests does that), or CERT_REQUIRED with cadata. optional: the mode
    # certpin's leaf-only check needs (CERT_OPTIONAL, a callback that accepts):
    # mbedTLS then verifies the chain's signatures, which CERT_NONE skips.
    import tls

    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if cadata:
        c.load_verify_locations(cadata)
        c.verify_mode = tls.CERT_REQUIRED
    elif optional:
        c.verify_mode = tls.CERT_OPTIONAL
        c.verify_callback = lambda cert, depth: 0
    else:
        c.verify_mode = tls.CERT_NONE
    s = socket.socket()
    try:
        s.connect(ADDR)
        t = c.wrap_socket(s, server_hostname="localhost")
        t.close()
    finally:
        s.close()


def pinned(cadata=None):
    ctx = certpin.SSLContext(ps, cadata)
    s = socket.socket()
    try:
        s.connect(ADDR)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.close()
    finally:
        s.close()


def via_connect():
    certpin.connect("localhost", cfg["port"], pinset=ps).close()


def alloc(f):
    f()
    f()  # warm-up: first calls intern names and fill caches
    scrub(30)
    gc.collect()
    gc.disable()
    m = gc.mem_alloc()
    f()
    r = gc.mem_alloc() - m
    gc.enable()
    return r


def best_us(f, a):
    best = None
    for _ in range(cfg.get("runs", 15)):
        t = time.ticks_us()
        f(*a)
        us = time.ticks_diff(time.ticks_us(), t)
        best = us if best is None or us < best else best
    return best


plain()  # the firmware's own first-use costs (tls, socket) before the baseline
qstrs()
base = in_use()
import certpin  # noqa: E402

out["retained_import"] = in_use() - base
ps = certpin.loads(cfg["pinset_text"])
out["retained_loaded"] = in_use() - base
pinned()
out["retained_first"] = in_use() - base
qstrs()
via_connect()
out["retained_connect"] = in_use() - base
out["alloc_plain"] = alloc(plain)
out["alloc_pinned"] = alloc(pinned)
# Interleaved so that load on the machine hits both alike.
for _ in range(3):
    for k, f, a in (("us_plain", plain, ()), ("us_optional", plain, (None, True)), ("us_pinned", pinned, ()),
                    ("us_plain_ca", plain, (CADATA,)), ("us_pinned_ca", pinned, (CADATA,))):
        us = best_us(f, a)
        out[k] = us if out[k] is None or us < out[k] else out[k]
print(json.dumps(out))
