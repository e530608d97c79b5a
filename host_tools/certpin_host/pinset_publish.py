"""certpin pinset publish: put a signed release on a static update site, so that every device catches up.

The site (host_tools/certpin_host/site.py, docs/updates.md): SITE_DIR/NAME is the
newest release, SITE_DIR/NAME.d/<keyset-id>.jws the catch-up file of each key
set, SITE_DIR/NAME.d/releases/<serial>.jws the history. Before anything is
written, every published release is walked to the new one with the device
library's own catch-up walk over the site as it will be; a release some of them
could not reach is refused, naming them (--force aside). Then each file is
written atomically, the history first, the newest release last.
"""
import argparse
import json
import os
import sys

from certpin_host import pinsetfile
from certpin_host import site as sitemod
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import read_bytes

HELP = "publish a signed release on a static update site (checks no device is stranded)"

EPILOG = """\
SITE_DIR is what a web server, object store or CDN serves as plain files; the
release's update.url names SITE_DIR/NAME (NAME: BUNDLE's file name, or --name):

  SITE_DIR/NAME                       the newest release: what devices fetch first
  SITE_DIR/NAME.d/<keyset-id>.jws     per key set any release names: the newest release
                                      a threshold of that set signed (how a device that
                                      missed a signing-key rotation catches up)
  SITE_DIR/NAME.d/releases/N.jws      every published release (the history)

Before writing, a device holding each published release is walked to BUNDLE by
the device library's own code (certpin._fetch.walk) over the site as it will
be. Refused (exit 1, nothing written): a serial not greater than the newest
published one, a serial already published with other bytes, a bundle the
newest published release refuses (every release is accepted by the one before
it), a bundle its own update keys did not sign (new_threshold: the rotation
ceremony signs with the old keys AND the new ones), an expired one; and, unless
--force, a release some older published release could not reach (the serials
are named, with the device's reason: e.g. more than the device's 32 catch-up
steps away) or one without an "update" section. Publishing the same bundle
again writes nothing (or finishes a publish that was interrupted).

Each file is written to a temporary file in its directory, fsync'd and renamed
(a reader never sees half a file), in an order that strands nobody at any
instant: the history, the new release's own catch-up file, the other catch-up
files, the newest release last. Nothing is ever removed.

examples:
  certpin pinset check-update fleet.jws --site www/ && certpin pinset publish fleet.jws www/
  certpin pinset publish fleet.jws www/ --json
  rsync -a www/ updates.example.com:/srv/www/    # or: aws s3 sync www/ s3://bucket/

exit status: 0 published (or already published), 1 refused (the reason is
printed), 2 a file is missing or unreadable.
"""


def register(ps):
    p = ps.add_parser("publish", help=HELP, description="Publish BUNDLE, a signed release, into SITE_DIR: the newest "
                      "release, the catch-up files devices that missed a signing-key rotation walk, the history. "
                      "Refuses a release some published release could not reach.", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="the signed release (`certpin pinset sign -o BUNDLE`)")
    p.add_argument("site", metavar="SITE_DIR", help="the site directory (it must exist; empty for a new site)")
    add_site_flags(p)
    p.add_argument("--force", action="store_true",
                   help="publish although devices holding some older releases cannot reach it (they need a second "
                   "call or a USB flash), or it has no update keys")
    p.add_argument("--json", action="store_true", help="print what was checked and written as JSON")
    p.set_defaults(func=run)


def add_site_flags(p):
    p.add_argument("--name", metavar="NAME", help="the file name devices fetch (update.url's last part; default: "
                   "BUNDLE's file name)")
    p.add_argument("--today", metavar="DATE", help="judge expiry as of this UTC date (default: today)")


def open_site(site_dir, bundle_path, name=None):
    """(Site, Release) for publishing the bundle at bundle_path into site_dir."""
    name = name or os.path.basename(bundle_path)
    data = read_bytes(bundle_path, "bundle")
    new = sitemod.Release(data, bundle_path)
    return sitemod.Site(site_dir, name), new


def notes(site, new):
    """Warnings that do not stop a publish."""
    out = []
    if site.adopted:
        out.append("%s has no history (%s.d/releases/): its release (serial %d) is taken as the first one published; "
                   "devices that hold older releases are not checked" % (os.path.join(site.dir, site.name), site.name,
                                                                         site.adopted.serial))
    url = new.url
    if url and url.split("?")[0].split("#")[0].rsplit("/", 1)[-1] != site.name:
        out.append("its update.url %s does not end in /%s: devices that install it fetch that URL, not this site's "
                   "%s (give --name, or fix update.url)" % (url, site.name, site.name))
    return out


