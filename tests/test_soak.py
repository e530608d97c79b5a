"""Soak: many pinned handshakes in ONE MicroPython unix-port process; the heap stays flat.

CERTPIN_SOAK_COUNT handshakes (default 100; `make soak` runs 1000) against a
local server, every 10th against a server with an unpinned key (must be
refused, so the failure path is soaked too). Heap in use is read with
gc.mem_alloc() right after gc.collect(), after a warm-up of 10 handshakes
and at ten checkpoints.

Threshold: MicroPython's GC is non-moving and conservative, so a few blocks
can stay reachable from stale stack words, and lazily created state (interned
strings, the failure-text module that is imported and dropped per refusal)
settles during the first connections. Any of those is a constant of a few
hundred bytes; a leak is per connection. So:
- the spread of the checkpoints (max - min) after warm-up <= 2 KiB: a leak of
  >= 20 bytes per handshake at the CI count of 100, or >= 2 bytes per
  handshake at 1000, breaks it;
- the end-to-end drift (last - first) <= 2 KiB as well.
One TLS connection's buffers alone are ~20 KiB, so a single leaked
connection could not hide under either bound.
"""
import json
import os

import pytest

from support.scenario import pinset_text
from support.servers import TLSServer

COUNT = int(os.environ.get("CERTPIN_SOAK_COUNT", "100"))
LIMIT = 2048


@pytest.fixture(params=["micropython"])
def soak_runtime(request):
    from conftest import Runtime

    return Runtime(request.param)


def test_soak_pinned_handshakes_heap_flat(soak_runtime, pki, tmp_path):
    servers = []
    for leaf in (pki.genuine, pki.rogue_leaf):
        chain, key = leaf.write(pki.dir)
        servers.append(TLSServer(chain, key, name=leaf.name).start())
    genuine, rogue = servers
    try:
        cfg = {
            "pinset_text": pinset_text({"localhost": [pki.genuine.pin, pki.rotated.pin]}),
            "host": "localhost",
            "port": genuine.port,
            "rogue_port": rogue.port,
            "count": COUNT,
            "warmup": 10,
            "rogue_every": 10,
        }
        path = str(tmp_path / "soak.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = soak_runtime.run("soak.py", path, timeout=60 + COUNT * 0.5)
    finally:
        for s in servers:
            s.stop()
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "soak died: rc=%s\n%s\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    r = json.loads(lines[-1])
    heap = [m for _, m in r["samples"]]
    drift = heap[-1] - heap[0]
    spread = max(heap) - min(heap)
    print("\nsoak on %s: %d handshakes (+%d warm-up) in %.1f s, %d pinned OK, %d rogue refused; "
          "heap in use after warm-up %d B, at end %d B, drift %+d B, spread %d B; checkpoints %s" % (
              r["runtime"], r["count"], r["warmup"], r["seconds"], r["ok"], r["refused"],
              heap[0], heap[-1], drift, spread, r["samples"]))
    assert r["errors"] == [], r["errors"]
    total = r["count"] + r["warmup"]
    assert r["ok"] + r["refused"] == total
    assert r["refused"] == total // 10
    assert len(heap) >= 11
    assert abs(drift) <= LIMIT, r["samples"]
    assert spread <= LIMIT, r["samples"]
