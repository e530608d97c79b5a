# The catch-up walk (docs/updates.md, "Catching up"): from what a device
# trusts to the newest release, through the catch-up file of each key set it
# passes, so a device that slept through signing-key rotations reaches the
# newest release in one fetch_update() call.
#
#   walk(t, get, url, today=None, save=None) -> (Pinset or None, stats)
#   catchup_url(url, keyset_id) -> the catch-up file's URL
#
# Pure over get(url) -> bytes, None (no such file: HTTP 404), or an
# UpdateError (reason "fetch"): fetch_update() passes its HTTP getter, the
# host tool a getter over a site directory (certpin pinset publish,
# check-update --site), so the host simulates devices with this very code.
# Loaded for one fetch_update() and dropped afterwards.
from certpin import UpdateError
from certpin._update import MISSED, _fail, expired, step

MAX_STEPS = 32  # catch-up requests per call, after the newest release's


def catchup_url(url, kid):
    """url cut at its first "?" or "#", + ".d/" + kid + ".jws"."""
    for c in "?#":
        i = url.find(c)
        if i >= 0:
            url = url[:i]
    return url + ".d/" + kid + ".jws"


def _again(e, note):
    # e's refusal again, its message completed by what the walk was doing.
    x = UpdateError(e.args[0] + "\n  " + note)
    x.reason = e.reason
    raise x


def _expired(ps, today):
    d = expired(ps, today)
    if d:
        _fail("expired", "the newest release this device can reach (serial %d) expired on %04d-%02d-%02d "
              "(today is %04d-%02d-%02d)" % ((ps.serial,) + ps.expires + d))


def walk(t, get, url, today=None, save=None):
    """Bring the Trust t (certpin._update.trust()) to the newest release at url.

    1. get(url), the newest release, is checked as the final step (every
       rule). Accepted: saved, the end. Its payload is the trusted file:
       nothing changes. Refused as signed by keys t does not hold (MISSED:
       the device slept through a rotation): the walk. Any other refusal:
       raised.
    2. At most MAX_STEPS times: get(catchup_url(url, t.id)), the newest
       release the key set t trusts signed, checked against t. A release that
       keeps the key set is the end: final (rule 8), saved. One that changes
       it is an intermediate step (expiry not checked, as TUF treats
       intermediate roots): saved only when in force, then trusted. The
       trusted release again ends the walk on the last intermediate step
       (which must then be in force); right away, it means the site offers no
       path. No catch-up file (None): the newest release's refusal, naming
       the URL. Each step must raise the serial (rule 7), so a site cannot
       make the walk loop; more than MAX_STEPS: reason "catchup".

    save(data, pinset, trust, final) installs a step; None: nothing is
    written (the host's simulation). today: as for certpin._update.step.
    Returns (the Pinset reached, or None when nothing changed, stats) where
    stats = [requests, body bytes, P-256 verifications, [serials accepted]].
    """
    n = [0]
    st = [0, 0, n, []]
    b = _get(get, url, st)
    if b is None:
        e = UpdateError("pinset update not fetched: %s: not found (HTTP 404)" % url)
        e.reason = "fetch"
        raise e
    try:
        r = step(t, b, True, today, n)
    except UpdateError as e:
        if e.reason not in MISSED:
            raise
        first = e
    else:
        if r is None:
            return None, st
        st[3].append(r[1].serial)
        if save:
            save(r[0], r[1], r[2], True)
        return r[1], st
    b = r = None
    last = None  # the last intermediate step: (Pinset, in force)
    for i in range(MAX_STEPS):
        u = catchup_url(url, t.id)
        try:
            b = _get(get, u, st)
        except UpdateError as e:
            _again(e, "while catching up (the newest release at %s was refused: %s)" % (url, first.reason))
        if b is None:
            _again(first, "and the site offers no way on from this key set: %s is not there" % u)
        try:
            r = step(t, b, False, today, n)
        except UpdateError as e:
            _again(e, "catch-up step %d: %s" % (i + 1, u))
        b = None
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
    _fail("catchup", "more than %d catch-up steps from %s: the device keeps what it reached (serial %d); "
          "call again to go on", MAX_STEPS, url, t.serial)


def _end(first, t, ps, url, st):
    # The walk ended on ps (trusted as t, installed when save was given). On
    # a consistent site that is the newest release (the one first refused):
    # else the site's catch-up files and its newest release disagree (a
    # publish in progress, or a site that withholds): say so.
    if t.digest != first.digest:
        _fail("catchup", "the catch-up path from %s ended on serial %d, a genuine release (installed), but not the "
              "newest release the site serves there: its catch-up files and newest release disagree (a publish "
              "in progress, or a site that withholds releases); call again later", url, ps.serial)
    return ps, st


def _get(get, u, st):
    st[0] += 1
    b = get(u)
    if b is not None:
        st[1] += len(b)
    return b
