"""TUF's key-rotation conformance cases as sequences of signed pinsets (issue 16).

theupdateframework/tuf-conformance, tuf_conformance/test_updater_key_rotations.py,
drives a TUF client through tables of metadata versions, each given as the
keys it names, its threshold, the keys that sign it and whether the client
must accept it. A new root must verify with the previous root's keys and
threshold AND with its own (what certpin calls rules 4/5 and 6b); the other
roles' metadata must meet the threshold the trusted root names for them.

Here each root-rotation case is a sequence of pinsets: version 1 is the
installed pinset (flashed, as TUF's initial trusted root), versions 2..n are
bundles offered to certpin.update() one after another; every version but the
last must be accepted, the last as the table says, and the installed file
must be, byte for byte, the last version accepted. The non-root cases map to
a pinset that names the keys and threshold (as TUF's root names them for a
role) and a next release that keeps them, signed by the given keys. Both
runtimes. (The cases are transcribed from the suite's tables as data; no code
of the suite is used.)
"""
from support import jws
from test_update import run_steps, upd, write

SIGNERS = [jws.new_key() for _ in range(10)]

# name: [(keys, threshold, signers, accepted)], as in the suite's root_rotation_cases
ROOT_ROTATIONS = {
    "1-of-1-key-rotation": [([1], 1, [1], True), ([2], 1, [2, 1], True), ([2], 1, [2], True)],
    "1-of-1-key-rotation-unused-signatures": [([1], 1, [3, 1, 4], True), ([2], 1, [3, 2, 1, 4], True),
                                              ([2], 1, [3, 2, 4], True)],
    "3-of-5-sign-with-different-keycombos": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True), ([0, 1, 2, 3, 4], 3, [0, 4, 1], True),
                                             ([0, 1, 2, 3, 4], 3, [0, 1, 3], True), ([0, 1, 2, 3, 4], 3, [0, 1, 3], True)],
    "3-of-5-one-key-rotated": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True), ([0, 1, 3, 4, 5], 3, [0, 4, 1], True)],
    "3-of-5-one-key-rotated-with-intermediate-step": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True),
                                                      ([0, 1, 3, 4, 5], 3, [0, 2, 4, 5], True),
                                                      ([0, 1, 3, 4, 5], 3, [0, 4, 5], True)],
    "3-of-5-all-keys-rotated-with-intermediate-step": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True),
                                                       ([5, 6, 7, 8, 9], 3, [0, 2, 4, 5, 6, 7], True),
                                                       ([5, 6, 7, 8, 9], 3, [5, 6, 7], True)],
    "1-of-3-threshold-increase-to-2-of-3": [([1, 2, 3], 1, [1], True), ([1, 2, 3], 2, [1, 2], True)],
    "2-of-3-threshold-decrease-to-1-of-3": [([1, 2, 3], 2, [1, 2], True), ([1, 2, 3], 1, [1, 2], True),
                                            ([1, 2, 3], 1, [1], True)],
    "1-of-2-threshold-increase-to-2-of-2": [([1], 1, [1], True), ([1, 2], 2, [1, 2], True)],
    "1-of-1-key-rotation-fail-not-signed-with-old-key": [([1], 1, [1], True), ([2], 1, [2, 3, 4], False)],
    "1-of-1-key-rotation-fail-not-signed-with-new-key": [([1], 1, [1], True), ([2], 1, [1, 3, 4], False)],
    "3-of-5-one-key-rotate-fails-not-signed-with-3-new-keys": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True),
                                                               ([0, 1, 3, 4, 5], 3, [0, 2, 4], False)],
    "3-of-5-one-key-rotate-fails-not-signed-with-3-old-keys": [([0, 1, 2, 3, 4], 3, [0, 2, 4], True),
                                                               ([0, 1, 3, 4, 5], 3, [0, 4, 5], False)],
    "1-of-3-threshold-bump-to-2-of-3-fails-new-threshold-not-reached": [([1, 2, 3], 1, [1], True),
                                                                        ([1, 2, 3], 2, [2], False)],
    "2-of-3-threshold-decr-to-1-of-3-fails-old-threshold-not-eached": [([1, 2, 3], 2, [1, 2], True),
                                                                       ([1, 2, 3], 1, [1], False)],
}

