"""The published update site: plain files a web server, object store or CDN serves as they are.

For a bundle file named NAME (update.url names SITE_DIR/NAME):

    SITE_DIR/NAME                        the newest release: what every device fetches first
    SITE_DIR/NAME.d/<keyset-id>.jws      for every key set a published release names: the
                                         newest published release a threshold of that set
                                         signed (the furthest a device trusting it can go in
                                         one step; for the newest release's set, that release)
    SITE_DIR/NAME.d/releases/<serial>.jws  every published release, byte for byte

Everything a device would decide is decided by the device library (certpin._update,
certpin._fetch.walk and the catch-up steps it loads): which releases a key set signed (its signature rules), and
whether a device holding an earlier release reaches the newest one (`walk`: the
device's catch-up walk itself, with a getter that reads the site directory instead
of HTTP). This module reads and writes files and compares the results.

    Site(site_dir, name)                 the site as published (its releases/ history)
    Release(data, where)                 one bundle: payload, serial, key set
    layout(releases, name)               {relative path: bytes} of a complete site
    walk(payload, getter), simulate(...) devices walking a site, by the device's code
    Plan(site, release, today)           what publishing `release` would write, and who
                                         reaches it (publish and check-update --site)
    write(site_dir, files, order)        atomically, file by file, in a safe order
"""
import errno
import fcntl
import hashlib
import os
import re

from certpin_host import jws
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import write_atomic

RELEASES = "releases"
_SERIAL_FILE = re.compile(r"^(0|[1-9][0-9]{0,15})\.jws$")
# The walk's URL for the simulation: catchup_url() maps it to NAME.d/..., the
# getter maps those back to files.
SIM_BASE = "http://certpin-site.invalid/"


def device():
    """The device library's update modules: (certpin._update, certpin._fetch: the walk)."""
    try:
        from certpin import _fetch, _update
    except ImportError as e:
        import certpin

        raise UserError("the installed device library (certpin %s) has no catch-up walk (%s): reinstall certpin"
                        % (getattr(certpin, "__version__", "?"), e))
    return _update, _fetch


def signatures_meet(payload_b64, sigs, update, reason="threshold"):
    """Raise the device's UpdateError unless a threshold of the key set `update` signed
    (payload_b64, sigs) as certpin._update.parse_bundle() returns them: the device's own
    rules 4/5 (reason "threshold") or 6b ("new_threshold"), nothing verified twice.
    The one place the host calls that internal of the device library."""
    _update = device()[0]
    _update._signatures(payload_b64.encode(), sigs, update["keys"], update["threshold"], {}, None, reason)


# ---------------------------------------------------------------- releases


class Release:
    """One published (or to be published) bundle, read with the device library.

    data: the bundle bytes; payload: the pinset bytes it carries; serial; update:
    the pinset's "update" dict or None; keyset: its keyset_id or None; issued,
    expires: (Y, M, D) or None.
    """

    def __init__(self, data, where):
        import certpin

        _update = device()[0]
        self.data = bytes(data)
        self.where = where
        self.digest = hashlib.sha256(self.data).hexdigest()
        try:
            p, self.sigs = _update.parse_bundle(self.data)
            self.payload_b64 = p
            self.payload = _update._b64url(p, "payload")
        except certpin.Error as e:
            raise UserError("%s: not a bundle a device reads: %s" % (where, _msg(e)), EXIT_FAIL)
        try:
            from certpin._load import parse

            d, ps = parse(self.payload)
        except certpin.Error as e:
            raise UserError("%s: its payload is not a pinset a device loads: %s" % (where, _msg(e)), EXIT_FAIL)
        if ps.serial is None:
            raise UserError("%s: its pinset has no \"serial\": devices cannot tell it from a replay" % where, EXIT_FAIL)
        self.serial = ps.serial
        self.update = d.get("update")
        self.keyset = _update.keyset_id(self.update) if self.update else None
        self.url = self.update.get("url") if self.update else None
        self.issued, self.expires = getattr(ps, "issued", None), ps.expires
        self.pinset = ps

    def signed_by(self, update):
        """True if a threshold of the key set `update` signed this release validly (the device's rule)."""
        import certpin

        try:
            signatures_meet(self.payload_b64, self.sigs, update)
            return True
        except certpin.Error:
            return False

    def kids(self):
        return [jws.kid_of_line(k) for k in self.update["keys"]] if self.update else []

    def describe_keys(self):
        if not self.update:
            return "no update keys"
        return "key set %s: %d of %s" % (self.keyset[:12], self.update["threshold"],
                                         ", ".join(k[7:19] + "..." for k in self.kids()))


