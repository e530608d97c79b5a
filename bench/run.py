"""`make bench`: what the device library costs on the MicroPython unix port.

The library is compiled as `certpin flash --lib` compiles it (mpy-cross -O3,
source names certpin/<module>.py) and each part runs on the unix port:

  bench/app_bench.py     what an application pays (issue 11): RAM retained
                         after `import certpin`, a 1-host pinset and the first
                         pinned connection; heap one pinned connection
                         allocates beyond a plain one; pinned / plain time,
                         with and without cadata (TLS servers on 127.0.0.1)
  bench/device_bench.py  per-call figures: spki_sha256 and check heap and
                         time, RAM per pin, signed updates, certpin.install()
  bench/p256_bench.py    ES256 verification: time, peak heap, RAM
  bench/journal_bench.py the failure journal: heap and time of recording a
                         failure, flash writes in an hour of one refused
                         attempt a second (simulated clock, LittleFS in RAM)
  bench/peak.py          THE measure of "the peak heap of an operation" (the
                         least free heap in which it succeeds, certpin
                         imported and the pinset loaded), which every bench
                         uses: here an update, a fetch_update of one release
                         and a catch-up walk over HTTP, on the 64-bit and
                         32-bit builds (and frozen, once `make bench-frozen`
                         has built that port)

Each figure is printed next to its target. `bench/run.py app`, `... p256`,
`... journal` and `... peaks` run one part. The application figures run twice: on the
unix port (64-bit: objects and GC blocks are twice a board's size) and on
the 32-bit v1.28 build in ../shared/runtimes (a board's word size; skipped
with a note when it is absent), where the RAM target applies. The library
runs from `lib/certpin` relative to the working directory, as a board's
`/lib/certpin`: MicroPython interns each module's file name, so a long
temporary path would count against the library. What freezing saves:
bench/frozen.py (`make bench-frozen`).
"""
import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import timeit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "firmware_lib", "certpin")
BIN = os.path.dirname(sys.executable)
RUNTIMES = os.environ.get("CERTPIN_RUNTIMES") or os.path.join(ROOT, "..", "shared", "runtimes")
MP32 = os.path.join(RUNTIMES, "micropython-1.28-32", "micropython")
# The unix port with certpin frozen in, as bench/frozen.py (`make bench-frozen`) builds it.
FROZEN = os.path.join(ROOT, ".work", "frozen", "micropython-1.26.1", "ports", "unix", "build-certpin", "micropython")
# retained RAM (import + 1-host pinset + first connection) before issue 17's
# work, measured with this bench (main at a9373c0): 32-bit 9,456 B, 64-bit 13,088 B
BEFORE = {32: 9456, 64: 13088}
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the test PKI and TLS servers


