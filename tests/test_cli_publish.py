"""certpin pinset publish and check-update --site: a static update site that strands no device.

The layout is compared with tests/support/catchup_site.py (written from the design
with `cryptography`, independently of the device code and of the host tool); who
reaches what is decided by the device library's walk, and compared with real
devices (CPython and the MicroPython unix port) fetching from an HTTP server over
the site publish wrote.
"""
import fcntl
import hashlib
import json
import os
import threading

import pytest

from support import jws
from support.catchup_site import Fleet, Site, keyset_id
from support.cli import run, run_subprocess
from test_update import run_steps, write

from certpin_host import site as sitemod

NAME = "fleet.jws"
A, B, C, D, E = (jws.new_key() for _ in range(5))


def files_of(root):
    """{relative path: bytes} of every file under root (hidden ones too)."""
    out = {}
    for d, _, names in os.walk(str(root)):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, str(root))] = f.read()
    return out


def save(tmp_path, serial, bundle, name=NAME):
    d = tmp_path / ("rel-%d" % serial)
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_bytes(bundle)
    return p


def publish(capsys, tmp_path, site, serial, bundle, *extra):
    return run(capsys, "pinset", "publish", save(tmp_path, serial, bundle), site, *extra)


def chain():
    """Releases 1..6: 1-of-1 (A), rotation to 2-of-3 (A, B, C), the same, every key rotated to
    1-of-1 (D), the same, rotation to 2-of-2 (D, E) with the threshold raised."""
    f = Fleet()
    f.release([A], 1, [A])
    f.release([A, B, C], 2, [A, B, C])  # old: A (1 of 1); new: 2 of A, B, C (A counts for both)
    f.release([A, B, C], 2, [B, C])
    f.release([D], 1, [A, C, D])  # old: A + C; new: D
    f.release([D], 1, [D])
    f.release([D, E], 2, [D, E])
    return f.made


@pytest.fixture
def site(tmp_path):
    s = tmp_path / "www"
    s.mkdir()
    return s


def test_first_publish_into_an_empty_dir_writes_the_layout_and_again_is_a_noop(capsys, tmp_path, site):
    serial, payload, bundle = chain()[0]
    r = publish(capsys, tmp_path, site, serial, bundle)
    assert r.status == 0, r
    kid = keyset_id([A], 1)
    assert files_of(site) == {NAME: bundle, "%s.d/releases/1.jws" % NAME: bundle, "%s.d/%s.jws" % (NAME, kid): bundle}
    assert "no earlier release is published" in r.out
    for p in (NAME, "%s.d/releases/1.jws" % NAME, "%s.d/%s.jws" % (NAME, kid)):
        assert "wrote %s (new" % os.path.join(str(site), p) in r.out
        assert os.stat(os.path.join(str(site), p)).st_mode & 0o777 == 0o644  # a web server reads it
    before = {p: os.stat(os.path.join(str(site), p)).st_mtime_ns for p in files_of(site)}
    r = publish(capsys, tmp_path, site, serial, bundle)
    assert r.status == 0, r
    assert "already published" in r.out and "nothing to write" in r.out and "wrote" not in r.out
    assert {p: os.stat(os.path.join(str(site), p)).st_mtime_ns for p in files_of(site)} == before
    r = publish(capsys, tmp_path, site, serial, bundle, "--json")
    assert r.status == 0 and r.json()["status"] == "unchanged" and r.json()["written"] == []


