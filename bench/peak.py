# THE measure of "the peak heap of an operation", in one place: every bench of
# certpin uses it (bench/run.py: an update, a fetch_update, a catch-up walk;
# bench/fleet.py: the fleet's worst catch-up, a one-release fetch_update, the
# same release by certpin.update(bytes); bench/p256_bench.py: one ES256 verify;
# bench/mcu.py: the emulated boards, which send this file's text to the guest).
# Device code: runs on the MicroPython unix port (64-bit and 32-bit builds) and
# on the emulated boards, imported or pasted before the bench sets its state up.
#
#   peak(S, reset=None) -> bytes
#
# The least FREE heap in which S() succeeds (returns True), from the state the
# bench set up: certpin imported, the pinset loaded and held (as a device
# holds it), S's inputs in RAM where a device would hold them (an update()'s
# bundle bytes; a fetch_update() reads its own). reset() puts back the files
# S changes (the pinset, its floor file, the failure journal).
#
# How: before each try reset() runs, the GC collects, and ballast fills the
# heap first fit, from the bottom, until F bytes are free: bytearrays of 88
# bytes (112 B of GC blocks on a 32-bit port, 128 B on a 64-bit one), then
# floats (one 16-byte GC block each) for the holes smaller than those. What is
# left is F bytes in one region at the top, as in a heap exactly F bytes
# larger than what is in use. Then S() runs; MemoryError (or an UpdateError
# saying memory, or anything else) is a failure. For one search, the figure
# is the least F, in 64-byte steps, for which S() succeeds at F and at every
# F + 128 k up to F + 1 KB: success is not monotonic in F (a heap a few
# hundred bytes larger fragments differently), so the band above is checked
# and the figure rises past its last failure.
#
# The searches: S() runs once with the whole heap free (the names it uses
# are interned for good then: the figure is what every later call needs; the
# first call after boot needs their qstrs too, counted by the retained-RAM
# rows), then one whole search whose figure is dropped (what only runs short
# of RAM has run too: the failure journal's names and RAM state), then one
# search for each call depth in DEPTHS, S() called that many frames deeper,
# and the figure is the largest. The GC scans the C stack conservatively, and
# what it finds left over from earlier calls (stale pointers that keep garbage
# alive, and so fragment the heap) differs with the depth: measured on the
# unix port, one depth's figure for a catch-up walk moves by 2-4 KB with the
# depth or with a few bytes more or less in use before it. The largest of
# four is what a bench can repeat; a device can need a little more.
#
# Not the difference of two minimal -X heapsize values (bench/run.py's old
# "peak heap of an update": the smaller heap already had room for what
# load() needs, most of the same code, so that difference hid most of an
# update's code), nor ballast in large pieces (which leaves the heap's own
# holes free and counts them).
import gc

_BAL = []
DEPTHS = (0, 1, 2, 3)


def _scrub(n):
    # Overwrite stale C-stack slots: the GC scans the stack conservatively,
    # and a stale pointer keeps garbage alive.
    a = [0] * 16
    return _scrub(n - 1) if n else len(a)


def _fill(free):
    _scrub(8)
    gc.collect()
    k = 0
    while k < len(_BAL):  # the bulk, in pieces of 112 B (32-bit) / 128 B (64-bit)
        m = gc.mem_free() - free
        if m < 224:
            break
        for _ in range(min(m // 128 + 1, len(_BAL) - k)):
            _BAL[k] = bytearray(88)
            k += 1
    x = 0.5
    while k < len(_BAL) and gc.mem_free() > free:  # then one GC block at a time (a float is one):
        _BAL[k] = x + k  # the small holes below first, so that what is left free is one region
        k += 1


def _deep(S, n):
    # S() called n frames deeper: what the conservative scan of the C stack
    # finds left over from earlier calls differs with the depth.
    return _deep(S, n - 1) if n else S()


def fits(S, free, reset=None, depth=0):
    """Whether S() succeeds with `free` bytes of heap free (called `depth` frames deeper)."""
    if reset:
        reset()
    _fill(free)
    try:
        ok = _deep(S, depth) is True
    except Exception:  # MemoryError; certpin turns one into an UpdateError(reason memory) by design
        ok = False
    for k in range(len(_BAL)):
        _BAL[k] = None
    return ok


def _search(S, reset, depth, hi, step):
    if not fits(S, hi, reset, depth):
        raise RuntimeError("S() fails with %d bytes free" % hi)
    lo = 0
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if fits(S, mid, reset, depth):
            hi = mid
        else:
            lo = mid
    d = 128
    while d <= 1024:
        if fits(S, hi + d, reset, depth):
            d += 128
        else:
            hi += d
            d = 128
    return hi


def peak(S, reset=None, warm=True, depths=DEPTHS, hi=131072, step=64):
    """The least free heap S() succeeds in (see the top of this file), in bytes.
    warm: run S() once first (its names interned); False when the caller has."""
    global _BAL
    if warm:
        if reset:
            reset()
        if S() is not True:
            raise RuntimeError("S() fails with the whole heap free")
    if reset:
        reset()
    gc.collect()
    _BAL = [None] * (gc.mem_free() // 96 + 64)
    try:
        _search(S, reset, 0, hi, step)  # a whole search first: what only runs short of RAM has run (the journal)
        r = 0
        for d in depths:
            r = max(r, _search(S, reset, d, hi, step))
        return r
    finally:
        _BAL = []
        if reset:
            reset()