def leaf(key, ca_key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example.com")])
    ca = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Issuing CA")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(ca).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.example.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def make_update_files(d):
    # A 2-host pinset with one update key, serial 1, and bundles for serials 2..7.
    import hashlib as h
    from cryptography.hazmat.primitives.asymmetric import utils

    os.makedirs(d)
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = "sha256/" + base64.b64encode(h.sha256(spki).digest()).decode()

    def b64u(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    def pinset(serial):
        hosts = {"api%d.example.com" % i: {"pins": ["sha256/" + base64.b64encode(h.sha256(b"%d %d %d" % (serial, i, j)).digest()).decode() for j in range(2)]} for i in range(2)}
        return json.dumps({"format": 1, "serial": serial, "issued": "2026-01-%02d" % serial, "expires": "2099-01-01",
                           "update": {"keys": [base64.b64encode(spki).decode()], "threshold": 1}, "hosts": hosts}, indent=1).encode()

    def sign(data):
        r, s_ = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s_.to_bytes(32, "big")

    with open(os.path.join(d, "certpin.json"), "wb") as f:
        f.write(pinset(1))
    for serial in range(2, 8):
        p = b64u(pinset(serial))
        hd = b64u(json.dumps({"alg": "ES256", "kid": kid}).encode())
        with open(os.path.join(d, "b%d.jws" % serial), "w") as f:
            json.dump({"payload": p, "signatures": [{"protected": hd, "signature": b64u(sign((hd + "." + p).encode()))}]}, f)
    # Issue 15.4: what a refusal can cost. A flood against this pinset (32
    # entries, the most a bundle may carry, all with the real kid and junk
    # signatures: one verification, then bad_signature), and the worst bundle
    # any pinset allows: 16 update keys all required, rotating to 16 others,
    # signed by all 32 but one new key's signature junk (32 verifications,
    # then new_threshold).
    junk = b64u(b"\x07" * 64)
    p = b64u(pinset(9))
    with open(os.path.join(d, "flood.jws"), "w") as f:
        json.dump({"payload": p, "signatures": [{"protected": hd, "signature": junk}] * 32}, f)
    from support import jws

    old = [ec.generate_private_key(ec.SECP256R1()) for _ in range(16)]
    new = [ec.generate_private_key(ec.SECP256R1()) for _ in range(16)]
    os.makedirs(os.path.join(d, "worst"))
    with open(os.path.join(d, "worst", "certpin.json"), "wb") as f:
        f.write(jws.pinset(1, old, threshold=16, issued="2026-01-01", expires="2099-01-01"))
    nxt = jws.pinset(2, new, threshold=16, issued="2026-01-02", expires="2099-01-01")
    b = json.loads(jws.bundle(nxt, old + new))
    b["signatures"][-1]["signature"] = junk
    with open(os.path.join(d, "worst.jws"), "w") as f:
        json.dump(b, f, separators=(",", ":"))
    msg = b"certpin bench"
    with open(os.path.join(d, "verify.json"), "w") as f:
        json.dump({"spki": base64.b64encode(spki).decode(), "digest": base64.b64encode(h.sha256(msg).digest()).decode(),
                   "sig": base64.b64encode(sign(msg)).decode()}, f)


PEAK = os.path.join(ROOT, "bench", "peak.py")
# Peak heap of a single certpin.update() at a9373c0 (main before issue 16's
# catch-up round), measured with bench/peak.py's measure, this bench's update
# (serial 1 -> 7, one key), library as .mpy: what issue 16's "within today's
# single update (about 16 KB)" means under that measure (the 16 KB was the
# difference of two minimal -X heapsize values, which hid most of the code).
BEFORE_UPDATE_PEAK = {64: 36736, 32: 28224}
_STATE = """
import certpin, os
P = %(path)r
SRC = open(%(src)r, "rb").read()


def R():
    # the files S() changes, as they were: the pinset, its floor file, the failure journal
    with open(P, "wb") as f:
        f.write(SRC)
    for x in (".floor", ".journal", ".journal.tmp"):
        try:
            os.remove(P[:-5] + x)
        except OSError:
            pass


R()
ps = certpin.load(P)  # held, as a device holds its pinset
"""


def frozen_build():
    """FROZEN when it exists and was built after every file of the library changed (it freezes the
    library as it was when `make bench-frozen` ran: an older build would measure older code), else None."""
    if not os.path.exists(FROZEN):
        return None
    built = os.path.getmtime(FROZEN)
    lib = [os.path.join(LIB, f) for f in os.listdir(LIB)] + [os.path.join(ROOT, "firmware_lib", "manifest.py")]
    return FROZEN if all(os.path.getmtime(f) < built for f in lib) else None


def peak_heap(micropython, env, setup, cwd, timeout=3600):
    """bench/peak.py's measure, the one every bench uses (see there): the least free heap, with
    certpin imported and the pinset loaded, in which S() succeeds. `setup` is device code that sets
    that state up and defines S() and R() (pinset_state() + the call); cwd: where it runs (env's
    MICROPYPATH relative to it). The unix port runs without
    address-space randomisation where setarch allows it: the GC scans the C stack conservatively,
    so where the heap lies moves what stale words keep alive (a figure over HTTP still varies by
    1-2 KB from run to run with the packets' timing)."""
    script = os.path.join(cwd, "peak-%d.py" % os.getpid())
    with open(PEAK) as f:
        src = f.read()
    with open(script, "w") as f:
        f.write(src + "\n" + setup + "\nprint('PEAK %d' % peak(S, R))\n")
    argv = [micropython, script]
    if sys.platform.startswith("linux") and shutil.which("setarch"):
        argv = ["setarch", os.uname().machine, "-R"] + argv
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    os.remove(script)
    for line in p.stdout.splitlines():
        if line.startswith("PEAK "):
            return int(line.split()[1])
    sys.exit("bench failed (peak heap):\n" + p.stdout[-2000:] + p.stderr[-2000:])


def pinset_state(path, src):
    """Device code for peak_heap(): the pinset file at `path` holds `src`'s bytes (R() puts them
    back, and removes the floor file and the failure journal), loaded and held."""
    return _STATE % {"path": path, "src": src}


def update_call(bundle, serial):
    """Device code: S() = certpin.update() of the bytes of the file `bundle` (held in RAM before), ending on `serial`."""
    return "B = open(%r, 'rb').read()\n\n\ndef S():\n    return certpin.update(B, P).serial == %d\n" % (bundle, serial)


def fetch_call(url, serial):
    """Device code: S() = one certpin.fetch_update(url) that installs `serial`."""
    return ("def S():\n    ps, changed = certpin.fetch_update(%r, P, 30)\n    return changed and ps.serial == %d\n"
            % (url, serial))


def es256_case(path):
    """A valid ES256 (key, digest, signature) as one line "x,y,digest,sig" (hex)."""
    key = ec.generate_private_key(ec.SECP256R1())
    msg = b'{"format": 1, "serial": 2}'
    r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    n = key.public_key().public_numbers()
    with open(path, "w") as f:
        f.write("%x,%x,%s,%s\n" % (n.x, n.y, hashlib.sha256(msg).hexdigest(), (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()))
    return key, msg, r, s


def p256_rows(micropython, env, work, pkg):
    """ES256 verify on the unix port: time, peak heap, module size and RAM."""
    case = os.path.join(work, "es256.txt")
    key, msg, r, s = es256_case(case)
    script = os.path.join(ROOT, "bench", "p256_bench.py")
    r_ = {}
    # The peak search runs verify() with little free heap, where the GC
    # collects often: in a small heap each collection is quick.
    for args in ([script, case], ["-X", "heapsize=96k", script, case, "peak"]):
        p = subprocess.run([micropython] + args, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode:
            sys.exit("bench failed:\n" + p.stdout + p.stderr)
        r_.update(json.loads(p.stdout.strip().splitlines()[-1]))
    # CPython, in-process, for comparison.
    sys.path.insert(0, os.path.join(ROOT, "firmware_lib"))
    from certpin import _p256

    n = key.public_key().public_numbers()
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    digest = hashlib.sha256(msg).digest()
    cpy = min(timeit.repeat(lambda: _p256.verify((n.x, n.y), digest, sig), number=5, repeat=60)) / 5 * 1e3
    print("  ES256 verify (certpin._p256): CPython %.2f ms per verify (best of 60 x 5)" % cpy)
    return [
        ("ES256 verify time, unix port (best of 200)", round(r_["verify_us"] / 1000, 2), 8, "ms"),
        ("ES256 verify peak heap (least free heap it succeeds in)", r_["peak"], 8192, "B"),
        ("ES256 verify heap allocated in total (churn, gc disabled)", r_["alloc"], None, "B"),
        ("RAM while certpin._p256 is imported", r_["import_ram"], None, "B"),
        ("RAM retained after certpin._p256 is dropped, first time (qstrs)", r_["retained"], None, "B"),
        ("RAM retained after certpin._p256 is dropped, again", r_["retained_again"], 0, "B"),
        (".mpy size, _p256 (loaded only for updates)", os.path.getsize(os.path.join(pkg, "_p256.mpy")), None, "B"),
    ]


def compile_library(work, mpy_cross=None):
    """The library as .mpy in work/lib/certpin; returns (pkg dir, {module: .mpy size})."""
    mpy_cross = mpy_cross or os.path.join(BIN, "mpy-cross")
    pkg = os.path.join(work, "lib", "certpin")
    os.makedirs(pkg)
    sizes = {}
    for f in sorted(os.listdir(LIB)):
        if f.endswith(".py") and f != "_cpy.py":  # _cpy is CPython-only: never on a board
            out = os.path.join(pkg, f[:-3] + ".mpy")
            subprocess.run([mpy_cross, "-O3", "-s", "certpin/" + f, "-o", out, os.path.join(LIB, f)], check=True)
            sizes[f[:-3]] = os.path.getsize(out)
    return pkg, sizes


def app_figures(micropython, env, work, runs=15):
    """Run bench/app_bench.py against a genuine TLS server on 127.0.0.1 (the test PKI)."""
    from support.pki import PKI
    from support.servers import TLSServer

    pki = PKI(os.path.join(work, "pki"))
    chain, key = pki.genuine.write(pki.dir)
    server = TLSServer(chain, key, name="genuine").start()
    try:
        cfg = {"port": server.port, "cadata": pki.path("root.der"), "runs": runs,
               "pinset_text": json.dumps({"format": 1, "serial": 1, "expires": "2099-12-31",
                                          "hosts": {"localhost": {"pins": [pki.genuine.pin, pki.rotated.pin]}}})}
        path = os.path.join(work, "app.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([micropython, os.path.join(ROOT, "bench", "app_bench.py"), path], env=env,
                           capture_output=True, text=True, timeout=600, cwd=work)
    finally:
        server.stop()
    if p.returncode:
        sys.exit("bench failed:\n" + p.stdout + p.stderr)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    q = [int(n) for n in re.findall(r"n_qstr=(\d+)", p.stdout)]
    b = [int(n) for n in re.findall(r"n_total_bytes=(\d+)", p.stdout)]
    r["qstrs"] = q[1] - q[0] if len(q) == 2 else None
    r["qstr_bytes"] = b[1] - b[0] if len(b) == 2 else None
    return r


def app_rows(r, bits=64):
    return [
        ("RAM retained: import certpin + a 1-host pinset + the first pinned connection (closed)",
         r["retained_first"], 8192 if bits == 32 else None, "B"),
        ("  before issue 17 (the failure journal), same bench", BEFORE[bits], None, "B"),
        ("  of which: import certpin / loads() the pinset / the connection",
         "%d / %d / %d" % (r["retained_import"], r["retained_loaded"] - r["retained_import"],
                           r["retained_first"] - r["retained_loaded"]), None, ""),
        ("  qstrs certpin interned by then, and the bytes the qstr pool grew by", "%s, %s" % (r["qstrs"], r["qstr_bytes"]),
         None, "B"),
        ("RAM retained after a certpin.connect() too", r["retained_connect"], None, "B"),
        ("heap one pinned connection allocates beyond a plain tls one (gc off)",
         r["alloc_pinned"] - r["alloc_plain"], 1024, "B"),
        ("  plain tls connection / pinned connection", "%d / %d" % (r["alloc_plain"], r["alloc_pinned"]), None, "B"),
        ("time, pinned / plain connection, leaf pin (plain: CERT_NONE, as requests does)",
         round(r["us_pinned"] / r["us_plain"], 2), 1.05, "x"),
        ("  pinned / CERT_OPTIONAL with a callback that accepts (the mode the pin check needs)",
         round(r["us_pinned"] / r["us_optional"], 2), None, "x"),
        ("time, pinned / plain connection, with cadata (both CERT_REQUIRED)",
         round(r["us_pinned_ca"] / r["us_plain_ca"], 2), 1.05, "x"),
        ("  best of 15 x 3 interleaved, ms: CERT_NONE %.1f, CERT_OPTIONAL %.1f, pinned %.1f; with cadata %.1f, pinned %.1f" % (
            r["us_plain"] / 1000, r["us_optional"] / 1000, r["us_pinned"] / 1000, r["us_plain_ca"] / 1000,
            r["us_pinned_ca"] / 1000), "", None, ""),
    ]


def device_figures(micropython, env, work):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    rsa_ca = rsa.generate_private_key(65537, 2048)
    with open(os.path.join(work, "rsa2048.der"), "wb") as f:
        f.write(leaf(rsa.generate_private_key(65537, 2048), rsa_ca))
    p256 = leaf(ec.generate_private_key(ec.SECP256R1()), ca_key)
    with open(os.path.join(work, "p256.der"), "wb") as f:
        f.write(p256)
    hosts = {}
    for i in range(50):
        pins = ["sha256/" + base64.b64encode(hashlib.sha256(b"%d-%d" % (i, j)).digest()).decode() for j in range(2)]
        hosts["api%02d.device-fleet.example.com" % i] = {"pins": pins}
    # The last host pins the P-256 leaf so check() succeeds.
    spki = x509.load_der_x509_certificate(p256).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    hosts["api49.device-fleet.example.com"]["pins"][1] = "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    with open(os.path.join(work, "pinset50.json"), "w") as f:
        json.dump({"format": 1, "serial": 1, "expires": "2027-06-30", "hosts": hosts}, f)
    make_update_files(os.path.join(work, "update"))
    p = subprocess.run([micropython, os.path.join(ROOT, "bench", "device_bench.py"), work],
                       env=env, capture_output=True, text=True, timeout=300)
    if p.returncode:
        sys.exit("bench failed:\n" + p.stdout + p.stderr)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["pool"] = pool_marks(p.stdout)
    r.update(walk_figures(micropython, env, work))
    return r


def walk_site(work):
    """A site on disk for fetch_update over HTTP (tests/support/catchup_site.py): releases 1..5, each of
    2-4 signed by new keys (three rotations of a 1-of-1 key set). Returns (dir, site root): dir holds
    held-walk.json (release 1: a device three rotations behind) and held-step.json (release 4: one
    release behind, no rotation)."""
    from support import jws
    from support.catchup_site import Site

    d = os.path.join(work, "walk")
    if os.path.exists(os.path.join(d, "held-step.json")):
        return d, os.path.join(d, "site")
    os.makedirs(d, exist_ok=True)
    k = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]
    hosts = {"api%d.example.com" % i: {"pins": ["sha256/" + base64.b64encode(hashlib.sha256(b"%d %d" % (i, j)).digest())
                                                .decode() for j in range(2)]} for i in range(2)}
    rel = [jws.pinset(1, [k[0]], hosts=hosts), jws.pinset(2, [k[1]], hosts=hosts), jws.pinset(3, [k[2]], hosts=hosts),
           jws.pinset(4, [k[3]], hosts=hosts), jws.pinset(5, [k[3]], hosts=hosts)]
    site = Site(os.path.join(d, "site"))
    for p, signers in zip(rel, ([k[0]], k[0:2], k[1:3], k[2:4], [k[3]])):
        site.publish(jws.bundle(p, signers))
    for name, p in (("held-walk.json", rel[0]), ("held-step.json", rel[3])):
        with open(os.path.join(d, name), "wb") as f:
            f.write(p)
    return d, os.path.join(d, "site")


def walk_figures(micropython, env, work):
    """A catch-up walk through three rotations over HTTP (walk_site()): the time, the live heap between its
    requests, what stays resident (bench/walk_bench.py). Its peak heap is peak_figures()'s."""
    from support.update_servers import SiteServer

    d, root = walk_site(work)
    srv = SiteServer(root).start()
    try:
        url = srv.url()
        out = {}
        cfg = os.path.join(d, "walk.json")
        with open(cfg, "w") as f:
            json.dump({"url": url, "held": os.path.join(d, "held-walk.json"), "path": os.path.join(d, "dev.json")}, f)
        n0 = len(srv.log)
        p = subprocess.run([micropython, os.path.join(ROOT, "bench", "walk_bench.py"), cfg], env=env,
                           capture_output=True, text=True, timeout=300)
        if p.returncode:
            sys.exit("bench failed:\n" + p.stdout + p.stderr)
        out.update(json.loads(p.stdout.strip().splitlines()[-1]))
        out["walk_requests"] = (len(srv.log) - n0) // out["walks"]
    finally:
        srv.stop()
    return out


def peak_figures(micropython, env, work):
    """bench/peak.py's measure on one runtime: an update() (serial 1 -> 7, bench's bundles), one
    fetch_update() over HTTP of one release (walk_site(): 4 -> 5) and a catch-up walk through three
    rotations (1 -> 5, 5 requests)."""
    from support.update_servers import SiteServer

    up = os.path.join(work, "update")
    if not os.path.exists(up):
        make_update_files(up)
    d, root = walk_site(work)
    dev = os.path.join(work, "peak-device")
    os.makedirs(dev, exist_ok=True)
    path = os.path.join(dev, "certpin.json")
    out = {"update": peak_heap(micropython, env, pinset_state(path, up + "/certpin.json") + update_call(up + "/b7.jws", 7),
                               work)}
    srv = SiteServer(root).start()
    try:
        for what, held in (("step", "held-step.json"), ("walk", "held-walk.json")):
            out[what] = peak_heap(micropython, env, pinset_state(path, os.path.join(d, held)) + fetch_call(srv.url(), 5),
                                  work)
    finally:
        srv.stop()
    return out


def peak_rows(r64, r32=None, frozen=None):
    def kb(v):
        return "-" if v is None else "%.1f" % (v / 1024)

    def row(label, key):
        return (label, " / ".join(kb(r.get(key)) if r else "-" for r in (r64, r32, frozen)), None, "KB")

    return [
        row("one certpin.update() (the bundle in RAM; serial 1 -> 7, one key)", "update"),
        ("  the same at a9373c0, before issue 16's round (its '16 KB', under this measure)",
         "%s / %s / -" % (kb(BEFORE_UPDATE_PEAK[64]), kb(BEFORE_UPDATE_PEAK[32])), None, "KB"),
        row("one fetch_update() over HTTP, one release, no rotation missed", "step"),
        row("one fetch_update() over HTTP walking three rotations (5 requests)", "walk"),
    ]


def pool_marks(out):
    """{mark: qstr pool bytes} from the "MARK name" + qstr_info lines a device script printed."""
    marks = {}
    name = None
    for line in out.splitlines():
        if line.startswith("MARK "):
            name = line.split()[1]
        elif name and "n_total_bytes=" in line:
            marks[name] = int(re.search(r"n_total_bytes=(\d+)", line).group(1))
            name = None
    return marks


def device_rows(r, sizes):
    resident = sizes["__init__"]
    return [
        ("spki_sha256 heap, RSA-2048 leaf as memoryview (verify_callback path)", r["rsa2048"]["spki_alloc_memoryview"], 256, "B"),
        ("spki_sha256 heap, RSA-2048 leaf as bytes", r["rsa2048"]["spki_alloc_bytes"], 256, "B"),
        ("spki_sha256 heap, P-256 leaf as memoryview", r["p256"]["spki_alloc_memoryview"], 256, "B"),
        ("check heap, leaf as bytes", r["check_alloc_bytes_leaf"], 384, "B"),
        ("check heap, leaf as memoryview", r["check_alloc_memoryview_leaf"], 384, "B"),
        ("  spki_sha256 / sha256(whole cert) time, us: RSA-2048 %.1f / %.1f, P-256 %.1f / %.1f (best of 40 x 500)" % (
            r["rsa2048"]["spki_us"], r["rsa2048"]["full_hash_us"], r["p256"]["spki_us"], r["p256"]["full_hash_us"]),
         "", None, ""),
        ("RAM retained by `import certpin` (the resident module, TLS layer included)", r["import_ram"], None, "B"),
        ("RAM per pin, %d-host pinset (%d pins, %d B)" % (r["pinset_hosts"], r["pinset_pins"], r["pinset_ram"]),
         round(r["ram_per_pin"], 1), 128, "B"),
        (".mpy size: resident (__init__) / loaded when used / every device module",
         "%d / %d / %d" % (resident, sum(sizes.values()) - resident, sum(sizes.values())), None, "B"),
        ("RAM retained by certpin.install() (TLS layer and pinset already loaded)", r["install_ram"], None, "B"),
        ("  of which the qstr pool grew by", r["pool"]["install_after"] - r["pool"]["install_before"], None, "B"),
        ("certpin.install() time, %d modules loaded (walk of sys.modules)" % r["install_modules"], r["install_us"], None, "us"),
        ("update time, first (loads _update/_load/_p256 .mpy, verifies, installs)", round(r["update_us_first"] / 1000, 1), None, "ms"),
        ("update time, best of the next 5", round(r["update_us_best"] / 1000, 1), None, "ms"),
        ("update heap allocated in all, GC off (identical bundle: a no-op, nothing verified)", r["update_alloc_noop"], None, "B"),
        ("refusal time, a flood of 32 entries with the real kid against a 1-key pinset (%s, %d verification)" % (
            r["flood_reason"], r["flood_verified"]), round(r["flood_us"] / 1000, 1), None, "ms"),
        ("refusal time, the worst bundle any pinset allows (16+16 keys, %s after %d verifications)" % (
            r["worst_reason"], r["worst_verified"]), round(r["worst_us"] / 1000, 1), None, "ms"),
        ("  live heap between the walk's requests, first to last (the trusted state kept: small)",
         r["walk_live"], None, "B"),
        ("catch-up walk time, 3 rotations over HTTP on 127.0.0.1 (%d verifications), best of %d" % (
            r["walk_verified"], r["walks"]), round(r["walk_us"] / 1000, 1), None, "ms"),
        ("RAM retained by a catch-up walk, first / again", "%d / %d" % (r["walk_retained_first"],
                                                                         r["walk_retained_again"]), None, "B"),
        ("  certpin modules resident after the walks: %s" % (", ".join(r["walk_modules"]) or "none"), "", None, ""),
        ("RAM retained by the first update (qstrs interned once)", r["update_retained_first"], None, "B"),
        ("RAM retained by each later update", r["update_retained_steady"], 0, "B"),
        ("  certpin modules resident after 6 updates: %s" % (", ".join(r["modules_after_update"]) or "none"), "", None, ""),
    ]


def journal_figures(micropython, env, work):
    """Run bench/journal_bench.py: a refusal's cost with and without the journal, an hour under attack."""
    from support.pki import PKI

    pki = PKI(os.path.join(work, "pki-journal"))
    cfg = {"leaf": pki.path("rogue.0.der"),
           "pinset_text": json.dumps({"format": 1, "serial": 1, "expires": "2099-12-31",
                                      "hosts": {"localhost": {"pins": [pki.genuine.pin, pki.rotated.pin]}}})}
    path = os.path.join(work, "journal.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.run([micropython, os.path.join(ROOT, "bench", "journal_bench.py"), path], env=env,
                       capture_output=True, text=True, timeout=900, cwd=work)
    if p.returncode:
        sys.exit("bench failed:\n" + p.stdout + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def journal_rows(r):
    s, t = r["hour_same"], r["hour_rotate"]
    return [
        ("heap one refusal allocates (gc off): no journal / first failure / a repeat",
         "%d / %d / %d" % (r["alloc_nojournal"], r["alloc_first"], r["alloc_repeat"]), None, "B"),
        ("  recording the first failure (journal write, RAM state)", r["alloc_first"] - r["alloc_nojournal"], None, "B"),
        ("  recording a repeat (counted in RAM)", r["alloc_repeat"] - r["alloc_nojournal"], None, "B"),
        ("time of one refusal, us: no journal / first failure / a repeat",
         "%d / %d / %d" % (r["us_nojournal"], r["us_first"], r["us_repeat"]), None, ""),
        ("RAM retained after the first failure / after 100 repeats (RAM state, names interned)",
         "%d / %d" % (r["retained_first"], r["retained_repeat"]), None, "B"),
        ("journal writes in an hour, one refused attempt a second, the same key", s["journal_writes"], 7, ""),
        ("  LittleFS blocks erased (4 KiB) / program operations in that hour",
         "%d / %d" % (s["erases"], s["programs"]), None, ""),
        ("journal writes in an hour, a new key every attempt", t["journal_writes"], 20, ""),
        ("  LittleFS blocks erased / program operations in that hour; the journal's size after it",
         "%d / %d; %d B" % (t["erases"], t["programs"], r["journal_bytes"]), None, ""),
    ]


def main():
    micropython = os.environ.get("MICROPYTHON") or os.path.join(BIN, "micropython")
    work = tempfile.mkdtemp(prefix="certpin-bench-")
    pkg, sizes = compile_library(work)
    os.chdir(work)  # every run's working directory: the library is in lib/certpin, as a board's /lib/certpin
    env = dict(os.environ, MICROPYPATH="lib:.frozen")
    ver = subprocess.run([micropython, "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout.strip()
    print("certpin bench on MicroPython", ver)
    part = sys.argv[1] if len(sys.argv) > 1 else None
    if part not in (None, "app", "p256", "journal", "peaks"):
        sys.exit("usage: bench/run.py [app|p256|journal|peaks]")
    mp32 = MP32 if os.path.exists(MP32) and subprocess.run([MP32, "-c", "1"], capture_output=True).returncode == 0 else None
    over = 0
    if part in (None, "app"):
        over += report("what an application pays (bench/app_bench.py), unix port 64-bit",
                       app_rows(app_figures(micropython, env, work)))
        if mp32:
            over += report("what an application pays, 32-bit v1.28 build (../shared/runtimes: a board's word size)",
                           app_rows(app_figures(mp32, env, work), 32))
        else:
            print("(the 32-bit build %s is absent or does not run here (libc6-i386): its figures are skipped)" % MP32)
    if part in (None, "journal"):
        over += report("the failure journal (bench/journal_bench.py), unix port 64-bit",
                       journal_rows(journal_figures(micropython, env, work)))
        if mp32:
            over += report("the failure journal, 32-bit v1.28 build", journal_rows(journal_figures(mp32, env, work)))
    if part is None:
        over += report("per call (bench/device_bench.py)", device_rows(device_figures(micropython, env, work), sizes))
    if part in (None, "peaks"):
        frozen = frozen_build()
        over += report("free heap an operation needs, KB, 64-bit / 32-bit build / frozen (1.26.1, 64-bit): the least "
                       "free heap it succeeds in, certpin imported and the pinset loaded (bench/peak.py)", peak_rows(
            peak_figures(micropython, env, work), peak_figures(mp32, env, work) if mp32 else None,
            peak_figures(frozen, dict(env, MICROPYPATH=".frozen"), work) if frozen else None))
        if not frozen:
            print("  (frozen: no up-to-date frozen unix port at %s; `make bench-frozen` builds it)" % FROZEN)
    if part in (None, "p256"):
        over += report("ES256 verification (bench/p256_bench.py)", p256_rows(micropython, env, work, pkg))
    print("mpy files in", pkg)
    print("%d figure(s) over target" % over if over else "every figure meets its target")
    return 0


def report(title, rows):
    print(title)
    over = 0
    for label, value, target, unit in rows:
        if target is None:
            verdict = ""
        elif value <= target:
            verdict = "ok   (target <= %s%s)" % (target, unit)
        else:
            verdict = "OVER (target <= %s%s)" % (target, unit)
            over += 1
        print("  %-84s %10s%s  %s" % (label, value, unit, verdict))
    return over


if __name__ == "__main__":
    sys.exit(main())
