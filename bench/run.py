"""`make bench`: speed and memory of the device library on the MicroPython unix port.

Compiles firmware_lib/certpin to .mpy with mpy-cross, generates an RSA-2048
and a P-256 leaf and a 50-host pinset, runs bench/device_bench.py on the unix
port and prints each figure next to its target; then ES256 verification
(certpin._p256) with bench/p256_bench.py: time, peak heap (the least free
heap a verify succeeds in: see that file), module size and RAM.
`bench/run.py p256` prints only the ES256 rows.
"""
import base64
import datetime
import hashlib
import json
import os
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
    msg = b"certpin bench"
    with open(os.path.join(d, "verify.json"), "w") as f:
        json.dump({"spki": base64.b64encode(spki).decode(), "digest": base64.b64encode(h.sha256(msg).digest()).decode(),
                   "sig": base64.b64encode(sign(msg)).decode()}, f)


def min_heap(micropython, env, code):
    # The smallest -X heapsize (512 B steps) in which `code` runs to the end.
    lo, hi = 4096, 262144
    while hi - lo > 512:
        mid = (lo + hi) // 2 // 512 * 512
        p = subprocess.run([micropython, "-X", "heapsize=%d" % mid, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60)
        if "DONE" in p.stdout:
            hi = mid
        else:
            lo = mid
    return hi


def update_peak(micropython, env, d):
    # Peak heap of one update: the smallest heap that runs load() + update(),
    # less the smallest that runs load() with the bundle read (same state).
    import shutil

    tmp = d + "-peak"
    shutil.copytree(d, tmp)
    pre = "import certpin\nps = certpin.load(%r)\nb = open(%r).read()\n" % (tmp + "/certpin.json", tmp + "/b7.jws")
    base = min_heap(micropython, env, pre + "print('DONE')\n")
    # b7 over serial 1 each time: the file is restored by a failed run? No: use a copy per run.
    code = ("import os\n" + pre + "open(%r, 'w').write(open(%r).read())\n" % (tmp + "/certpin.json", d + "/certpin.json")
            + "ps = certpin.load(%r)\n" % (tmp + "/certpin.json") + "certpin.update(b, %r)\nprint('DONE')\n" % (tmp + "/certpin.json"))
    return min_heap(micropython, env, code) - base


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


def main():
    micropython = os.environ.get("MICROPYTHON") or os.path.join(BIN, "micropython")
    mpy_cross = os.path.join(BIN, "mpy-cross")
    work = tempfile.mkdtemp(prefix="certpin-bench-")
    pkg = os.path.join(work, "lib", "certpin")
    os.makedirs(pkg)
    mpy_total = 0
    for f in sorted(os.listdir(LIB)):
        if f.endswith(".py"):
            out = os.path.join(pkg, f[:-3] + ".mpy")
            # As `certpin flash` compiles (flash.compile_library): -O3, source name certpin/<f>.
            subprocess.run([mpy_cross, "-O3", "-s", "certpin/" + f, "-o", out, os.path.join(LIB, f)], check=True)
            mpy_total += os.path.getsize(out)
    env = dict(os.environ, MICROPYPATH=os.path.join(work, "lib") + ":.frozen")
    if sys.argv[1:] == ["p256"]:  # only the ES256 rows: bench/run.py p256
        return report("certpin bench (ES256 only)", p256_rows(micropython, env, work, pkg), pkg)
    # _cpy is CPython-only; _p256 is loaded only for a pinset update (its own rows).
    device_files = [f for f in os.listdir(pkg) if f not in ("_cpy.mpy", "_p256.mpy")]
    mpy_device = sum(os.path.getsize(os.path.join(pkg, f)) for f in device_files)

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
    r["update_peak"] = update_peak(micropython, env, os.path.join(work, "update"))
    ver = subprocess.run([micropython, "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout.strip()

    rows = [
        ("spki_sha256 heap, RSA-2048 leaf as memoryview (verify_callback path)", r["rsa2048"]["spki_alloc_memoryview"], 256, "B"),
        ("spki_sha256 heap, RSA-2048 leaf as bytes", r["rsa2048"]["spki_alloc_bytes"], 256, "B"),
        ("spki_sha256 heap, P-256 leaf as memoryview", r["p256"]["spki_alloc_memoryview"], 256, "B"),
        ("check heap, leaf as bytes", r["check_alloc_bytes_leaf"], 384, "B"),
        ("check heap, leaf as memoryview", r["check_alloc_memoryview_leaf"], 384, "B"),
        ("spki_sha256 / sha256(whole cert), RSA-2048 (%d B cert)" % r["rsa2048"]["cert_bytes"], round(r["rsa2048"]["ratio"], 2), 1.3, "x"),
        ("spki_sha256 / sha256(whole cert), P-256 (%d B cert)" % r["p256"]["cert_bytes"], round(r["p256"]["ratio"], 2), 1.8, "x"),
        ("RAM retained by `import certpin` (.mpy)", r["import_ram"], 6144, "B"),
        ("RAM retained with the TLS layer loaded too", r["import_ram_with_tls"], None, "B"),
        (".mpy size, device modules (all but _cpy and _p256)", mpy_device, 6144, "B"),
        (".mpy size, every module", mpy_total, None, "B"),
        ("RAM retained by certpin.install() (TLS layer and pinset already loaded)", r["install_ram"], 4096, "B"),
        ("certpin.install() time, %d modules loaded (walk of sys.modules)" % r["install_modules"], r["install_us"], None, "us"),
        ("RAM per pin, %d-host pinset (%d pins, %d B)" % (r["pinset_hosts"], r["pinset_pins"], r["pinset_ram"]), round(r["ram_per_pin"], 1), 128, "B"),
        ("update time, first (loads _update/_load/_p256 .mpy, verifies, installs)", round(r["update_us_first"] / 1000, 1), None, "ms"),
        ("update time, best of the next 5", round(r["update_us_best"] / 1000, 1), None, "ms"),
        ("update heap allocated in all, GC off (identical bundle: verify, no write)", r["update_alloc_noop"], None, "B"),
        ("peak heap of an update: min heapsize for load+update less for load", r["update_peak"], None, "B"),
        ("RAM retained by the first update (qstrs interned once)", r["update_retained_first"], None, "B"),
        ("RAM retained by each later update", r["update_retained_steady"], 0, "B"),
    ]
    print("certpin bench on", ver)
    print("  spki_sha256: RSA-2048 %.2f us, P-256 %.2f us; sha256(whole cert): %.2f us, %.2f us (best of 40 runs x 500 calls)" % (
        r["rsa2048"]["spki_us"], r["p256"]["spki_us"], r["rsa2048"]["full_hash_us"], r["p256"]["full_hash_us"]))
    return report(None, rows + p256_rows(micropython, env, work, pkg), pkg)


def report(title, rows, pkg):
    if title:
        print(title)
    for label, value, target, unit in rows:
        if target is None:
            verdict = ""
        elif value <= target:
            verdict = "ok   (target <= %s%s)" % (target, unit)
        else:
            verdict = "OVER (target <= %s%s)" % (target, unit)
        print("  %-72s %8s%s  %s" % (label, value, unit, verdict))
    print("  modules resident after 6 updates:", ", ".join(r["modules_after_update"]) or "none")
    print("mpy files in", pkg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
