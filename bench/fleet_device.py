# The devices of the fleet simulation (bench/fleet.py): many devices in ONE
# process, each a directory holding its own pinset file, each calling
# certpin.fetch_update() once when it comes back online. Runs unchanged on
# CPython and on the MicroPython unix port (64-bit, and the 32-bit build).
#
# Driven line by line on stdin, one JSON line answered per command on stdout:
#   fetch PATH            certpin.fetch_update(path=PATH) (update.url of the
#                         pinset at PATH): {"ok", "serial", "changed", "reason",
#                         "message", "us", "verifies", "paths"}; "verifies" counts
#                         the P-256 verifications the device ran, "paths" the
#                         requests it made (the driver wraps certpin._p256.verify
#                         and certpin._fetch._req for the call: the library
#                         itself is the one a board runs)
#   peak PATH SRC SERIAL [BUNDLE]
#                         MicroPython: the least free heap in which a device
#                         holding SRC's bytes at PATH (loaded, as a device
#                         holds its pinset) ends on SERIAL in one
#                         fetch_update() ({"peak": bytes}): bench/peak.py's
#                         measure, the one every bench uses; with BUNDLE, in
#                         one certpin.update() of BUNDLE's bytes (held in RAM)
#   resident PATH SRC     MicroPython: heap in use before and after a second
#                         whole catch-up from SRC ({"retained", "modules"}): what
#                         a walk leaves behind once its qstrs are interned
#   quit
import gc
import sys
import time

import certpin

CPY = sys.implementation.name != "micropython"
if CPY:

    def ticks_us():
        return int(time.monotonic() * 1000000)

    def ticks_diff(a, b):
        return a - b

else:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff

count = [0]
paths = []
_use = certpin._use  # the library's loader: modules loaded for one call, dropped after it


def counting_use(name, fn, *a, **kw):
    # Load certpin._p256 and certpin._fetch first and wrap _p256.verify and
    # _fetch._req (each request of the walk): the update code finds them in
    # sys.modules, so it runs the wrappers; dropped with the rest after the call.
    __import__("certpin._p256")
    m = sys.modules["certpin._p256"]
    if not getattr(m, "_counted", False):
        v = m.verify

        def counted(*args):
            count[0] += 1
            return v(*args)

        m.verify = counted
        m._counted = True
    __import__("certpin._fetch")
    m = sys.modules["certpin._fetch"]
    if not getattr(m, "_counted", False):
        r = m._req

        def req(get, u, st):
            paths.append(u[u.find("/", 8):])
            return r(get, u, st)

        m._req = req
        m._counted = True
    return _use(name, fn, *a, **kw)


def out(text):
    sys.stdout.write(text + "\n")
    if CPY:
        sys.stdout.flush()


def q(s):
    # a JSON string (MicroPython has json, but this keeps the answer path allocation-light)
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "") + '"'


def fetch(path):
    certpin._use = counting_use
    count[0] = 0
    del paths[:]
    t = ticks_us()
    try:
        ps, changed = certpin.fetch_update(path=path, timeout=30)
        us = ticks_diff(ticks_us(), t)
        r = '{"ok": true, "serial": %d, "changed": %s, "us": %d, "verifies": %d, "paths": [%s]}' % (
            ps.serial, "true" if changed else "false", us, count[0], ", ".join(q(p) for p in paths))
    except certpin.Error as e:
        us = ticks_diff(ticks_us(), t)
        r = '{"ok": false, "reason": %s, "message": %s, "type": %s, "us": %d, "verifies": %d, "paths": [%s]}' % (
            q(getattr(e, "reason", None)), q(e.args[0] if e.args else e), q(type(e).__name__), us, count[0],
            ", ".join(q(p) for p in paths))
    finally:
        certpin._use = _use
    out(r)


def copy(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)
    d = dst.rsplit("/", 1)[0]
    try:
        import os

        os.remove(d + "/certpin.floor")
    except OSError:
        pass


def peak_of(path, src, serial, bundle=None):
    from peak import peak  # bench/peak.py (this script's directory is on sys.path)

    def R():
        copy(src, path)
        for x in (".journal", ".journal.tmp"):
            try:
                __import__("os").remove(path[:-5] + x)
            except OSError:
                pass

    R()
    ps = certpin.load(path)  # noqa: F841  held, as a device holds its pinset
    if bundle:
        with open(bundle, "rb") as f:
            b = f.read()

        def S():
            return certpin.update(b, path).serial == serial

    else:

        def S():
            ps, changed = certpin.fetch_update(path=path, timeout=30)
            return changed and ps.serial == serial

    return peak(S, R)


def scrub(n):
    # Overwrite stale C-stack words (recursion, no heap): the GC scans the
    # stack conservatively, and a stale pointer keeps garbage alive.
    return scrub(n - 1) + 1 if n else 0


def resident(path, src):
    copy(src, path)
    certpin.fetch_update(path=path, timeout=30)  # the first walk interns its qstrs
    copy(src, path)
    scrub(40)
    gc.collect()
    m0 = gc.mem_alloc()
    certpin.fetch_update(path=path, timeout=30)
    scrub(40)
    gc.collect()
    m1 = gc.mem_alloc()
    mods = [k for k in sys.modules if k.startswith("certpin")]
    return m1 - m0, mods


while True:
    line = sys.stdin.readline()
    if not line:
        break
    w = line.split()
    if not w:
        continue
    if w[0] == "quit":
        break
    if w[0] == "fetch":
        fetch(w[1])
    elif w[0] == "peak":
        out('{"peak": %d}' % peak_of(w[1], w[2], int(w[3]), w[4] if len(w) > 4 else None))
    elif w[0] == "resident":
        r, mods = resident(w[1], w[2])
        out('{"retained": %d, "modules": [%s]}' % (r, ", ".join(q(m) for m in sorted(mods))))
    else:
        out('{"error": %s}' % q("unknown command " + w[0]))
