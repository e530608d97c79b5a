"""The fleet simulation, small (bench/fleet.py; `make fleet` runs 1,000 devices).

Releases made and published with the certpin command line (signing-key and
server-key rotations, older releases expired by now), devices holding any
release and coming back at any time, each calling certpin.fetch_update() once
against a plain HTTP server over the site `certpin pinset publish` built: no
device is stranded, and what each costs grows with the rotations it missed, not
with the releases. On CPython, the unix port and the 32-bit build.
"""
import os
import sys

import pytest

from conftest import ROOT, firmware

sys.path.insert(0, os.path.join(ROOT, "bench"))
import fleet  # noqa: E402

DEVICES, RELEASES, ROTATIONS, SERVER_ROTATIONS = 28, 8, (3, 6), (5,)


@pytest.mark.parametrize("which", ["cpython", "micropython", "mp1.28-32"])
def test_a_small_fleet_strands_nobody_and_work_grows_with_rotations_missed(tmp_path, which):
    from certpin import _fetch

    runtime = firmware(which).path if which.startswith("mp1") else which
    lines = []
    s = fleet.run_fleet(str(tmp_path), DEVICES, RELEASES, ROTATIONS, SERVER_ROTATIONS, runtime=runtime, lib="src",
                        measure="resident", log=lines.append)
    fleet.report(s, log=lines.append)
    text = "\n".join(lines)
    rows = s["devices"]
    assert len(rows) == DEVICES and all(r is not None for r in rows)
    assert s["stranded"] == [], text
    assert s["unlogged"] == 0, text  # the server saw every request a device says it made
    assert s["signing_rotations"] == len(ROTATIONS) and s["missed_everything"] >= 1
    assert {r["rotations_missed"] for r in rows} >= {0, 1, 2}, "the assignment should cover every case"
    for r in rows:
        assert r["ok"] and r["serial"] is not None, r
        # one request for the newest release, then at most one per key set it passes and
        # one that ends the walk: a device that missed no rotation makes exactly one
        assert r["requests"] <= r["rotations_missed"] + 2 <= _fetch.MAX_STEPS + 2, r
        if r["rotations_missed"] == 0:
            assert r["requests"] == 1 and r["paths"] == ["/fleet.jws"], r
        assert r["verifies"] <= 5 * r["requests"], r  # at most one per key of the old and new sets
        assert r["bytes"] <= r["requests"] * (16384 + 4096)
        assert all(st == 200 for st in r["statuses"]), r
        assert len(r["paths"]) == r["requests"], r
        # the check-in (issue 17): the access log shows the serial each device held
        assert r["agents"] and all(a.startswith("certpin/") and " serial/" in a for a in r["agents"]), r
    # what a device does depends on the key set it holds and the site it meets, not on how
    # many releases it missed: devices of one key set that came back at the same time
    # made the same requests and verifications
    groups = {}
    for r in rows:
        if r["held"] < r["back"]:
            groups.setdefault((r["held_keyset"], r["back"]), set()).add((tuple(r["paths"]), r["verifies"]))
    assert groups and all(len(v) == 1 for v in groups.values()), groups
    if which != "cpython":
        h = s["heap"]
        assert h["retained"] == 0, text
        assert h["modules_after"] == ["certpin"], text
    assert "devices stranded: 0" in text