def test_a_chain_of_rotations_is_laid_out_as_the_design_says_and_every_release_reaches_the_newest(
        capsys, tmp_path, site):
    ref = Site(tmp_path / "reference")
    for serial, payload, bundle in chain():
        r = publish(capsys, tmp_path, site, serial, bundle, "--json")
        assert r.status == 0, r
        doc = r.json()
        assert doc["status"] == "published" and doc["stranded"] == [] and doc["serial"] == serial
        assert [v["serial"] for v in doc["reach"]] == list(range(1, serial))
        assert all(v["reaches"] and v["ends_on"] == serial for v in doc["reach"]), doc["reach"]
        ref.publish(bundle)
        assert files_of(site) == files_of(ref.root), "serial %d: the layout differs from the design's" % serial
    # a device holding release 1 jumps as far as each key set signed: A's file is release 4
    # (A signed it), D's is 6 (a rotation to D+E), and D+E's file, 6 again, ends the walk there
    reach = {v["serial"]: v for v in doc["reach"]}
    assert reach[1]["requests"] == [NAME, keyset_id([A], 1) + ".jws", keyset_id([D], 1) + ".jws",
                                    keyset_id([D, E], 2) + ".jws"]
    assert reach[2]["requests"] == [NAME, keyset_id([A, B, C], 2) + ".jws", keyset_id([D], 1) + ".jws",
                                    keyset_id([D, E], 2) + ".jws"]
    assert reach[5]["requests"] == [NAME]  # D signed release 6: no catch-up needed
    r = run(capsys, "pinset", "publish", save(tmp_path, 6, bundle), site)
    assert r.status == 0 and "nothing to write" in r.out, r


def test_the_rotation_ceremony_old_and_new_keys_sign_one_at_a_time_then_publish(capsys, tmp_path, site):
    from support.signing import Key

    keys = [Key(tmp_path, n) for n in ("a", "b", "c")]
    v1 = tmp_path / "v1" / NAME
    v1.parent.mkdir()
    pins = tmp_path / "pins.json"
    assert run(capsys, "pinset", "new", pins, "api.example.com", "--pin", jws_pin(1), "--pin", jws_pin(2),
               "--expires", jws.today(100), "--update-key", keys[0].pub, "--update-url",
               "https://u.example.com/" + NAME).status == 0
    assert run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", v1).status == 0
    assert run(capsys, "pinset", "publish", v1, site).status == 0
    # rotate to b + c (2 of 2): the old key signs first, on its machine
    assert run(capsys, "pinset", "set-update", pins, "--update-key", keys[1].pub, "--update-key", keys[2].pub,
               "--threshold", "2").status == 0
    v2 = tmp_path / "v2" / NAME
    v2.parent.mkdir()
    r = run(capsys, "pinset", "sign", pins, "--key", keys[0].path, "-o", v2)
    assert r.status == 0, r
    assert "NOT COMPLETE" in r.out and "new_threshold" in r.out and "0 have: none" in r.out
    assert "not yet: %s, %s" % (keys[1].kid, keys[2].kid) in r.out
    # publish and check-update refuse it, decided by the device's rule new_threshold
    before = files_of(site)
    r = run(capsys, "pinset", "publish", v2, site)
    assert r.status == 1 and "new_threshold" in r.out + r.err and files_of(site) == before, r
    r = run(capsys, "pinset", "publish", v2, site, "--force")
    assert r.status == 1 and files_of(site) == before, r  # --force never publishes what every device refuses
    r = run(capsys, "pinset", "check-update", v2, "--current", v1)
    assert r.status == 1 and "REFUSES it (new_threshold)" in r.out, r
    r = run(capsys, "pinset", "sign", pins, "--key", keys[1].path, "-o", v2)
    assert r.status == 0 and "NOT COMPLETE" in r.out and "1 has: %s" % keys[1].kid in r.out, r
    r = run(capsys, "pinset", "sign", pins, "--key", keys[2].path, "-o", v2)
    assert r.status == 0 and "NOT COMPLETE" not in r.out, r
    r = run(capsys, "pinset", "check-update", v2, "--current", v1)  # --current: the published bundle
    assert r.status == 0 and "is a bundle: checking against its payload" in r.out and "installs it" in r.out, r
    r = run(capsys, "pinset", "check-update", v2, "--site", site)
    assert r.status == 0 and "1 of 1 reach it" in r.out, r
    r = run(capsys, "pinset", "publish", v2, site)
    assert r.status == 0, r
    assert files_of(site)["%s.d/%s.jws" % (NAME, keyset_id([keys[0].line], 1))] == v2.read_bytes()


