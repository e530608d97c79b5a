"""`make bench`: speed and memory of the device library on the MicroPython unix port.

Compiles firmware_lib/certpin to .mpy with mpy-cross, generates an RSA-2048
and a P-256 leaf and a 50-host pinset, runs bench/device_bench.py on the unix
port and prints each figure next to its target.
"""
import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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
            subprocess.run([mpy_cross, "-O3", "-o", out, os.path.join(LIB, f)], check=True)
            mpy_total += os.path.getsize(out)
    device_files = [f for f in os.listdir(pkg) if f != "_cpy.mpy"]  # _cpy is CPython-only
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

    env = dict(os.environ, MICROPYPATH=os.path.join(work, "lib") + ":.frozen")
    p = subprocess.run([micropython, os.path.join(ROOT, "bench", "device_bench.py"), work],
                       env=env, capture_output=True, text=True, timeout=300)
    if p.returncode:
        sys.exit("bench failed:\n" + p.stdout + p.stderr)
    r = json.loads(p.stdout.strip().splitlines()[-1])
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
        (".mpy size, device modules (all but _cpy)", mpy_device, 6144, "B"),
        (".mpy size, every module", mpy_total, None, "B"),
        ("RAM retained by certpin.install() (TLS layer and pinset already loaded)", r["install_ram"], 4096, "B"),
        ("certpin.install() time, %d modules loaded (walk of sys.modules)" % r["install_modules"], r["install_us"], None, "us"),
        ("RAM per pin, %d-host pinset (%d pins, %d B)" % (r["pinset_hosts"], r["pinset_pins"], r["pinset_ram"]), round(r["ram_per_pin"], 1), 128, "B"),
    ]
    print("certpin bench on", ver)
    print("  spki_sha256: RSA-2048 %.2f us, P-256 %.2f us; sha256(whole cert): %.2f us, %.2f us (best of 40 runs x 500 calls)" % (
        r["rsa2048"]["spki_us"], r["p256"]["spki_us"], r["rsa2048"]["full_hash_us"], r["p256"]["full_hash_us"]))
    bad = 0
    for label, value, target, unit in rows:
        if target is None:
            verdict = ""
        elif value <= target:
            verdict = "ok   (target <= %s%s)" % (target, unit)
        else:
            verdict = "OVER (target <= %s%s)" % (target, unit)
            bad += 1
        print("  %-72s %8s%s  %s" % (label, value, unit, verdict))
    print("mpy files in", pkg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
