# Signed updates' entry points, update() and fetch_update(), and the catch-up
# walk (docs/updates.md): the driver. A call runs in phases, each with only
# its own code loaded: the rules (certpin._update, with _load and _p256), the
# transport (certpin._http), the install (certpin._floor). On a device each
# phase's modules are dropped when it ends (_call), so a call needs the heap
# of its heaviest phase plus this module and what it keeps between phases (a
# Trust, the installed Pinset, the first refusal), never the transport and
# the rules at once, nor, for a fetched bundle, the rules and the P-256 code
# (_step). Loaded for one call and dropped afterwards.
import gc
import sys
import time

from certpin import Pinset, UpdateError, _use

MAX_STEPS = 32  # catch-up requests per call, after the newest release's
# Refusals that mean "signed by keys this device does not hold (any more)":
# it missed a rotation, and the walk takes the catch-up path.
MISSED = ("unknown_key", "threshold", "bad_signature")
# A clock before this year is "not set yet" (no NTP): rule 8 then uses the floor alone.
CLOCK_FLOOR = 2026
_CPY = sys.implementation.name != "micropython"


def _call(m, f, *a):
    # certpin.<m>.<f>(*a), a phase. On a device every certpin module the call
    # loaded (m, and what m imported) is dropped when it returns or raises;
    # what was loaded before stays (this module, what the caller loaded, and
    # the modules certpin keeps once used: certpin._drop). Nothing of such a
    # module outlives the phase: results are bytes, tuples, Pinsets and
    # Trusts (a function or a class of the module would keep all of it).
    had = None if _CPY else list(sys.modules)
    n = "certpin." + m
    if had is not None:
        gc.collect()
    __import__(n)
    try:
        return getattr(sys.modules[n], f)(*a)
    finally:
        if had is not None:
            p = sys.modules["certpin"]
            for k in list(sys.modules):
                if k[:8] == "certpin." and k not in had and k[8:] not in ("_check", "_install", "_deferred", "_old"):
                    del sys.modules[k]
                    try:
                        delattr(p, k[8:])  # the import bound it in the package too
                    except AttributeError:
                        pass


class Trust:
    # What a device trusts, small: never a pinset's text beside a bundle
    # (certpin._update.trust() and step() make one).
    #   serial, floor: of the trusted pinset (floor: the latest authenticated
    #     date: the floor file, issued dates)
    #   keys, threshold, id: its update keys (lines), threshold, keyset_id;
    #     None, 0, None without an update section
    #   url: its update.url or None
    #   digest: SHA-256 of its file's bytes (rule 2a compares payloads with it)
    pass


def _text(n, a):
    # Text n of certpin/_utext.py, formatted with the arguments a: the texts
    # of refusals are loaded only for one. When they cannot be (a flash that
    # failed a write, no RAM), the refusal stands all the same, its text
    # named by number.
    try:
        from certpin._utext import T

        return T[n] % a if a else T[n]
    except Exception as e:
        return "text %d of certpin/_utext.py %r (not loaded: %r)" % (n, a, e)


def _fail(reason, n, *a):
    # An UpdateError saying why (_text).
    m = _text(n, a)
    e = UpdateError(("pinset update not fetched: " + m) if reason == "fetch" else
                    "pinset update refused (%s): %s" % (reason, m))
    e.reason = reason
    raise e


def run(path, url, f, *a):
    # The one place a refused update leaves certpin: update() and
    # fetch_update() run f(*a) through here, and every refusal is recorded in
    # the failure journal beside the pinset file at path (certpin/_journal.py;
    # url: fetch_update's url argument, None for the pinset's update.url, ""
    # for update(bundle)) before it reaches the caller.
    try:
        try:
            return f(*a)
        except (OSError, ImportError) as e:
            # The network is the getter's (reason fetch) and the install is
            # install()'s: an OSError here is the filesystem failing elsewhere (a
            # module of certpin that cannot be read any more, on a flash that
            # failed a write: its import fails with OSError or ImportError,
            # depending on where; the power-cut test of the catch-up walk on FAT
            # found both). A certpin.Error all the same, and the truth.
            _fail("write_failed", 0, e)
        except MemoryError:
            # Not a verdict on the bundle (the host tool would accept what a
            # device short of RAM cannot read): say what happened.
            _fail("memory", 1)
    except UpdateError as e:
        try:
            _use("_journal", "update", path, e, url)
        except Exception:  # importing the journal failed (the flash that failed the update, RAM): e stands
            pass
        raise