def jws_pin(i):
    return "sha256/" + __import__("base64").b64encode(hashlib.sha256(b"pin %d" % i).digest()).decode()


@pytest.mark.parametrize("case", ["not_greater", "same_serial_other_bytes", "expired", "new_threshold"])
def test_what_publish_always_refuses_leaves_the_site_unchanged(capsys, tmp_path, site, case):
    made = chain()[:3]
    for serial, _, bundle in made:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    before = files_of(site)
    if case == "not_greater":
        serial, bundle = 0, jws.bundle(jws.pinset(0, [A, B, C], threshold=2), [B, C])
        words = "not greater than the newest published serial 3"
    elif case == "same_serial_other_bytes":
        serial, bundle = 3, jws.bundle(made[2][1], [A, B])  # the same pinset, other signatures
        words = "serial 3 is already published"
    elif case == "expired":
        serial, bundle = 4, jws.bundle(jws.pinset(4, [A, B, C], threshold=2, issued="2026-01-01",
                                                  expires="2026-02-01"), [B, C])
        words = "expired on 2026-02-01"
    else:
        serial, bundle = 4, jws.bundle(jws.pinset(4, [D, E], threshold=2), [B, C, D])
        words = "new_threshold"
    for extra in ((), ("--force",)):
        r = publish(capsys, tmp_path, site, serial, bundle, *extra)
        assert r.status == 1, r
        assert words in r.out and "nothing written" in r.out and "not published" in r.err, r
        assert files_of(site) == before
    r = run(capsys, "pinset", "check-update", save(tmp_path, serial, bundle), "--site", site)
    assert r.status == 1 and words in r.out, r


def test_a_release_the_newest_refuses_is_refused_even_with_force_naming_who_could_not_reach_it(
        capsys, tmp_path, site):
    made = chain()[:3]  # 1 (A), 2 and 3 (2 of A, B, C)
    for serial, _, bundle in made:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    # serial 4 signed by A alone (1 of 1: release 1's keys), keeping A: release 1's devices
    # would take it, those holding 2 and 3 (2 of A, B, C) refuse it and the site has no way on
    bad = jws.bundle(jws.pinset(4, [A], threshold=1), [A])
    before = files_of(site)
    for extra in ((), ("--force",)):
        r = publish(capsys, tmp_path, site, 4, bad, *extra)
        assert r.status == 1, r
        assert "a device holding the newest published release, serial 3, refuses it (threshold)" in r.err
        assert "sign it with a threshold of serial 3's update keys" in r.out
        ks = keyset_id([A, B, C], 2)[:12]
        # 3: refused (1 of 2 signatures), and its key set's catch-up file is release 3 itself;
        # 2: walks to 3 (installs it: progress) and the site's path ends there, not at 4
        assert "serial 2 (key set %s): STRANDED (catchup)" % ks in r.out
        assert "serial 3 (key set %s): STRANDED (threshold)" % ks in r.out
        assert "serial 1 (key set %s): reach it" % keyset_id([A], 1)[:12] in r.out
        assert files_of(site) == before
    r = run(capsys, "pinset", "check-update", save(tmp_path, 4, bad), "--site", site, "--json")
    doc = r.json()["site"]
    assert r.status == 1 and doc["stranded"] == [2, 3] and doc["status"] == "refused"
    assert [(v["serial"], v["reaches"], v["reason"], v["ends_on"]) for v in doc["reach"]] == [
        (1, True, None, 4), (2, False, "catchup", 3), (3, False, "threshold", 3)]
    assert doc["reach"][1]["keyset"] == keyset_id([A, B, C], 2) and doc["reach"][1]["threshold"] == 2