def _msg(e):
    return e.args[0] if e.args else str(e)


class Site:
    """SITE_DIR as published for NAME: the releases of its history, by serial."""

    def __init__(self, site_dir, name):
        if not name or "/" in name or name in (".", "..") or name.startswith("."):
            raise UserError("%r: the site file name must be a plain file name such as fleet.jws" % name)
        self.dir, self.name = site_dir, name
        self.releases = {}  # serial -> Release
        self.adopted = None  # a NAME found without a history (a site published by hand): taken as its first release
        if not os.path.isdir(site_dir):
            raise UserError("%s: %s" % (site_dir, "not a directory" if os.path.exists(site_dir) else
                                        "no such directory (for a new site, create it first: mkdir %s)" % site_dir))
        hist = self.path(RELEASES)
        if os.path.isdir(hist):
            for f in sorted(os.listdir(hist)):
                m = _SERIAL_FILE.match(f)
                if not m:
                    continue  # a temporary file of an interrupted publish, or something else: not a release
                where = os.path.join(hist, f)
                try:
                    r = Release(_read(where), where)
                except UserError as e:
                    raise UserError("the site's history is damaged: %s; restore the file from a backup of the site"
                                    % e)
                if r.serial != int(m.group(1)):
                    raise UserError("%s holds serial %d: the site's history is damaged (a release file renamed?); "
                                    "fix it by hand" % (where, r.serial))
                self.releases[r.serial] = r
        elif os.path.exists(os.path.join(site_dir, name)):
            where = os.path.join(site_dir, name)
            try:
                self.adopted = Release(_read(where), where)
            except UserError as e:
                raise UserError("%s (a site without history: its newest release would be adopted); remove it or "
                                "put the genuine release there" % e)
            self.releases[self.adopted.serial] = self.adopted

    def path(self, *parts):
        return os.path.join(self.dir, self.name + ".d", *parts)

    def ordered(self):
        return [self.releases[s] for s in sorted(self.releases)]

    def newest(self):
        return self.releases[max(self.releases)] if self.releases else None

    def lock(self):
        """An exclusive lock on SITE_DIR for one publish (released when the fd is closed)."""
        try:
            fd = os.open(self.dir, os.O_RDONLY)
        except OSError as e:
            raise UserError("%s: cannot open: %s" % (self.dir, e.strerror or e))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise UserError("%s: another `certpin pinset publish` is writing this site; try again when it ends"
                                % self.dir)
            raise UserError("%s: cannot lock: %s" % (self.dir, e.strerror or e))
        return fd


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UserError("%s: cannot read: %s" % (path, e.strerror or e))


# ---------------------------------------------------------------- the layout


def release_path(name, serial):
    return "%s.d/%s/%d.jws" % (name, RELEASES, serial)


def catchup_path(name, keyset):
    return "%s.d/%s.jws" % (name, keyset)


def catchups(releases):
    """{keyset id: the newest release a threshold of that key set signed} for every key set
    the releases name (releases: sorted by serial)."""
    sets = {}
    for r in releases:
        if r.update:
            sets.setdefault(r.keyset, r.update)
    out = {}
    for k, upd in sets.items():
        for r in reversed(releases):
            if r.signed_by(upd):
                out[k] = r
                break
    return out