def update(bundle, path="/certpin.json"):
    return run(path, "", _apply, bundle, path)


def _apply(bundle, path):
    # The rules against the file at path (a phase, each P-256 verification a
    # phase inside it), then the install (another). Not _step's phases: the
    # caller holds the bundle anyway, and with the rules' code dropped and
    # loaded again around each verification this call's peak heap rose
    # (measured, 64-bit unix port: 34.3 -> 44.6 KB).
    r = _call("_update", "against", path, bundle)
    if type(r) is not tuple:
        return r  # the bundle carries the installed file: nothing changes
    # The floor never goes back: the old pinset's floor, moved up to the new issued date.
    _call("_floor", "save", path, r[0], r[1], r[2].floor)
    return r[1]


def _step(t, b, final, today=None, n=None):
    # certpin._update.step(t, b, final, today) in phases: the rules (with
    # _update and _load) up to the first P-256 verification they need, that
    # verification alone (_p256, the rules' code dropped), the rules again
    # from the bundle's parts with its verdict, and so on: the step's heap is
    # that of its heavier half, not of both. The same verdicts and
    # verifications as one step() (it is deterministic; each key is verified
    # at most once). b: [the bundle] (step() appends its parts), emptied
    # when the step ends (a refused bundle is not kept); n: [P-256
    # verifications], increased.
    k = {}
    try:
        while True:
            r = _call("_update", "step", t, b, final, today, None, k)
            if type(r) is not list:
                return r
            if not k:  # the parts step() made, moved low
                b[1] = _low(b[1])
            k[r[0]] = _call("_p256", "check", r[1], r[2], r[3])
            r = None
            if n is not None:
                n[0] += 1
    finally:
        b[0] = None
        del b[1:]  # the parts step() appended


def fetch_update(url=None, path="/certpin.json", timeout=10, cadata=None):
    return run(path, url, _fetch, url, path, timeout, cadata)


def _fetch(url, path, timeout, cadata):
    # The trusted state of the pinset file (small: no pinset text is kept),
    # the Pinset for a pinned update host, then the walk: the newest release,
    # and the catch-up files when the device missed a signing-key rotation.
    # c: what the requests share (certpin._http.get): the address, one
    # deadline for the whole call, the serial the check-in names.
    t, ps = _call("_update", "installed", path)
    if url is None:
        url = t.url
        if url is None:
            _fail("fetch", 2, path)  # no url
    c = [None, None, None, t.serial, timeout, None]

    def get(u):
        return _call("_http", "get", u, ps, cadata, c)

    def keep(data, new, nt, final):
        _call("_floor", "save", path, data, new, nt.floor)
        c[3] = new.serial

    new = walk(t, get, url, None, keep)[0]
    return (ps, False) if new is None else (new, True)


# ---- The walk (docs/updates.md, "Catching up") ----
# From what a device trusts to the newest release, through the catch-up file
# of each key set it passes, so a device that slept through signing-key
# rotations reaches the newest release in one fetch_update() call. Pure over
# get(url) -> bytes, None (no such file: HTTP 404), or an UpdateError (reason
# "fetch"): fetch_update() passes its HTTP getter, the host tool a getter over
# a site directory (certpin pinset publish, check-update --site), so the host
# simulates devices with this very code. One bundle is in RAM at a time, and
# what is trusted between steps is small (a Trust). The catch-up steps are
# certpin._catchup's, loaded only when a device missed a rotation.


