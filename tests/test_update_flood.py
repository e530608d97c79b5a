"""The work a bundle can cause is bounded by the installed pinset, not by the sender (issue 15, item 4).

A bundle is read with at most 32 signature entries (more: not_jws, before any
verification); each update key of the installed pinset (rules 4/5) and of
the new pinset (rule 6b) is verified at most once, whatever number of entries
carry its kid, valid or not; verification stops as soon as a threshold is
reached. So the P-256 verifications of one bundle are at most the number of
distinct keys in the old and the new update sections (at most 32), and a
flood of entries carrying a real key id costs one verification per key.
Counted on both runtimes (tests/device/update_steps.py counts
certpin._p256.verify calls); the time is in `make bench`.
"""
import json

import pytest

from support import jws
from test_update import run_steps, upd, write

K = [jws.new_key() for _ in range(32)]


def entry(key, payload_b64, junk=False):
    return jws.signature(key, payload_b64, sig=(b"\x07" * 64) if junk else None)


def bundle(payload, entries):
    return json.dumps({"payload": jws.b64url(payload), "signatures": entries}, separators=(",", ":")).encode()


def small(serial, keys, threshold=1):
    # a compact pinset, so that 75 entries fit in a 16 KiB bundle as in the issue
    return json.dumps(json.loads(jws.pinset(serial, keys, threshold)), separators=(",", ":")).encode()


def most(payload, e):
    n = 1
    while len(bundle(payload, [e] * (n + 1))) <= 16384:
        n += 1
    assert n > 60, n
    return n


def cases():
    """(name, installed, bundle, reason or serial, verifications)"""
    one = small(1, [K[0]])
    nxt = small(2, [K[0]])
    p = jws.b64url(nxt)
    sixteen = jws.pinset(1, K[:16], threshold=16)
    nxt16 = jws.pinset(2, K[:16], threshold=16)
    p16 = jws.b64url(nxt16)
    rot = jws.pinset(2, K[16:], threshold=16)  # 16 other keys, all required
    pr = jws.b64url(rot)
    stranger = jws.new_key()
    return [
        # the flood: as many entries as 16 KiB holds (the issue: 75), the real key id, junk signatures
        ("flood_16k_of_entries", one, bundle(nxt, [entry(K[0], p, True)] * most(nxt, entry(K[0], p, True))),
         "not_jws", 0),
        ("33_entries", one, bundle(nxt, [entry(K[0], p)] * 33), "not_jws", 0),
        ("flood_32_junk_one_key", one, bundle(nxt, [entry(K[0], p, True)] * 32), "bad_signature", 1),
        ("junk_then_valid_same_key", one, bundle(nxt, [entry(K[0], p, True)] * 31 + [entry(K[0], p)]),
         "bad_signature", 1),
        ("valid_then_junk_stops_at_threshold", one, bundle(nxt, [entry(K[0], p)] + [entry(K[0], p, True)] * 31), 2, 1),
        ("unknown_kids_cost_nothing", one, bundle(nxt, [entry(stranger, p)] * 32), "unknown_key", 0),
        ("sixteen_keys_flooded", sixteen, bundle(nxt16, [entry(k, p16, True) for k in K[:16]] * 2), "bad_signature", 16),
        ("sixteen_keys_valid_plus_junk", sixteen, bundle(nxt16, [entry(k, p16) for k in K[:16]]
                                                        + [entry(k, p16, True) for k in K[:16]]), 2, 16),
        ("fifteen_valid_one_junk", sixteen, bundle(nxt16, [entry(k, p16) for k in K[:15]] + [entry(K[15], p16, True)] * 17),
         "threshold", 16),
        # rule 6b: the worst bundle any pinset allows: 16 old keys and 16 new ones, all verified once
        ("rotation_16_to_16_other_keys", sixteen, bundle(rot, [entry(k, pr) for k in K]), 2, 32),
        ("rotation_one_new_key_junk", sixteen, bundle(rot, [entry(k, pr) for k in K[:31]] + [entry(K[31], pr, True)]),
         "new_threshold", 32),
        # a key in both sections is verified once and counts for both
        ("rotation_overlapping_keys", jws.pinset(1, K[:2], threshold=2),
         bundle(jws.pinset(2, K[1:3], threshold=2), [entry(k, jws.b64url(jws.pinset(2, K[1:3], threshold=2)))
                                                      for k in K[:3]] * 2), 2, 3),
    ]


@pytest.fixture(scope="module")
def flood():
    return cases()


def test_verifications_are_bounded_by_the_pinsets_keys(runtime, tmp_path, flood):
    steps = []
    for name, installed, b, want, n in flood:
        assert len(b) <= 16384, (name, len(b))
        steps += [write(installed), upd(b), {"op": "read", "name": "certpin.json"}]
    out, _ = run_steps(runtime, tmp_path, steps)
    wrong = []
    for i, (name, installed, b, want, n) in enumerate(flood):
        r, after = out[3 * i + 1], out[3 * i + 2]
        got = r["serial"] if r["ok"] else r["reason"]
        if got != want or r["verified"] != n or (not r["ok"] and after != installed.decode()):
            wrong.append((name, got, r["verified"], "want", want, n))
    assert wrong == [], wrong