def test_no_more_than_max_steps_rotations_publish_refuses_the_release_a_device_cannot_walk(capsys, tmp_path, site):
    from certpin import _fetch

    # MAX_STEPS + 1 releases, each rotating to a fresh 1-of-1 key (signed by the old key and
    # the new): from release 1 the newest is MAX_STEPS + 1 catch-up requests away, more than
    # a device makes in one call; from release 2 exactly MAX_STEPS
    ref = Site(site)
    keys = [jws.new_key() for _ in range(_fetch.MAX_STEPS + 1)]
    f = Fleet()
    f.release([keys[0]], 1, [keys[0]])
    ref.publish(f.made[-1][2])
    for i in range(1, len(keys) - 1):
        f.release([keys[i]], 1, [keys[i - 1], keys[i]])
        ref.publish(f.made[-1][2])
    i = len(keys) - 1
    serial, _, last = f.release([keys[i]], 1, [keys[i - 1], keys[i]])
    before = files_of(site)
    r = publish(capsys, tmp_path, site, serial, last, "--json")
    assert r.status == 1, r
    assert "devices holding serial 1 could not reach serial %d" % serial in r.err and files_of(site) == before
    doc = r.json()
    assert doc["stranded"] == [1] and doc["already_stranded"] == [] and doc["status"] == "refused"
    v = doc["reach"][0]
    assert v["reason"] == "catchup" and "more than %d catch-up steps" % _fetch.MAX_STEPS in v["message"]
    assert len(v["requests"]) == _fetch.MAX_STEPS + 1
    assert all(v["reaches"] for v in doc["reach"][1:])
    assert len(doc["reach"][1]["requests"]) == _fetch.MAX_STEPS + 1  # the newest, then MAX_STEPS catch-up files
    # --force publishes it (devices holding serial 1 need a USB flash, or a second call)
    r = publish(capsys, tmp_path, site, serial, last, "--force")
    assert r.status == 0 and "--force: devices holding serial 1 could not reach" in r.out, r
    assert files_of(site)[NAME] == last
    # the next release keeps the key set: serial 1 stays stranded since the --force, which
    # no longer blocks; serial 2 still reaches it in MAX_STEPS catch-up requests
    serial, _, nxt = f.release([keys[i]], 1, [keys[i]])
    r = publish(capsys, tmp_path, site, serial, nxt, "--json")
    assert r.status == 0, r
    doc = r.json()
    assert doc["stranded"] == [] and doc["already_stranded"] == [1] and doc["status"] == "published"
    r = publish(capsys, tmp_path, site, serial, nxt)
    assert "serial 1 (key set %s): STRANDED since an earlier --force (catchup)" % keyset_id([keys[0]], 1)[:12] \
        in r.out, r


def test_publish_order_strands_nobody_at_any_instant_and_a_cut_publish_is_finished_by_publishing_again(
        capsys, tmp_path, site, monkeypatch):
    made = chain()
    for serial, _, bundle in made[:3]:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    known = {b for _, _, b in made}
    releases = [sitemod.Release(b, "release %d" % s) for s, _, b in made]

    def check(rel):
        # every file complete, and a device holding any release published before ends
        # on the newest release before this publish or on the new one (a walk in the
        # middle of a publish may say the site is inconsistent: it keeps a genuine release)
        for p, data in files_of(site).items():
            assert data in known, "after %s, %s is not a complete release: %r" % (rel, p, data[:60])
        for r in releases[: n - 1]:
            end, err, _ = sitemod.walk(r.payload, sitemod.Getter(str(site), NAME))
            serial = json.loads(end)["serial"]
            assert serial >= n - 1, "after %s, a device holding %d ends on %d (%s)" % (rel, r.serial, serial, err)
        seen.append(rel)

    real = sitemod._replace
    for n in (4, 5, 6):
        seen = []
        monkeypatch.setattr(sitemod, "_replace", lambda dst, data: (real(dst, data), check(dst)))
        assert publish(capsys, tmp_path, site, n, made[n - 1][2]).status == 0
        assert len(seen) >= 3  # the history, a catch-up file or two, the newest release
        assert seen[0].endswith("releases/%d.jws" % n) and seen[-1].endswith(os.sep + NAME)
    # a publish cut after each of its writes: the site strands nobody, and publishing
    # the same bundle again finishes it
    monkeypatch.setattr(sitemod, "_replace", real)
    for cut in range(1, 4):
        s2 = tmp_path / ("cut-%d" % cut)
        s2.mkdir()
        for serial, _, bundle in made[:3]:
            assert run(capsys, "pinset", "publish", save(tmp_path, serial, bundle), s2).status == 0
        writes = []

        def cutting(dst, data):
            if len(writes) == cut:
                raise KeyboardInterrupt  # the operator's Ctrl-C, a crash
            real(dst, data)
            writes.append(dst)

        monkeypatch.setattr(sitemod, "_replace", cutting)
        r = run(capsys, "pinset", "publish", save(tmp_path, 4, made[3][2]), s2)
        assert r.status == 130, r
        monkeypatch.setattr(sitemod, "_replace", real)
        r = run(capsys, "pinset", "publish", save(tmp_path, 4, made[3][2]), s2)
        assert r.status == 0 and "wrote what the site was missing" in r.out, r
        ref = Site(tmp_path / ("ref-%d" % cut))
        for _, _, bundle in made[:4]:
            ref.publish(bundle)
        assert files_of(s2) == files_of(ref.root)


