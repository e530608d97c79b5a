# The catch-up steps of certpin._fetch.walk (docs/updates.md, "Catching up"):
# loaded only when the newest release was refused as signed by keys the
# device does not hold (it slept through a signing-key rotation), and dropped
# again afterwards. Pure over the getter, like the walk.
import gc
import sys

from certpin import UpdateError
from certpin._fetch import MAX_STEPS, _req, catchup_url
from certpin._update import _fail, expired, step

_CPY = sys.implementation.name != "micropython"


def steps(t, get, url, today, save, first, b, st):
    # first: (reason, digest, message) of the newest release's refusal; b:
    # the bundle box; st: the walk's stats. See certpin._fetch.walk.
    n = st[2]
    last = None  # the last intermediate step: (Pinset, in force)
    for i in range(MAX_STEPS):
        if not _CPY:
            # A step leaves its small results (the Trust and Pinset reached)
            # among its garbage; collecting now lets the next step's bundle
            # and buffers find whole blocks (measured: `make bench`).
            gc.collect()
        u = catchup_url(url, t.id)
        try:
            b[0] = _req(get, u, st)
        except UpdateError as e:
            _again(e, "while catching up (the newest release at %s was refused: %s)" % (url, first[0]))
        if b[0] is None:
            _again(first, "and the site offers no way on from this key set: %s is not there" % u)
        try:
            r = step(t, b, False, today, n)
        except UpdateError as e:
            _again(e, "catch-up step %d: %s" % (i + 1, u))
        if r is None:  # the trusted release again
            if last is None:
                _again(first, "and the site's catch-up file for this key set, %s, is the release this device "
                       "holds" % u)
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
    _fail("catchup", "more than %d catch-up steps from %s: the walk got to serial %d; the device keeps what it "
          "installed, call again to go on", MAX_STEPS, url, t.serial)


def _again(e, note):
    # A refusal again (e: an UpdateError or its (reason, digest, message)),
    # its message completed by what the walk was doing.
    r, m = (e.reason, e.args[0]) if isinstance(e, UpdateError) else (e[0], e[2])
    x = UpdateError(m + "\n  " + note)
    x.reason = r
    raise x


def _expired(ps, today):
    d = expired(ps, today)
    if d:
        _fail("expired", "the newest release this device can reach (serial %d) expired on %04d-%02d-%02d "
              "(today is %04d-%02d-%02d)" % ((ps.serial,) + ps.expires + d))


def _end(first, t, ps, url, st):
    # The walk ended on ps (trusted as t). On a consistent site that is the
    # newest release (the one first refused): else the site's catch-up files
    # and its newest release disagree (a publish in progress, or a site that
    # withholds releases): say so.
    if t.digest != first[1]:
        _fail("catchup", "the catch-up path from %s ended on serial %d, a genuine release (installed), but not the "
              "newest release the site serves there: its catch-up files and newest release disagree (a publish "
              "in progress, or a site that withholds releases); call again later", url, ps.serial)
    return ps, st