def run(args):
    today = pinsetfile.today_arg(args.today)
    site, new = open_site(args.site, args.bundle, args.name)
    lock = site.lock()
    try:
        plan = sitemod.Plan(site, new, today)
        written = []
        refused = plan.refusals or (plan.forceable and not args.force)
        if not refused:
            written = sitemod.write(args.site, plan.files, plan.order)
    finally:
        os.close(lock)
    doc = as_json(plan, args, written, notes(site, new))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_text(plan, args, written, doc)
    if plan.refusals:
        raise UserError("%s: not published: %s" % (args.bundle, "; ".join(r.split("\n")[0] for r in plan.refusals)),
                        EXIT_FAIL)
    if plan.forceable and not args.force:
        raise UserError("%s: not published: %s; nothing written (--force publishes anyway)"
                        % (args.bundle, "; ".join(plan.forceable)), EXIT_FAIL)
    return 0


def as_json(plan, args, written, notes_):
    by_path = {p: plan.files.get(p) for p, _ in written}
    serial_of = {}
    for p, data in by_path.items():
        serial_of[p] = sitemod.Release(data, p).serial if data is not None else None
    status = "refused" if plan.refusals or (plan.forceable and not getattr(args, "force", False)) else \
        ("unchanged" if plan.same and not written else "completed" if plan.same else "published")
    return {
        "bundle": args.bundle, "site": getattr(args, "site", None), "name": plan.name, "serial": plan.new.serial,
        "keyset": plan.new.keyset, "status": status, "same": plan.same,
        "refusals": plan.refusals, "forceable": plan.forceable, "forced": bool(plan.forceable and
                                                                               getattr(args, "force", False)),
        "reach": [v.as_dict(plan.name) for v in plan.verdicts],
        "stranded": [v.release.serial for v in plan.stranded],
        "already_stranded": [v.release.serial for v in plan.already],
        "written": [{"path": p, "action": a, "serial": serial_of[p]} for p, a in written],
        "notes": notes_,
    }


def print_text(plan, args, written, doc):
    out = sys.stdout
    site_dir = args.site
    new = plan.new
    print("%s: serial %d, %s" % (args.bundle, new.serial, new.describe_keys()), file=out)
    for n in doc["notes"]:
        print("  note: %s" % n, file=out)
    for r in plan.refusals:
        print("  REFUSED: %s" % r.replace("\n", "\n    "), file=out)
    print_reach(plan, out)
    if written:
        for p, action in written:
            print("  wrote %s (%s%s)" % (os.path.join(site_dir, p), action, _what(plan, p)), file=out)
    if plan.refusals or (plan.forceable and not args.force):
        print("nothing written", file=out)
    elif plan.same and not written:
        print("%s: serial %d is already published in %s, byte for byte: nothing to write"
              % (args.bundle, new.serial, site_dir), file=out)
    else:
        what = "published" if not plan.same else \
            "serial %d was already published: wrote what the site was missing or had different (an interrupted " \
            "publish, or files changed by hand); republished" % new.serial
        forced = " (--force: %s)" % "; ".join(plan.forceable) if plan.forceable else ""
        print("%s serial %d: %s is the newest release of %s%s"
              % (what, plan.target.serial, os.path.join(site_dir, plan.name), site_dir, forced), file=out)
    out.flush()


def _what(plan, p):
    """For a catch-up file: whose key set and which release it now holds."""
    rel = p[len(plan.name) + 3:] if p.startswith(plan.name + ".d/") else None
    if rel is None:
        return ": the newest release, serial %d" % plan.target.serial
    if rel.startswith(sitemod.RELEASES + "/"):
        return ""
    k = rel[:-4]
    r = sitemod.Release(plan.files[p], p)
    return ": catch-up for key set %s -> serial %d" % (k[:12], r.serial)


def print_reach(plan, out):
    """One line per group of published releases: whether and how they reach the target."""
    if not plan.verdicts:
        if not plan.refusals:
            print("  no earlier release is published: nothing to catch up from", file=out)
        return
    reached = sum(1 for v in plan.verdicts if v.ok)
    print("  devices holding each published release, walked to serial %d by the device's catch-up walk: %d of %d "
          "reach it" % (plan.target.serial, reached, len(plan.verdicts)), file=out)
    already = {v.release.serial for v in plan.already}
    for first, last, v, count in plan.groups():
        serials = "serial %d" % first if first == last else "serials %d-%d" % (first, last) if count == last - first + 1 \
            else "serials %d..%d (%d)" % (first, last, count)
        keys = ("key set %s" % v.release.keyset[:12]) if v.release.keyset else "no update keys"
        path = " -> ".join(v.path(plan.name))
        if v.ok:
            print("    %s (%s): reach it: %s (%d request%s%s)" % (
                serials, keys, path, len(v.urls), "" if len(v.urls) == 1 else "s",
                ", %d P-256 verification%s" % (v.verifies, "" if v.verifies == 1 else "s") if v.verifies is not None else ""), file=out)
        else:
            tag = "STRANDED since an earlier --force" if v.release.serial in already else "STRANDED"
            msg = (v.message or "").split("\n")
            print("    %s (%s): %s (%s): %s" % (serials, keys, tag, v.reason, msg[0]), file=out)
            for line in msg[1:]:
                print("      " + line.strip(), file=out)
            if path:
                print("      asked for: %s" % path, file=out)