def test_a_reader_polling_the_site_during_publishes_never_sees_a_partial_file(tmp_path, site):
    made = chain()
    known = {b for _, _, b in made}
    paths = [save(tmp_path, s, b) for s, _, b in made]
    stop = threading.Event()
    bad, reads = [], [0]

    def poll():
        while not stop.is_set():
            for d, _, names in os.walk(str(site)):
                for n in names:
                    if n.startswith("."):
                        continue  # a temporary file being written: devices never ask for one
                    try:
                        with open(os.path.join(d, n), "rb") as f:
                            data = f.read()
                    except FileNotFoundError:
                        continue
                    reads[0] += 1
                    if data not in known:
                        bad.append((n, data[:80]))

    t = threading.Thread(target=poll)
    t.start()
    try:
        for p in paths:
            r = run_subprocess("pinset", "publish", p, site)
            assert r.status == 0, r
    finally:
        stop.set()
        t.join(10)
    assert reads[0] > 0 and not bad, bad[:3]


def test_check_update_site_verdicts_are_what_devices_do(runtime, capsys, tmp_path, site):
    made = chain()[:3]
    for serial, _, bundle in made:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    bad = jws.bundle(jws.pinset(4, [A], threshold=1, url="http://placeholder/"), [A])
    r = run(capsys, "pinset", "check-update", save(tmp_path, 4, bad), "--site", site, "--json")
    verdicts = {v["serial"]: v for v in r.json()["site"]["reach"]}
    assert r.status == 1 and set(verdicts) == {1, 2, 3}
    assert [verdicts[s]["reaches"] for s in (1, 2, 3)] == [True, False, False]
    # publish refuses it whatever the flags: lay the site out as it would, to serve it
    plan = sitemod.Plan(sitemod.Site(str(site), NAME), sitemod.Release(bad, "bad"))
    assert plan.refusals and plan.files
    sitemod.write(str(site), plan.files, plan.order)
    server = SiteHTTP(str(site))
    try:
        url = server.url + NAME
        for serial, payload, _ in made:
            steps = [write(payload), {"op": "fetch", "url": url, "timeout": 20}, {"op": "read", "name": "certpin.json"}]
            res, _ = run_steps(runtime, tmp_path, steps, name="dev%d" % serial)
            got = res[1]
            v = verdicts[serial]
            assert got["ok"] == v["reaches"], (serial, got, v)
            if got["ok"]:
                assert got["serial"] == 4
            else:
                assert got["reason"] == v["reason"], (serial, got, v)
            assert json.loads(res[2])["serial"] == v["ends_on"], (serial, res[2][:80], v)
    finally:
        server.stop()


class SiteHTTP:
    """A plain HTTP file server over a directory (http.server), on 127.0.0.1."""

    def __init__(self, root):
        import functools
        import http.server

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.t.join(5)