# name: (keys, threshold, signers, accepted), as in the suite's non_root_rotation_cases
NON_ROOT = {
    "1-of-1-key-rotation": ([2], 1, [2], True),
    "1-of-1-key-rotation-unused-signatures": ([1], 1, [3, 1, 4], True),
    "1-of-1-key-rotation-fail-not-signed-with-new-key": ([2], 1, [1, 3, 4], False),
    "3-of-5-one-key-signature-wrong-not-signed-with-3-expected-keys": ([0, 1, 3, 4, 5], 3, [0, 2, 4], False),
    "2-of-5-one-key-signature-mising-threshold-not-reached": ([0, 1, 3, 4, 5], 3, [0, 4], False),
    "3-of-5-sign-first-combo": ([0, 1, 2, 3, 4], 3, [0, 2, 4], True),
    "3-of-5-sign-second-combo": ([0, 1, 2, 3, 4], 3, [0, 4, 1], True),
    "3-of-5-sign-third-combo": ([0, 1, 2, 3, 4], 3, [0, 1, 3], True),
    "3-of-5-sign-fourth-combo": ([0, 1, 2, 3, 4], 3, [1, 2, 3], True),
    "3-of-5-sign-fifth-combo": ([0, 1, 2, 3, 4], 3, [2, 3, 4], True),
}


def version(serial, keys, threshold, signers):
    p = jws.pinset(serial, [SIGNERS[i] for i in keys], threshold=threshold)
    return p, jws.bundle(p, [SIGNERS[i] for i in signers])


def sequences():
    """(name, [pinset bytes per version], [bundle per version], [accepted per version])"""
    out = []
    for name, versions in ROOT_ROTATIONS.items():
        made = [version(i + 1, k, t, s) for i, (k, t, s, _) in enumerate(versions)]
        out.append(("root/" + name, [m[0] for m in made], [m[1] for m in made], [v[3] for v in versions]))
    for name, (k, t, s, ok) in NON_ROOT.items():
        first = version(1, k, t, k[:t])
        nxt = version(2, k, t, s)
        out.append(("non-root/" + name, [first[0], nxt[0]], [first[1], nxt[1]], [True, ok]))
    return out


def test_tuf_key_rotation_cases(runtime, tmp_path):
    seqs = sequences()
    steps = []
    index = []  # (name, version, step index of its update, step index of the read after the sequence)
    for name, pinsets, bundles, accepted in seqs:
        steps.append(write(pinsets[0]))
        for v in range(1, len(pinsets)):
            index.append((name, v, len(steps)))
            steps.append(upd(bundles[v]))
        steps.append({"op": "read", "name": "certpin.json"})
    out, _ = run_steps(runtime, tmp_path, steps)
    wrong = []
    pos = 0
    for name, pinsets, bundles, accepted in seqs:
        last = 0
        for v in range(1, len(pinsets)):
            n, ver, i = index[pos]
            pos += 1
            r = out[i]
            if r["ok"] != accepted[v] or (r["ok"] and r["serial"] != v + 1):
                wrong.append((name, "version %d" % (v + 1), r.get("reason") or r.get("serial"), "expected",
                              "accepted" if accepted[v] else "refused"))
            if r["ok"]:
                last = v
            elif r["type"] != "UpdateError" or r["reason"] not in ("threshold", "unknown_key", "bad_signature",
                                                                   "new_threshold"):
                wrong.append((name, "version %d" % (v + 1), "refused for", r["reason"]))
        # the installed file is, byte for byte, the last version accepted
        if out[index[pos - 1][2] + 1] != pinsets[last].decode():
            wrong.append((name, "installed file is not version %d" % (last + 1)))
    assert wrong == [], wrong
    print("\n%s: %d TUF rotation sequences (%d root, %d non-root) with the suite's verdicts" % (
        runtime, len(seqs), len(ROOT_ROTATIONS), len(NON_ROOT)))
