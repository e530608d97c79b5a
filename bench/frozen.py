"""`make bench-frozen`: what freezing certpin into the firmware saves.

Builds the MicroPython unix port twice from Debian's source package of
MicroPython 1.26.1 (the package registry is the one source of firmware source
reachable from here; Debian builds it against the system mbedTLS), once as is
and once with firmware_lib/manifest.py frozen in, then runs bench/app_bench.py
on both: the library loaded from .mpy files (as `certpin flash --lib` installs
it) against the same library frozen. Frozen bytecode, its constants and its
qstrs live in flash; what stays in RAM is the modules' globals, the classes,
the pinset and what a connection keeps.

Needs: gcc, make, patch, curl or urllib, and Debian's libmbedtls-dev and
libffi-dev (installed with apt-get when run as root). Takes a few minutes;
the builds are kept in .work/frozen for the next run.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import run  # noqa: E402  (compile_library, app_figures, report)

WORK = os.path.join(ROOT, ".work", "frozen")
POOL = "http://deb.debian.org/debian/pool/main/m/micropython/"
FILES = {  # Debian's micropython 1.26.1+ds-1 (sid), sha256 from its .dsc
    "micropython_1.26.1+ds.orig.tar.xz": "f5ad2ec89d3e921f753d448955af98b6005655f84ba26087dde6ba0e8d062f34",
    "micropython_1.26.1+ds-1.debian.tar.xz": "1f6af20cc729518aeeb039455d43d5cd6fe7cb94f6ecff9980836003bdf795c2",
}
SRC = os.path.join(WORK, "micropython-1.26.1")
MAKE_ARGS = ["VARIANT=standard", "STRIP=true", "MICROPY_SSL_AXTLS=0", "MICROPY_SSL_MBEDTLS=1",
             "MICROPY_PY_BTREE=0", "MICROPY_PY_FFI=0"]


def step(msg):
    print("bench-frozen: " + msg, flush=True)


def fetch():
    os.makedirs(WORK, exist_ok=True)
    for name, want in FILES.items():
        path = os.path.join(WORK, name)
        if not os.path.exists(path):
            step("downloading %s%s" % (POOL, name))
            with urllib.request.urlopen(POOL + name, timeout=120) as r, open(path + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(path + ".part", path)
        with open(path, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            os.remove(path)
            sys.exit("bench-frozen: %s: sha256 %s, expected %s (removed; run again)" % (name, got, want))


def unpack():
    if os.path.exists(os.path.join(SRC, ".certpin-ready")):
        return
    step("unpacking and applying Debian's patches")
    shutil.rmtree(SRC, ignore_errors=True)
    for name in FILES:
        with tarfile.open(os.path.join(WORK, name)) as t:
            t.extractall(SRC if "debian" in name else WORK)
    with open(os.path.join(SRC, "debian", "patches", "series")) as f:
        for patch in f.read().split():
            with open(os.path.join(SRC, "debian", "patches", patch), "rb") as p:
                subprocess.run(["patch", "-p1", "-s"], cwd=SRC, stdin=p, check=True)
    open(os.path.join(SRC, ".certpin-ready"), "w").close()


def build_deps():
    if os.path.exists("/usr/include/mbedtls/ssl.h") and os.path.exists("/usr/include/ffi.h") or \
            os.path.exists("/usr/include/x86_64-linux-gnu/ffi.h") and os.path.exists("/usr/include/mbedtls/ssl.h"):
        return
    if os.geteuid() != 0:
        sys.exit("bench-frozen: needs Debian's libmbedtls-dev and libffi-dev: sudo apt-get install libmbedtls-dev libffi-dev pkgconf")
    step("apt-get install libmbedtls-dev libffi-dev pkgconf")
    subprocess.run(["apt-get", "install", "-y", "-qq", "libmbedtls-dev", "libffi-dev", "pkgconf"], check=True,
                   stdout=subprocess.DEVNULL)


def build(name, manifest_text):
    exe = os.path.join(SRC, "ports", "unix", "build-" + name, "micropython")
    manifest = os.path.join(WORK, "manifest-%s.py" % name)
    with open(manifest, "w") as f:
        f.write(manifest_text)
    step("building the unix port (%s)" % name)
    for d, args in (("mpy-cross", []), ("ports/unix", MAKE_ARGS + ["FROZEN_MANIFEST=" + manifest, "BUILD=build-" + name])):
        p = subprocess.run(["make", "-j%d" % (os.cpu_count() or 2)] + args, cwd=os.path.join(SRC, d),
                           capture_output=True, text=True)
        if p.returncode:
            sys.exit("bench-frozen: make in %s failed:\n%s" % (d, (p.stdout + p.stderr)[-3000:]))
    return exe


def main():
    fetch()
    unpack()
    build_deps()
    plain = build("plain", "# nothing frozen\n")
    frozen = build("certpin", 'include(%r)\n' % os.path.join(ROOT, "firmware_lib", "manifest.py"))
    work = os.path.join(WORK, "run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    run.compile_library(work)
    results = {}
    for label, exe, path in ((".mpy files", plain, os.path.join(work, "lib")), ("frozen", frozen, ".frozen")):
        sub = os.path.join(work, label.replace(" ", "-").replace(".", ""))
        os.makedirs(sub)
        results[label] = run.app_figures(exe, dict(os.environ, MICROPYPATH=path + (":.frozen" if path != ".frozen" else "")), sub)
    a, b = results[".mpy files"], results["frozen"]
    print("certpin frozen vs .mpy, MicroPython 1.26.1 unix port (Debian source, system mbedTLS), 64-bit")
    rows = []
    for key, label in (("retained_import", "import certpin"), ("retained_loaded", "... + a 1-host pinset"),
                       ("retained_first", "... + the first pinned connection (closed)"),
                       ("retained_connect", "... + a certpin.connect()")):
        rows.append(("RAM retained, %s: .mpy / frozen" % label, "%d / %d" % (a[key], b[key]), None, "B"))
    rows.append(("freezing saves, after the first connection", a["retained_first"] - b["retained_first"], None, "B"))
    rows.append(("RAM retained after the first connection, frozen", b["retained_first"], 8192, "B"))
    rows.append(("qstrs certpin interned: .mpy / frozen", "%s / %s" % (a["qstrs"], b["qstrs"]), None, ""))
    rows.append(("heap per pinned connection beyond a plain one: .mpy / frozen", "%d / %d" % (
        a["alloc_pinned"] - a["alloc_plain"], b["alloc_pinned"] - b["alloc_plain"]), None, "B"))
    run.report("", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