def test_check_update_site_when_all_reach_and_with_current_too(capsys, tmp_path, site):
    made = chain()
    for serial, _, bundle in made[:5]:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    nxt = save(tmp_path, 6, made[5][2])
    held = save(tmp_path, 5, made[4][2])  # a device's release, as the operator kept it: the bundle
    r = run(capsys, "pinset", "check-update", nxt, "--site", site, "--current", held)
    assert r.status == 0, r
    assert "%s is a bundle: checking against its payload" % held in r.out and "installs it: serial 5 -> 6" in r.out
    assert "5 of 5 reach it" in r.out
    assert "serial 1 (key set %s): reach it: %s -> " % (keyset_id([A], 1)[:12], NAME) in r.out
    r = run(capsys, "pinset", "check-update", nxt, "--site", site, "--current", held, "--json")
    doc = r.json()
    assert r.status == 0 and doc["current_read"] == "bundle" and doc["ok"] is True and doc["serial_to"] == 6
    assert doc["site"]["status"] == "ok" and doc["site"]["stranded"] == [] and len(doc["site"]["reach"]) == 5
    # release 2's keys did not sign 6: directly, a device holding it refuses it; through the site it walks
    old = save(tmp_path, 2, made[1][2])
    r = run(capsys, "pinset", "check-update", nxt, "--site", site, "--current", old)
    assert r.status == 1 and "REFUSES it (unknown_key)" in r.out and "5 of 5 reach it" in r.out, r
    r = run(capsys, "pinset", "check-update", nxt, "--current", made[1][1] and _pinset_file(tmp_path, made[1][1]))
    assert r.status == 1 and "is a bundle" not in r.out


def _pinset_file(tmp_path, payload):
    p = tmp_path / "held.json"
    p.write_bytes(payload)
    return p


