# The catch-up steps of certpin._fetch.walk (docs/updates.md, "Catching up"):
# loaded only when the newest release was refused as signed by keys the
# device does not hold (it slept through a signing-key rotation), and dropped
# again afterwards. Pure over the getter, like the walk; part of the driver:
# each step's request and check are phases (certpin._fetch._call).
import gc
import sys

from certpin import UpdateError
from certpin._fetch import MAX_STEPS, _fail, _low, _req, _step, _text, catchup_url, expired

_CPY = sys.implementation.name != "micropython"


def steps(t, get, url, today, save, first, b, st):
    # first: (reason, digest, message) of the newest release's refusal; b:
    # the bundle box; st: the walk's stats. See certpin._fetch.walk.
    n = st[2]
    last = None  # the last intermediate step: (Pinset, in force)
    for i in range(MAX_STEPS):
        # A step leaves its small results (the Trust and Pinset reached) among
        # its garbage, high in the heap: moved low (_low) and the old copies
        # collected, they no longer split the room the next step's phases
        # need (measured, 32-bit unix port, a walk through three rotations:
        # 30.8 -> 29.2 KB of peak heap).
        t, last = _low((t, last))
        if not _CPY:
            gc.collect()
        u = catchup_url(url, t.id)
        try:
            b[0] = _req(get, u, st)
        except UpdateError as e:
            _again(e, 20, url, first[0])  # while catching up
        if b[0] is None:
            _again(first, 21, u)  # no catch-up file
        try:
            r = _step(t, b, False, today, n)
        except UpdateError as e:
            _again(e, 23, i + 1, u)
        if r is None:  # the trusted release again
            if last is None:
                _again(first, 22, u)  # the catch-up file is the release held
            _expired(last[0], today)  # the walk ends on its last intermediate step
            return _end(first, t, last[0], url, st)
        data, new, nt = r
        r = None
        st[3].append(new.serial)
        if nt.id is None or nt.id == t.id:  # keeps the key set: the end
            _expired(new, today)
            if save:
                save(data, new, nt, True)
            return _end(first, nt, new, url, st)
        # Changes the key set: an intermediate step. Installed when in force
        # (progress that survives a power cut or a later failure); an expired
        # one is trusted in RAM only (installed, it could drop pins).
        f = not expired(new, today)
        if f and save:
            save(data, new, nt, False)
        last = (new, f)
        t = nt
        data = new = nt = None
    _fail("catchup", 24, MAX_STEPS, url, t.serial)


def _again(e, n, *a):
    # A refusal again (e: an UpdateError or its (reason, digest, message)),
    # its message completed by what the walk was doing (text n of certpin/_utext.py).
    r, m = (e.reason, e.args[0]) if isinstance(e, UpdateError) else (e[0], e[2])
    x = UpdateError(m + "\n  " + _text(n, a))
    x.reason = r
    raise x


def _expired(ps, today):
    d = expired(ps, today)
    if d:
        _fail("expired", 25, *((ps.serial,) + ps.expires + d))


def _end(first, t, ps, url, st):
    # The walk ended on ps (trusted as t). On a consistent site that is the
    # newest release (the one first refused): else the site's catch-up files
    # and its newest release disagree (a publish in progress, or a site that
    # withholds releases): say so.
    if t.digest != first[1]:
        _fail("catchup", 26, url, ps.serial)  # ended elsewhere
    return ps, st
