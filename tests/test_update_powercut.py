"""Power cuts during an update's install, on the virtual board's LittleFS and FAT flash.

The unix port mounts a LittleFS2 or FAT image through the virtual board's
block device (certpin_host.vboard.boot_script), exactly as `certpin vboard
--fs lfs2|fat` does, with the library in /lib on the image as on a board.

- Deterministic: the flash loses power after N block writes (the vboard's
  test-only cut_after knob), for EVERY N from 0 to the number of writes one
  whole update makes; then the board reboots (a fresh process mounts the
  image) and certpin.load() must give the old or the new pinset, byte for
  byte, and a second update must then succeed.
- Random: the unix port is SIGKILLed at random instants while it installs a
  chain of updates in a loop; after each kill, load() must give one of them.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from certpin_host import vboard
from support import jws

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "firmware_lib", "certpin")
KEY = jws.new_key()
CHAIN = 25  # pinsets in the SIGKILL loop
KILLS = int(os.environ.get("CERTPIN_POWERCUT_KILLS", "8"))  # per filesystem; `make fuzz`-style runs raise it


def pinsets():
    return [jws.pinset(i, [KEY], issued="2026-01-%02d" % i, expires="2099-01-01") for i in range(1, CHAIN + 2)]


ENV = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}  # the board's /lib, not the host's


def script_file(script):
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".py", prefix="certpin-powercut-")
    with os.fdopen(fd, "w") as f:
        f.write(script)
    return path


def mp(micropython, script, timeout=60):
    path = script_file(script)
    try:
        return subprocess.run([micropython, path], capture_output=True, text=True, timeout=timeout, env=ENV)
    finally:
        os.remove(path)


def board_script(fs, image, body, cut_after=None, mkfs=False, preload=""):
    return preload + vboard.boot_script(fs, "/", image, mkfs=mkfs, cut_after=cut_after) + body


@pytest.fixture(scope="module")
def images(tmp_path_factory, micropython):
    """{fs: path of a formatted image holding /lib/certpin, /certpin.json (serial 1) and the bundles}."""
    d = tmp_path_factory.mktemp("powercut")
    ps = pinsets()
    files = {"/certpin.json": ps[0]}
    for i in range(1, len(ps)):
        files["/b%d.jws" % (i + 1)] = jws.bundle(ps[i], [KEY])
    return make_images(micropython, d, files), ps


def make_images(micropython, d, files):
    """{fs: path of a formatted image holding /lib/certpin and files ({path: bytes})}."""
    files = dict(files)
    files.update({"/lib/certpin/" + f: open(os.path.join(LIB, f), "rb").read() for f in os.listdir(LIB) if f.endswith(".py")})
    out = {}
    for fs in ("lfs2", "fat"):
        image = str(d / ("base-%s.img" % fs))
        with open(image, "wb") as f:
            f.truncate(vboard.DEFAULT_SIZE)  # 1 MiB, as `certpin vboard` makes: FAT spends a 4 KiB cluster per file
        # The host's files are read before the boot script swaps / for the image.
        pre = "_F = %r\n" % ({k: v.hex() for k, v in files.items()},)
        body = (
            "import os, binascii\n"
            "for _d in ('/lib', '/lib/certpin'):\n"
            "    os.mkdir(_d)\n"
            "for _n, _h in _F.items():\n"
            "    with open(_n, 'wb') as _f:\n"
            "        _f.write(binascii.unhexlify(_h))\n"
            "print('READY', sorted(os.listdir('/')))\n"
        )
        p = mp(micropython, board_script(fs, image, body, mkfs=True, preload=pre))
        assert "READY" in p.stdout, p.stdout + p.stderr
        out[fs] = image
    return out


UPDATE = (
    "import certpin\n"
    "try:\n"
    "    print('UPDATED', certpin.update(open('/b2.jws').read()).serial)\n"
    "except Exception as e:\n"
    "    print('FAILED', type(e).__name__, getattr(e, 'reason', None))\n"
    "print('WRITES', _bdev.writes)\n"
)

REBOOT = (
    "import certpin, hashlib, binascii, os\n"
    "print('BEFORE', sorted(os.listdir('/')))\n"
    "try:\n"
    "    ps = certpin.load()\n"
    "    print('LOADED', ps.serial, binascii.hexlify(hashlib.sha256(open('/certpin.json', 'rb').read()).digest()).decode())\n"
    "except Exception as e:\n"
    "    print('BROKEN', type(e).__name__, e)\n"
    "print('AGAIN', certpin.update(open('/b2.jws').read()).serial)\n"
    "print('FILES', sorted(os.listdir('/')))\n"
)


def sha(b):
    import hashlib

    return hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("fs", ["lfs2", "fat"])
def test_power_cut_after_every_block_write_of_an_update(images, micropython, tmp_path, fs):
    base, ps = images
    good = {1: sha(ps[0]), 2: sha(ps[1])}
    img = str(tmp_path / "flash.img")
    shutil.copy(base[fs], img)
    p = mp(micropython, board_script(fs, img, UPDATE, cut_after=-1))
    assert "UPDATED 2" in p.stdout, p.stdout + p.stderr
    total = int(p.stdout.split("WRITES")[1].split()[0])
    assert total >= 3, total
    seen = {1: 0, 2: 0}
    recovered = 0  # reboots that found only certpin.json.bak (FAT's delete-then-rename window)
    for n in range(total + 1):
        shutil.copy(base[fs], img)
        p = mp(micropython, board_script(fs, img, UPDATE, cut_after=n))
        assert "WRITES" in p.stdout, (n, p.stdout, p.stderr)  # the update failed cleanly, no crash
        r = mp(micropython, board_script(fs, img, REBOOT))
        assert "LOADED" in r.stdout, (fs, n, r.stdout, r.stderr)
        serial, digest = r.stdout.split("LOADED")[1].split()[:2]
        serial = int(serial)
        assert serial in good and digest == good[serial], (fs, n, r.stdout)
        assert "AGAIN 2" in r.stdout, (fs, n, r.stdout, r.stderr)  # and the board can still update
        seen[serial] += 1
        recovered += "'certpin.json'" not in r.stdout.split("BEFORE")[1].split("\n")[0]
    # Both outcomes happened: early cuts keep the old pinset, late ones the new.
    assert seen[1] and seen[2], seen
    assert recovered, "no cut point fell between the two renames: the .bak recovery was not exercised"
    print("%s: %d power-cut points, old %d, new %d, recovered from .bak %d" % (fs, total + 1, seen[1], seen[2], recovered))


LOOP = (
    "import certpin\n"
    "for i in range(2, %d):\n"
    "    certpin.update(open('/b%%d.jws' %% i).read())\n"
    "print('DONE')\n" % (CHAIN + 2)
)


@pytest.mark.parametrize("fs", ["lfs2", "fat"])
def test_sigkill_at_random_instants_during_updates(images, micropython, tmp_path, fs):
    base, ps = images
    good = {i + 1: sha(b) for i, b in enumerate(ps)}
    img = str(tmp_path / "flash.img")
    shutil.copy(base[fs], img)
    t0 = time.monotonic()
    p = mp(micropython, board_script(fs, img, LOOP))
    assert "DONE" in p.stdout, p.stdout + p.stderr
    whole = time.monotonic() - t0
    rnd = random.Random(8)
    serials = []
    for k in range(KILLS):
        shutil.copy(base[fs], img)
        path = script_file(board_script(fs, img, LOOP))
        proc = subprocess.Popen([micropython, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        time.sleep(rnd.uniform(0.15, 0.9) * whole)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        os.remove(path)
        r = mp(micropython, board_script(fs, img, REBOOT))
        assert "LOADED" in r.stdout, (fs, k, r.stdout, r.stderr)
        serial, digest = r.stdout.split("LOADED")[1].split()[:2]
        serial = int(serial)
        assert digest == good.get(serial), (fs, k, r.stdout)
        serials.append(serial)
    # The kills landed at different points of the chain (not all before or after it).
    assert len(set(serials)) > 1, serials
    print("%s: %d SIGKILLs, serials after reboot: %s" % (fs, KILLS, serials))


# ---- Injected failures at every filesystem operation (issue 15, items 1 and 7) ----
#
# tests/device/update_faults.py puts a shim in place of `os` and open() and
# makes the k-th operation (or the k-th and every later one: a flash that
# died) raise EMFILE, EIO or ENOSPC, for every k of an update and of load(),
# then reboots (a clean load) and updates again. On a plain directory under
# both runtimes, and on the virtual board's LittleFS and FAT images.

ERRNOS = [24, 5, 28]  # EMFILE, EIO, ENOSPC
FAULT_OLD = jws.pinset(1, [KEY], issued="2026-01-01", expires="2099-01-01")
FAULT_NEW = jws.pinset(2, [KEY], issued="2026-01-02", expires="2099-01-01")
FAULTS = os.path.join(ROOT, "tests", "device", "update_faults.py")


def fault_config():
    return {"old": FAULT_OLD.decode(), "new": FAULT_NEW.decode(), "bundle": jws.bundle(FAULT_NEW, [KEY]).hex(),
            "errnos": ERRNOS}


def fault_rows(stdout, stderr=""):
    assert "DONE" in stdout, stdout[-3000:] + stderr[-3000:]
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("ROW "):
            _, scenario, doc = line.split(" ", 2)
            rows.setdefault(scenario, []).append(json.loads(doc))
    return rows


def check_fault_rows(rows):
    """The invariants, every violation collected (labelled by issue item); returns {scenario: runs}."""
    ok2, ok1 = ["ok", 2], ["ok", 1]
    bad = []

    def want(cond, label, where, r):
        if not cond:
            bad.append((label, where, r))

    update = rows["update"]
    names = update[0]["names"]
    assert update[0]["result"] == ok2, update[0]
    # the operation after which the new pinset holds the name, and the clean-up after it
    installed_at = names.index("rename certpin.json.tmp certpin.json")
    cleanup = names.index("remove certpin.json.bak", installed_at)
    floor_ops = installed_at + 2  # from here on the floor file is being written
    for r in update:
        where = (r["at"], r["at"] >= 0 and names[r["at"]], r["errno"], r["sticky"])
        res = r["result"]
        want(r["after"][0] == "ok" and r["after"][1] in (1, 2), "a pinset after the reboot", where, r)
        want(r["again"] == ok2, "the board updates again", where, r)
        if res[0] == "ok":
            want(res == ok2 and r["after"] == ok2, "installed means installed", where, r)
            if r["at"] < floor_ops and not (r["sticky"] and r["at"] >= 0):
                want(r["floor"] == "2026-01-02\n", "the floor moved with the install", where, r)
        else:
            # refused: a certpin.Error, and the truth: the old pinset is what a reboot finds
            want(res[0] in ("UpdateError", "PinsetError"), "a certpin.Error", where, r)
            want(r["after"] == ok1, "15.7: an update that raised left the old pinset", where, r)
            if res[0] == "UpdateError":
                want(res[1] == "write_failed" and "unchanged" in res[2], "write_failed, unchanged", where, r)
        if r["at"] >= installed_at + 1:
            # 15.7: once path.tmp holds the name (the .bak then cannot be removed,
            # or the floor not written) the update HAS installed, and says so
            want(res == ok2, "15.7: installed after the rename", where, r)
            if r["at"] == cleanup and not r["sticky"]:
                want(r["floor"] == "2026-01-02\n", "15.7: the floor moved", where, r)
    # 15.1: a stale .bak beside the newer pinset is never preferred, whatever fails
    for r in rows["stale"]:
        want(r["result"][0] in ("ok", "PinsetError") and r["result"][:2] in (ok2, ["PinsetError", None]),
             "15.1: never the stale .bak", (r["at"], r["errno"], r["sticky"]), r)
        want(r["after"] == ok2, "15.1: the newer pinset after the reboot", (r["at"], r["errno"], r["sticky"]), r)
    # FAT's window (only .bak and .tmp): the old pinset, never anything else
    for r in rows["window"]:
        want(r["result"][:2] in (ok1, ["PinsetError", None]), "window: the old pinset or PinsetError",
             (r["at"], r["errno"], r["sticky"]), r)
        want(r["after"] == ok1 and r["again"] == ok2, "window: recovered, updates again",
             (r["at"], r["errno"], r["sticky"]), r)
    labels = {}
    for label, _, _ in bad:
        labels[label] = labels.get(label, 0) + 1
    assert not bad, "violations by rule: %s\nfirst: %s" % (labels, bad[:3])
    return {k: len(v) for k, v in rows.items()}


def test_injected_failures_at_every_os_call_of_update_and_load(runtime, tmp_path):
    cfg = tmp_path / "faults.json"
    cfg.write_text(json.dumps(fault_config()))
    d = tmp_path / "board"
    d.mkdir()
    p = runtime.run("update_faults.py", cfg, d, timeout=600)
    counts = check_fault_rows(fault_rows(p.stdout, p.stderr))
    assert counts["update"] > 100 and counts["stale"] > 20, counts
    print("%s: injected-failure runs %s" % (runtime, counts))


@pytest.mark.parametrize("fs", ["lfs2", "fat"])
def test_injected_failures_on_the_flash(images, micropython, tmp_path, fs):
    base, _ = images
    img = str(tmp_path / "flash.img")
    shutil.copy(base[fs], img)
    body = "CONFIG = %r\nDIR = ''\n" % (fault_config(),) + open(FAULTS).read()
    p = mp(micropython, board_script(fs, img, body), timeout=900)
    counts = check_fault_rows(fault_rows(p.stdout, p.stderr))
    print("%s: injected-failure runs %s" % (fs, counts))


# ---- Power cuts during a catch-up walk (issue 16): intermediate steps are installed as they come ----

WALK = (
    "import certpin\n"
    "try:\n"
    "    print('WALKED', certpin.fetch_update(%r, '/certpin.json', 20)[0].serial)\n"
    "except Exception as e:\n"
    "    print('FAILED', type(e).__name__, getattr(e, 'reason', None))\n"
    "print('WRITES', _bdev.writes)\n"
)

REBOOT_WALK = (
    "import certpin, hashlib, binascii\n"
    "try:\n"
    "    print('LOADED', certpin.load().serial, binascii.hexlify(hashlib.sha256(open('/certpin.json', 'rb').read()).digest()).decode())\n"
    "except Exception as e:\n"
    "    print('BROKEN', type(e).__name__, e)\n"
    "print('AGAIN', certpin.fetch_update(%r, '/certpin.json', 20)[0].serial)\n"
)


@pytest.fixture(scope="module")
def walk_site(tmp_path_factory, micropython):
    # 1 [A] -> 2 [B] (A+B) -> 3 [C] (B+C) -> 4 [C]: a device on 1 walks A's and
    # B's catch-up files, installing 2 and 3 on the way, then 4.
    from support.catchup_site import Site
    from support.update_servers import SiteServer

    d = tmp_path_factory.mktemp("walk")
    a, b, c = jws.new_key(), jws.new_key(), jws.new_key()
    rel = [jws.pinset(1, [a]), jws.pinset(2, [b]), jws.pinset(3, [c]), jws.pinset(4, [c])]
    site = Site(d / "site")
    for p, signers in zip(rel, ([a], [a, b], [b, c], [c])):
        site.publish(jws.bundle(p, signers))
    srv = SiteServer(site.root).start()
    yield make_images(micropython, d, {"/certpin.json": rel[0]}), rel, srv
    srv.stop()


@pytest.mark.parametrize("fs", ["lfs2", "fat"])
def test_power_cut_after_every_block_write_of_a_catch_up_walk(walk_site, micropython, tmp_path, fs):
    base, rel, srv = walk_site
    good = {i + 1: sha(p) for i, p in enumerate(rel)}
    img = str(tmp_path / "flash.img")
    shutil.copy(base[fs], img)
    p = mp(micropython, board_script(fs, img, WALK % srv.url(), cut_after=-1))
    assert "WALKED 4" in p.stdout, p.stdout + p.stderr
    total = int(p.stdout.split("WRITES")[1].split()[0])
    seen = {}
    for n in range(total + 1):
        shutil.copy(base[fs], img)
        p = mp(micropython, board_script(fs, img, WALK % srv.url(), cut_after=n))
        # The flash fails every write after the cut with -EIO, as a board's C driver does: the walk
        # ends with a certpin.Error (or reached the end before the cut), never a crash.
        assert "WRITES" in p.stdout, (n, p.returncode, p.stdout, p.stderr)
        assert "WALKED" in p.stdout or "FAILED UpdateError" in p.stdout or "FAILED PinsetError" in p.stdout, (
            n, p.stdout, p.stderr)
        r = mp(micropython, board_script(fs, img, REBOOT_WALK % srv.url()))
        assert "LOADED" in r.stdout, (fs, n, r.stdout, r.stderr)
        serial, digest = r.stdout.split("LOADED")[1].split()[:2]
        serial = int(serial)
        # a genuine release of the chain, complete; the next call reaches the newest
        assert digest == good.get(serial), (fs, n, r.stdout)
        assert "AGAIN 4" in r.stdout, (fs, n, r.stdout, r.stderr)
        seen[serial] = seen.get(serial, 0) + 1
    # cuts landed before, between and after the intermediate installs
    assert len(seen) >= 3 and 1 in seen and 4 in seen, seen
    print("%s: %d power-cut points in a 3-step walk, serials after reboot: %s" % (fs, total + 1, seen))