def layout(releases, name):
    """{relative path: bytes} of the complete site for these releases (sorted by serial)."""
    files = {}
    for r in releases:
        files[release_path(name, r.serial)] = r.data
    for k, r in catchups(releases).items():
        files[catchup_path(name, k)] = r.data
    files[name] = releases[-1].data
    return files


def write_order(files, name, new):
    """The order publish writes in: the history first, then the catch-up file of the new
    release's own key set (a walk that reaches the new release through any other catch-up
    file goes on to it), then the other catch-up files, the newest release last."""
    rel = sorted(p for p in files if p.startswith(name + ".d/" + RELEASES + "/"))
    own = catchup_path(name, new.keyset) if new.keyset else None
    rest = sorted(p for p in files if p.startswith(name + ".d/") and p not in rel and p != own)
    return rel + ([own] if own in files else []) + rest + [name]


# ---------------------------------------------------------------- simulated devices


class Getter:
    """get(url) -> bytes over a site directory, with `overlay` ({relative path: bytes})
    standing in for files not written yet: what a web server would answer; None for a
    file that is not there (HTTP 404, as the device's HTTP getter returns it). Records
    each URL asked for."""

    def __init__(self, site_dir, name, overlay=None):
        self.dir, self.name, self.overlay = site_dir, name, overlay or {}
        self.urls = []

    def __call__(self, url):
        self.urls.append(url)
        rel = url[len(SIM_BASE):] if url.startswith(SIM_BASE) else None
        if rel is not None and rel in self.overlay:
            return self.overlay[rel]
        if rel is not None and (rel == self.name or rel.startswith(self.name + ".d/")) and "/../" not in "/" + rel:
            try:
                with open(os.path.join(self.dir, *rel.split("/")), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                pass
        return None


class Verdict:
    """Whether a device holding `release` reaches the target release, and how."""

    def __init__(self, release, ok, end_serial, reason, message, urls, verifies):
        self.release, self.ok, self.end_serial = release, ok, end_serial
        self.reason, self.message, self.urls, self.verifies = reason, message, urls, verifies

    def path(self, name):
        """The files its walk asked for, relative to NAME.d/ (NAME itself as NAME)."""
        out = []
        for u in self.urls:
            rel = u[len(SIM_BASE):]
            out.append(rel[len(name) + 3:] if rel.startswith(name + ".d/") else rel)
        return out

    def as_dict(self, name):
        r = self.release
        return {"serial": r.serial, "keyset": r.keyset, "threshold": r.update["threshold"] if r.update else None,
                "keys": r.kids(), "reaches": self.ok, "ends_on": self.end_serial, "reason": self.reason,
                "message": self.message, "requests": self.path(name), "verifications": self.verifies}


def walk(payload, getter, today=None):
    """A device holding `payload` (pinset bytes) calls fetch_update() once against the
    site `getter` serves: the device library's own walk (certpin._fetch.walk), with
    a save() that only remembers what the device would have installed.
    Returns (the payload the device holds afterwards, UpdateError or None, stats or None)."""
    import certpin

    _update, _fetch = device()
    t = _update.trust(payload)[0]
    held = [payload]

    def save(data, new, nt, final):
        held[0] = bytes(data)

    try:
        stats = _fetch.walk(t, getter, SIM_BASE + getter.name, today, save)[1]
        return held[0], None, stats
    except certpin.Error as e:
        return held[0], e, None


def simulate(site_dir, name, overlay, earlier, target, today=None):
    """[Verdict] for a device holding each of `earlier` (Releases) that comes back to
    the site (site_dir seen through overlay, {relative path: bytes}) whose newest
    release is `target`."""
    serials = {hashlib.sha256(r.payload).digest(): r.serial for r in earlier + [target]}
    out = []
    for r in earlier:
        g = Getter(site_dir, name, overlay)
        end, err, stats = walk(r.payload, g, today)
        end_serial = serials.get(hashlib.sha256(end).digest())
        ok = err is None and end_serial == target.serial
        reason = message = None
        if err is not None:
            reason, message = getattr(err, "reason", None) or type(err).__name__, _msg(err)
        elif not ok:
            reason, message = "ends_elsewhere", "the walk ends on serial %s, not %d" % (end_serial, target.serial)
        out.append(Verdict(r, ok, end_serial, reason, message, g.urls, stats[2][0] if stats else None))
    return out


# ---------------------------------------------------------------- writing


def write(site_dir, files, order, report=None, hook=None):
    """Write files ({relative path: bytes}) in `order`, each atomically: a temporary file
    in the same directory, written and fsync'd, renamed over the name, the directory
    fsync'd. Only files whose bytes differ are written. report(path, action) for each;
    hook(path) after each rename (tests). Returns [(path, action)]."""
    done = []
    for rel in order:
        data = files[rel]
        dst = os.path.join(site_dir, *rel.split("/"))
        try:
            with open(dst, "rb") as f:
                old = f.read()
        except FileNotFoundError:
            old = None
        except OSError as e:
            raise UserError("%s: cannot read: %s" % (dst, e.strerror or e))
        if old == data:
            continue
        _replace(dst, data)
        action = "new" if old is None else "replaced"
        done.append((rel, action))
        if report:
            report(rel, action)
        if hook:
            hook(rel)
    return done


def _replace(dst, data):
    # Atomically (files.write_atomic: tmp, fsync, rename, fsync of the directory), readable by a web server.
    d = os.path.dirname(dst)
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise UserError("%s: cannot write: %s" % (dst, e.strerror or e))
    write_atomic(dst, data, mode=0o644)


# ---------------------------------------------------------------- a publish, planned


class Plan:
    """What publishing `new` into `site` would do, decided with the device library.

    same       the bundle is already published byte for byte (target: the site's newest)
    refusals   reasons nothing may be written, --force or not: a serial not greater than the
               newest or published with other bytes, a release its own new keys did not sign
               (new_threshold), an expired one, one the newest published release refuses
               (every release is accepted by the one before it: the catch-up path runs on that)
    forceable  reasons --force overrides (older releases stranded: past the device's
               MAX_STEPS catch-up steps; a release without update keys)
    files      {relative path: bytes} of the site afterwards; order: the order to write them
    verdicts   [Verdict] for every other published release, walking to `target`
    stranded   the verdicts that do not reach it; `already`: those stranded before this
               release too (by an earlier --force), which do not block a publish
    changes    the paths whose bytes on disk differ from `files` (what publish writes)
    """

    def __init__(self, site, new, today=None):
        self.site, self.new, self.today, self.name = site, new, today, site.name
        self.refusals, self.forceable, self.already = [], [], []
        existing = site.releases.get(new.serial)
        newest = site.newest()
        self.same = existing is not None and existing.data == new.data
        self.previous = newest
        if existing is not None and not self.same:
            self.refusals.append(
                "serial %d is already published (%s) with other bytes (sha256 %s..., this bundle %s...): a serial names "
                "one release for good (devices that installed it never take it again); make the next release "
                "(`certpin pinset add` or `set-update` bump the serial) and sign that"
                % (new.serial, release_path(self.name, new.serial), existing.digest[:16], new.digest[:16]))
        elif newest is not None and not self.same and new.serial <= newest.serial:
            self.refusals.append(
                "serial %d is not greater than the newest published serial %d: devices refuse it as a rollback; "
                "make the next release (`certpin pinset add` or `set-update` bump the serial) and sign that"
                % (new.serial, newest.serial))
        if not self.same:
            self._intrinsic(new, today)
        if self.refusals:
            self.files, self.order, self.verdicts, self.stranded, self.changes = {}, [], [], [], []
            self.target = new
            return
        releases = site.ordered() + ([] if self.same else [new])
        self.target = releases[-1]
        self.files = layout(releases, self.name)
        self.order = write_order(self.files, self.name, self.target)
        earlier = [r for r in releases if r is not self.target]
        self.verdicts = simulate(site.dir, self.name, self.files, earlier, self.target, today)
        self.stranded = [v for v in self.verdicts if not v.ok]
        if newest is not None and not self.same:
            self._accepted_by(newest, new, today)
        if self.stranded and newest is not None:
            # Those that could not reach the newest release before this one either
            # (an earlier --force) are reported, but do not block this release.
            before = [v.release for v in self.stranded if v.release is not newest and v.release.serial in site.releases]
            old = {v.release.serial for v in simulate(site.dir, self.name, layout(site.ordered(), self.name), before,
                                                      newest, today) if not v.ok} if before else set()
            if self.same:
                old = {v.release.serial for v in self.stranded}
            self.already = [v for v in self.stranded if v.release.serial in old]
            self.stranded = [v for v in self.stranded if v.release.serial not in old]
        if self.stranded:
            self.forceable.append(
                "devices holding serial%s %s could not reach serial %d with the device's catch-up walk (listed above)"
                % ("s" if len(self.stranded) > 1 else "", _serials([v.release.serial for v in self.stranded]),
                   self.target.serial))
        self.changes = [p for p in self.order if _on_disk(site.dir, p) != self.files[p]]

    def _accepted_by(self, newest, new, today):
        """The newest published release must accept the new one as its update (its own verify)."""
        import certpin

        _update = device()[0]
        try:
            _update.verify(newest.payload, new.data, today)
        except certpin.Error as e:
            self.refusals.append(
                "a device holding the newest published release, serial %d, refuses it (%s): %s\nEvery release must "
                "be accepted by the one before it (the catch-up path runs on that): sign it with a threshold of "
                "serial %d's update keys (%s)"
                % (newest.serial, getattr(e, "reason", None), _msg(e).split("\n")[0], newest.serial,
                   newest.describe_keys()))

    def _intrinsic(self, new, today):
        """What every device refuses whatever it holds: a release whose own update keys did not
        sign it (rule 6b), one already expired; and what strands the devices that install it."""
        import certpin

        _update = device()[0]
        if new.update:
            try:
                signatures_meet(new.payload_b64, new.sigs, new.update, "new_threshold")
            except certpin.Error as e:
                self.refusals.append(
                    "every device refuses it (new_threshold): %s\nThe rotation ceremony: a release that names update "
                    "keys is signed by a threshold of the keys devices hold now AND a threshold of its own keys "
                    "(`certpin pinset sign` on each key's machine; docs/signing.md)" % _msg(e))
        else:
            self.forceable.append(
                "serial %d has no \"update\" section: devices that install it can never take another update "
                "(only a USB flash reaches them)" % new.serial)
        e = _update.expired(new.pinset, today)
        if e:
            self.refusals.append("it expired on %04d-%02d-%02d (today is %04d-%02d-%02d): every device refuses to end "
                                 "on it; sign a release with a later \"expires\"" % (new.expires + e))

    @property
    def ok(self):
        return not self.refusals and not self.forceable

    def groups(self):
        """Verdicts grouped: consecutive serials whose walk asked for the same files with the
        same outcome -> [(first, last, verdict of the first, count)]."""
        out = []
        for v in self.verdicts:
            key = (v.ok, v.reason, tuple(v.path(self.name)), v.release.keyset)
            if out and out[-1][4] == key:
                out[-1][1] = v.release.serial
                out[-1][3] += 1
            else:
                out.append([v.release.serial, v.release.serial, v, 1, key])
        return [g[:4] for g in out]


def _serials(serials):
    return ", ".join(str(s) for s in serials)


def _on_disk(site_dir, rel):
    try:
        with open(os.path.join(site_dir, *rel.split("/")), "rb") as f:
            return f.read()
    except OSError:
        return None