def hostile_bundles():
    payload = jws.pinset(2, [A])
    good = jws.bundle(payload, [A])
    doc = json.loads(good)
    return {
        "truncated": good[: len(good) // 2],
        "garbled": good.replace(b'"signatures"', b'"signaturez"'),
        "oversized": jws.bundle(jws.pinset(2, [A], extra={"hosts": {"h%d.example.com" % i: {"pins": [
            "sha256/%043d=" % i, "sha256/%043d=" % (i + 1000)]} for i in range(300)}}), [A]),
        "33 signatures": json.dumps(dict(doc, signatures=doc["signatures"] * 33)).encode(),
        "not utf-8": good.replace(b'"payload"', b'"pa\xffyload"'),
        "payload not a pinset": jws.bundle(b'{"format": 1, "serial": 2, "hosts": {}}', [A]),
        "no serial": jws.bundle(json.dumps({"format": 1, "hosts": json.loads(payload)["hosts"]}).encode(), [A]),
        "unsigned": json.dumps({"payload": doc["payload"], "signatures": []}).encode(),
        "forged signature": jws.bundle(payload, [A], sig=b"\x01" * 64),
        "signed by a stranger": jws.bundle(payload, [E]),
        "a replay of release 1": None,
    }


@pytest.mark.parametrize("case", sorted(hostile_bundles()))
def test_hostile_bundles_are_refused_and_leave_the_site_unchanged(capsys, tmp_path, site, case):
    serial, payload, first = chain()[0]
    assert publish(capsys, tmp_path, site, serial, first).status == 0
    before = files_of(site)
    bad = hostile_bundles()[case] or first.replace(b"}", b" }", 1)  # release 1's bytes, reformatted
    for extra in ((), ("--force",)):
        r = publish(capsys, tmp_path, site, 2, bad, *extra)
        assert r.status == 1, (case, r)
        assert "Traceback" not in r.err and r.err.startswith("certpin: pinset: "), r.err
        assert files_of(site) == before, case
    r = run(capsys, "pinset", "check-update", save(tmp_path, 2, bad), "--site", site)
    assert r.status == 1 and "Traceback" not in r.err, r


def test_a_tampered_site_is_refused_or_repaired(capsys, tmp_path, site):
    made = chain()
    for serial, _, bundle in made[:3]:
        assert publish(capsys, tmp_path, site, serial, bundle).status == 0
    good = files_of(site)
    # a catch-up file replaced (by hand, or by an attacker with access to the server's copy):
    # publishing again rewrites it from the history
    kid = "%s.d/%s.jws" % (NAME, keyset_id([A], 1))
    (site / kid).write_bytes(made[0][2])
    r = publish(capsys, tmp_path, site, 3, made[2][2])
    assert r.status == 0 and "wrote %s (replaced" % os.path.join(str(site), kid) in r.out, r
    assert files_of(site) == good
    # the history itself damaged: refused, with what to do
    (site / NAME).with_name(NAME + ".d").joinpath("releases", "2.jws").write_bytes(b"garbage")
    r = publish(capsys, tmp_path, site, 4, made[3][2])
    assert r.status == 2 and "history is damaged" in r.err and "restore" in r.err, r
    assert files_of(site)[NAME] == good[NAME]


def test_usage_mistakes_and_damaged_sites_are_exit_2_with_what_to_do(capsys, tmp_path, site):
    serial, _, bundle = chain()[0]
    b = save(tmp_path, serial, bundle)
    r = run(capsys, "pinset", "publish", b, tmp_path / "nope")
    assert r.status == 2 and "no such directory" in r.err and "mkdir" in r.err
    r = run(capsys, "pinset", "publish", tmp_path / "missing.jws", site)
    assert r.status == 2 and "no such file" in r.err
    r = run(capsys, "pinset", "check-update", b)
    assert r.status == 2 and "--current" in r.err and "--site" in r.err
    garbage = tmp_path / "g" / NAME
    garbage.parent.mkdir()
    garbage.write_bytes(b'{"payload": "x", "signatures": []}')
    r = run(capsys, "pinset", "publish", garbage, site)
    assert r.status == 1 and "not a bundle a device reads" in r.err and files_of(site) == {}
    assert run(capsys, "pinset", "publish", b, site).status == 0
    os.rename(os.path.join(str(site), NAME + ".d", "releases", "1.jws"),
              os.path.join(str(site), NAME + ".d", "releases", "7.jws"))
    r = run(capsys, "pinset", "publish", save(tmp_path, 2, chain()[1][2]), site)
    assert r.status == 2 and "history is damaged" in r.err, r
    assert "Traceback" not in r.err


def test_a_site_published_by_hand_is_adopted_and_a_concurrent_publish_waits_its_turn(capsys, tmp_path, site):
    made = chain()
    (site / NAME).write_bytes(made[1][2])  # serial 2, uploaded by hand before publish existed
    r = publish(capsys, tmp_path, site, 3, made[2][2])
    assert r.status == 0, r
    assert "has no history" in r.out and "taken as the first one published" in r.out
    assert files_of(site)["%s.d/releases/2.jws" % NAME] == made[1][2]
    fd = os.open(str(site), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = run_subprocess("pinset", "publish", save(tmp_path, 4, made[3][2]), site)
        assert r.status == 2 and "another `certpin pinset publish` is writing" in r.err, r
    finally:
        os.close(fd)


def test_name_and_a_url_that_does_not_name_the_site_file(capsys, tmp_path, site):
    b = jws.bundle(jws.pinset(1, [A], url="https://u.example.com/other.jws"), [A])
    p = tmp_path / "release-1.jws"
    p.write_bytes(b)
    r = run(capsys, "pinset", "publish", p, site, "--name", NAME)
    assert r.status == 0, r
    assert "does not end in /%s" % NAME in r.out
    assert (site / NAME).read_bytes() == b


def test_help_lists_publish(capsys):
    r = run(capsys, "pinset", "--help")
    assert "publish" in r.out
    r = run(capsys, "pinset", "publish", "--help")
    assert r.status == 0 and "NAME.d/<keyset-id>.jws" in r.out and "--force" in r.out
    r = run(capsys, "--help")
    assert "pinset publish" in r.out
