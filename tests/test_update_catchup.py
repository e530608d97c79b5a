"""A device that missed releases and signing-key rotations catches up in ONE fetch_update() (issue 16).

A site directory laid out as docs/updates.md says (built by
tests/support/catchup_site.py, served by a real HTTP server on 127.0.0.1),
devices on both runtimes holding any earlier release. Counted: the requests
the server saw, the P-256 verifications the device made, against the bounds
docs/updates.md states. Then a hostile site (old bundles, truncated,
reordered, looping or endless paths, forged and mixed bundles, a catch-up file
of another key set, huge files, stalls, 404s, garbage): nothing the rules
refuse is installed, the device never goes back, the bounds hold, and the
UpdateError's reason says what happened.
"""
import json
import os

import pytest

from support import jws
from support.catchup_site import Site, keyset_id
from support.update_servers import SiteServer
from test_update import run_steps, write

MAX_STEPS = 32
KEYS = {n: jws.new_key() for n in "ABCDEFGH"}
TIMEOUT = 10


def ks(names):
    return [KEYS[n] for n in names]


def chain(spec):
    """spec: [(keys, threshold, signers, pinset kw)] -> [(serial, pinset bytes, bundle bytes)], serials from 1."""
    out = []
    for i, (keys, t, signers, kw) in enumerate(spec):
        p = jws.pinset(i + 1, ks(keys), threshold=t, **kw)
        out.append((i + 1, p, jws.bundle(p, ks(signers))))
    return out


OLD = {"issued": "2025-01-10", "expires": "2025-06-01"}


def scenarios():
    """name: (releases spec, [(held serial, floor or None, final serial, requests, verifications)])"""
    return {
        # 1-of-1, three rotations A -> B -> C -> D, a release between each
        "rotations-1of1": ([("A", 1, "A", {}), ("A", 1, "A", {}), ("B", 1, "AB", {}), ("B", 1, "B", {}),
                            ("C", 1, "BC", {}), ("C", 1, "C", {}), ("D", 1, "CD", {}), ("D", 1, "D", {})],
                           [(8, None, 8, 1, 0), (7, None, 8, 1, 1), (6, None, 8, 3, 3), (4, None, 8, 4, 5),
                            (2, None, 8, 5, 7), (1, None, 8, 5, 7)]),
        # 2-of-3, threshold lowered, one key swapped, then all but one swapped (2-of-3 again)
        "thresholds-2of3": ([("ABC", 2, "AB", {}), ("ABC", 1, "AB", {}), ("ABC", 1, "C", {}), ("ABD", 2, "AD", {}),
                             ("CDE", 2, "BDE", {}), ("CDE", 2, "CE", {})],
                            [(1, None, 6, 4, 5), (3, None, 6, 1, 2), (4, None, 6, 3, 5), (5, None, 6, 1, 2)]),
        # A -> B -> A
        "rotate-back": ([("A", 1, "A", {}), ("B", 1, "AB", {}), ("A", 1, "BA", {}), ("A", 1, "A", {})],
                        [(2, None, 4, 3, 3), (1, None, 4, 1, 1), (3, None, 4, 1, 1)]),
        # a device that slept a year: its pinset and both rotations it missed have expired
        "expired-intermediates": ([("A", 1, "A", OLD), ("B", 1, "AB", {"issued": "2025-02-01", "expires": "2025-07-01"}),
                                   ("C", 1, "BC", {"issued": "2025-03-01", "expires": "2025-08-01"}), ("C", 1, "C", {})],
                                  [(1, None, 4, 4, 5), (2, None, 4, 3, 3)]),
        # the held pinset expired (its floor is past expires), the rotation after it is in force
        "expired-held": ([("A", 1, "A", {"issued": "2026-01-01", "expires": "2026-02-01"}), ("B", 1, "AB", {}),
                          ("B", 1, "B", {})],
                         [(1, "2026-03-01", 3, 3, 3)]),
    }


def bound(requests):
    # docs/updates.md: at most MAX_STEPS catch-up requests after the newest release's
    return requests <= MAX_STEPS + 1


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    out = {}
    for name, (spec, devices) in scenarios().items():
        rel = chain(spec)
        site = Site(root / name)
        for _, _, b in rel:
            site.publish(b)
        out[name] = (site, rel, devices)
    return out


def fetch(url, timeout=TIMEOUT):
    return {"op": "fetch", "url": url, "timeout": timeout}