def catchup_url(url, kid):
    """url cut at its first "?" or "#", + ".d/" + kid + ".jws"."""
    for c in "?#":
        i = url.find(c)
        if i >= 0:
            url = url[:i]
    return url + ".d/" + kid + ".jws"


def walk(t, get, url, today=None, save=None):
    """Bring the Trust t (certpin._update.trust()) to the newest release at url.

    1. get(url), the newest release, is checked as the final step (every
       rule). Accepted: saved, the end. Its payload is the trusted file:
       nothing changes. Refused as signed by keys t does not hold (MISSED:
       the device slept through a rotation): the catch-up steps
       (certpin._catchup.steps). Any other refusal: raised.
    2. At most MAX_STEPS times: get(catchup_url(url, t.id)), the newest
       release the key set t trusts signed, checked against t. A release that
       keeps the key set is the end: final (rule 8), saved. One that changes
       it is an intermediate step (expiry not checked, as TUF treats
       intermediate roots): saved only when in force, then trusted. The
       trusted release again ends the walk on the last intermediate step
       (which must then be in force); right away, it means the site offers no
       path. No catch-up file (None): the newest release's refusal, naming
       the URL. Each step must raise the serial (rule 7), so a site cannot
       make the walk loop; more than MAX_STEPS: reason "catchup". The walk
       must end on the release first refused (the newest), else "catchup".

    save(data, pinset, trust, final) installs a step; None: nothing is
    written (the host's simulation). today: as for certpin._update.step.
    Returns (the Pinset reached, or None when nothing changed, stats) where
    stats = [requests, body bytes, P-256 verifications, [serials accepted]].
    """
    n = [0]
    st = [0, 0, n, []]
    b = [_req(get, url, st)]  # _step() empties the list: one bundle in RAM at a time
    if b[0] is None:
        _fail("fetch", 3, url)  # HTTP 404
    try:
        r = _step(t, b, True, today, n)
    except UpdateError as e:
        if e.reason not in MISSED:
            raise
        first = (e.reason, e.digest, e.args[0])  # kept small: the exception and its traceback go
        e = None
    else:
        if r is None:
            return None, st
        st[3].append(r[1].serial)
        if save:
            save(r[0], r[1], r[2], True)
        return r[1], st
    return _call("_catchup", "steps", t, get, url, today, save, first, b, st)


def _req(get, u, st):
    st[0] += 1
    b = get(u)
    if b is not None:
        st[1] += len(b)
        b = _low(b)
    return b


def _low(x):
    # On a device, x copied low in the heap once it is collected (_copy);
    # on CPython, x itself.
    if _CPY:
        return x
    gc.collect()
    return _copy(x)


def _copy(x):
    # x (the bundle, a Trust, a Pinset, what they hold), copied where a
    # collected heap has room first: low, in what the phase that made x left
    # free (its modules dropped), not above it where x splits the room the
    # next phase needs (measured: `make bench`).
    if isinstance(x, (str, bytes, bytearray)):
        return x[:]
    if isinstance(x, (tuple, list)):
        return type(x)([_copy(y) for y in x])
    if isinstance(x, (Trust, Pinset)):
        n = Trust() if type(x) is Trust else Pinset(None, None, None, None, None, None, None)
        for k, v in x.__dict__.items():
            setattr(n, k, _copy(v))
        return n
    return x


def expired(ps, today=None):
    # Rule 8: the date ps is judged expired by, or None when it is in force.
    if today is None:
        today = _today(ps.floor)
    e = ps.expires
    return today if e and e < today else None


def _today(floor):
    # Rule 8's today: the clock when it is plausibly set, but never before the
    # floor. gmtime hides the epoch (2000 on esp32, 1970 elsewhere).
    t = tuple(time.gmtime()[:3])
    if t[0] < CLOCK_FLOOR:
        t = (0, 0, 0)
    return floor if floor and floor > t else t