def test_site_layout_and_key_set_ids(sites):
    # the test-side builder and the device agree on key-set ids and catch-up URLs
    from certpin import _fetch, _update

    site, rel, _ = sites["rotations-1of1"]
    names = sorted(os.listdir(site.path("fleet.jws.d")))
    ids = {keyset_id(json.loads(p)["update"]["keys"], 1) for _, p, _ in rel}
    assert names == sorted([i + ".jws" for i in ids] + ["releases"])
    assert sorted(os.listdir(site.path("fleet.jws.d/releases"))) == sorted("%d.jws" % s for s, _, _ in rel)
    for _, p, _ in rel:
        u = json.loads(p)["update"]
        assert _update.keyset_id(u) == keyset_id(u["keys"], u["threshold"])
    assert _update.keyset_id({"keys": ["b", "a"], "threshold": 2}) != _update.keyset_id({"keys": ["a", "b"], "threshold": 1})
    assert _fetch.catchup_url("http://h/p/fleet.jws?x=1#y", "ab") == "http://h/p/fleet.jws.d/ab.jws"
    assert _fetch.catchup_url("https://h:8443/fleet.jws#f", "ab") == "https://h:8443/fleet.jws.d/ab.jws"


def test_a_device_catches_up_in_one_call(runtime, tmp_path, sites):
    servers = []
    steps = []
    cases = []
    try:
        for name, (site, rel, devices) in sorted(sites.items()):
            for held, floor, final, requests, verified in devices:
                srv = SiteServer(site.root).start()
                servers.append(srv)
                steps += [{"op": "remove", "name": "certpin.floor"}, write(rel[held - 1][1])]
                if floor:
                    steps.append(write(floor + "\n", "certpin.floor"))
                steps += [fetch(srv.url()), {"op": "read", "name": "certpin.json"}]
                cases.append((name, held, final, requests, verified, srv, len(steps) - 2, rel))
        out, _ = run_steps(runtime, tmp_path, steps)
    finally:
        for s in servers:
            s.stop()
    wrong = []
    for name, held, final, requests, verified, srv, i, rel in cases:
        r, after = out[i], out[i + 1]
        got = (r.get("serial") if r["ok"] else r["reason"], len(srv.log), r["verified"])
        if got != (final, requests, verified) or after != rel[final - 1][1].decode() or not bound(len(srv.log)) \
                or r["changed"] != (final != held):
            wrong.append((name, "held", held, "got", got, "want", (final, requests, verified), srv.paths(), r))
    assert wrong == [], wrong
    # the check-in: each request names the serial installed at that moment
    site, rel, _ = sites["rotations-1of1"]
    srv = [c[5] for c in cases if c[0] == "rotations-1of1" and c[1] == 2][0]
    uas = [ua for _, ua, _ in srv.log]
    assert uas == ["certpin/0.1.0 serial/%d" % n for n in (2, 2, 3, 5, 7)], uas
    # the walk: the newest release, then the catch-up file of each key set held
    assert srv.paths() == ["fleet.jws"] + [site.catchup(ks(k), 1) for k in "ABCD"], srv.paths()


# ---------------------------------------------------------------- a hostile site


def mixed(payload_from, signatures_from):
    """The payload of one bundle with the signatures of another."""
    a, b = json.loads(payload_from), json.loads(signatures_from)
    return json.dumps({"payload": a["payload"], "signatures": b["signatures"]}).encode()


def forged(bundle):
    d = json.loads(bundle)
    for s in d["signatures"]:
        s["signature"] = jws.b64url(b"\x05" * 64)
    return json.dumps(d).encode()


def hostile_cases(sites):
    """(name, site, held, overrides, reason, installed serial after, requests, timeout)"""
    site, rel, _ = sites["rotations-1of1"]
    b = {s: bundle for s, _, bundle in rel}
    n = "fleet.jws"
    fa, fb, fc = (site.catchup(ks(k), 1) for k in "ABC")
    old, _, _ = sites["expired-intermediates"]
    old_c = old.catchup(ks("C"), 1)
    return [
        ("newest-404", site, 2, {n: "notfound"}, "fetch", 2, 1, TIMEOUT),
        ("newest-replays-an-old-release", site, 2, {n: ("ok", b[1])}, "rollback", 2, 1, TIMEOUT),
        ("catchup-replays-an-old-release", site, 2, {fa: ("ok", b[1])}, "rollback", 2, 2, TIMEOUT),
        ("truncated-path", site, 2, {fc: "notfound"}, "unknown_key", 5, 4, TIMEOUT),
        ("reordered-path", site, 2, {fa: ("ok", b[5])}, "unknown_key", 2, 2, TIMEOUT),
        ("step-that-does-not-rotate", site, 1, {fa: ("ok", b[2])}, "catchup", 2, 2, TIMEOUT),
        ("step-that-does-not-move", site, 2, {fa: ("ok", b[2])}, "unknown_key", 2, 2, TIMEOUT),
        ("path-loops-on-itself", site, 2, {fb: ("ok", b[3])}, "catchup", 3, 3, TIMEOUT),
        ("path-loops-back", site, 2, {fc: ("ok", b[3])}, "unknown_key", 5, 4, TIMEOUT),
        ("mixed-payload-and-signatures", site, 2, {fb: ("ok", mixed(b[5], b[4]))}, "bad_signature", 3, 3, TIMEOUT),
        ("forged-signatures", site, 2, {fb: ("ok", forged(b[5]))}, "bad_signature", 3, 3, TIMEOUT),
        ("catchup-file-of-another-key-set", site, 2, {fa: ("ok", b[7])}, "unknown_key", 2, 2, TIMEOUT),
        ("huge-catchup-file", site, 2, {fb: "huge"}, "fetch", 3, 3, TIMEOUT),
        ("garbage-not-http", site, 2, {fc: "garbage"}, "fetch", 5, 4, TIMEOUT),
        ("garbage-body", site, 2, {fc: ("ok", os.urandom(3000))}, "not_jws", 5, 4, TIMEOUT),
        ("chunked-catchup-file", site, 2, {fb: ("chunked", b[5])}, "fetch", 3, 3, TIMEOUT),
        ("stall", site, 2, {fb: "stall"}, "fetch", 3, 3, 3),
        # every answer takes 0.8 s: the deadline is the call's, not each request's
        ("slow-everything", site, 2, {p: "slow" for p in (n, fa, fb, fc)}, "fetch", (2, 3), (2, 3), 2),
        # expired intermediates are never installed: a path cut after them leaves the held pinset
        ("expired-intermediates-then-404", old, 1, {old_c: "notfound"}, "unknown_key", 1, 4, TIMEOUT),
    ]


def test_a_hostile_site_never_makes_a_device_go_back_or_install_what_the_rules_refuse(runtime, tmp_path, sites):
    cases = hostile_cases(sites)
    pinsets = {id(site): {s: p for s, p, _ in rel} for site, rel, _ in sites.values()}  # serial -> pinset bytes
    servers, steps, index = [], [], []
    try:
        for name, site, held, overrides, reason, after, requests, timeout in cases:
            srv = SiteServer(site.root, delay=0.8).start()
            srv.overrides = overrides
            servers.append(srv)
            steps += [{"op": "remove", "name": "certpin.floor"}, write(pinsets[id(site)][held]), fetch(srv.url(), timeout),
                      {"op": "read", "name": "certpin.json"}]
            index.append(len(steps) - 2)
        out, _ = run_steps(runtime, tmp_path, steps)
    finally:
        for s in servers:
            s.stop()
    wrong = []
    for (name, site, held, overrides, reason, after, requests, timeout), srv, i in zip(cases, servers, index):
        r, text = out[i], out[i + 1]
        now = [s for s, p in pinsets[id(site)].items() if p.decode() == text]  # the genuine release it holds
        afters = after if isinstance(after, tuple) else (after,)
        reqs = requests if isinstance(requests, tuple) else (requests,)
        problems = []
        if r["ok"] or r["type"] != "UpdateError" or r["reason"] != reason:
            problems.append("outcome")
        if len(now) != 1 or now[0] not in afters or now[0] < held:
            problems.append("installed %s" % now)
        if len(srv.log) not in reqs or not bound(len(srv.log)):
            problems.append("requests %d" % len(srv.log))
        if r["verified"] > 2 * len(srv.log):  # <= |old keys + new keys| per bundle (1-of-1: 2)
            problems.append("verifications %d" % r["verified"])
        if r["seconds"] > timeout + 5:
            problems.append("took %.1f s" % r["seconds"])
        if problems:
            wrong.append((name, problems, r.get("reason"), r.get("message", "")[:300], srv.paths()))
    assert wrong == [], wrong
    # the messages say where: the step's URL for a refused catch-up file
    by = {c[0]: out[i] for c, i in zip(cases, index)}
    assert ".d/" in by["truncated-path"]["message"] and "not there" in by["truncated-path"]["message"]
    assert "catch-up step 2" in by["mixed-payload-and-signatures"]["message"]
    assert "not the newest release" in by["path-loops-on-itself"]["message"]


def test_an_endless_path_stops_at_max_steps_and_the_next_call_goes_on(runtime, tmp_path):
    # 35 genuine 1-of-1 rotations in a row: more than one call may walk. The
    # first call stops after MAX_STEPS catch-up requests with reason
    # "catchup", holding the progress it installed; the next call finishes.
    keys = [jws.new_key() for _ in range(36)]
    site = Site(tmp_path / "site")
    rel = []
    for i in range(36):
        p = jws.pinset(i + 1, [keys[i]])
        rel.append(p)
        site.publish(jws.bundle(p, [keys[max(0, i - 1)], keys[i]] if i else [keys[0]]))
    srv = SiteServer(site.root).start()
    try:
        out, _ = run_steps(runtime, tmp_path, [write(rel[0]), fetch(srv.url(), 60), {"op": "read", "name": "certpin.json"},
                                               fetch(srv.url(), 60), {"op": "read", "name": "certpin.json"}])
    finally:
        srv.stop()
    first, second = out[1], out[3]
    assert first["ok"] is False and first["reason"] == "catchup", first
    assert out[2] == rel[32].decode(), "the first call keeps the 32 steps it made (serial 33)"
    assert second["ok"] and second["serial"] == 36 and out[4] == rel[35].decode(), second
    assert len(srv.log) == (1 + MAX_STEPS) + (1 + 4), len(srv.log)
    assert first["verified"] <= 2 * (1 + MAX_STEPS)
