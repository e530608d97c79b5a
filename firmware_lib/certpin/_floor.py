# The time floor (docs/updates.md): the latest date the device has from an
# authenticated source, kept next to the pinset (certpin._load.floor_path).
# Expiry is judged against it, so a clock an attacker sets forward (NTP is
# not authenticated) cannot expire a pinset. Only two things move it: the
# `issued` date of a pinset an update installed (signed) and the notBefore of
# a certificate that matched a pin in a handshake that completed (the server
# proved it holds the pinned key). Loaded for the rare write, then dropped.
#
# Also the install of a verified update (install(), save()): a phase of its
# own in certpin._fetch's driver, after the rules' code is dropped; and the
# connection path's floor moves do not load the update code.
import os
import sys


def advance(ps, day):
    # Move ps.floor up to day (Y, M, D); write the file only when it moves.
    if ps.floor is not None and day <= ps.floor:
        return
    ps.floor = day
    fp = ps._fp
    if fp:
        t = fp + ".tmp"
        try:
            with open(t, "w") as f:
                f.write("%04d-%02d-%02d\n" % day)
            os.rename(t, fp)  # LittleFS: atomic; FAT: delete then rename, _load.read_floor reads the .tmp then
        except OSError:
            pass  # a full or read-only filesystem: the floor moved in RAM, the next move retries


def install(path, data):
    # Atomic on LittleFS and FAT alike: the new file is complete and read
    # back before it takes the name; the old one is moved aside to path.bak
    # first, so a power cut at any instant leaves path (old or new) or only
    # path.bak (the old), which certpin._load.read() puts back. Once path.tmp
    # has taken the name the new pinset IS installed: a path.bak that cannot
    # be removed then is left behind (read() ignores it beside path; the next
    # install removes it).
    import hashlib

    tmp = path + ".tmp"
    bak = path + ".bak"
    try:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            h = hashlib.sha256()
            buf = bytearray(256)
            with open(tmp, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(memoryview(buf)[:n])
        except OSError:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        if h.digest() != hashlib.sha256(data).digest():
            try:
                os.remove(tmp)
            except OSError:
                pass
            _refused(27, tmp)  # read back differently
        try:
            os.remove(bak)  # a stale one from an install that lost power or could not remove it
        except OSError:
            pass
        os.rename(path, bak)
        try:
            os.rename(tmp, path)
        except OSError:
            os.rename(bak, path)  # if this fails too, path is missing and read() recovers path.bak
            raise
    except OSError as e:
        _refused(28, path, e)
    try:
        os.remove(bak)
    except OSError:
        pass


def save(path, data, new, day):
    # Install data (the pinset new) at path and move the floor file up to day.
    from certpin._load import floor_path, read_floor

    install(path, data)
    new._fp = fp = floor_path(path)
    new.floor = read_floor(fp)
    if day:
        advance(new, day)  # writes the floor file only if it moves
    # certpin.install() pinning with the pinset this file held: the
    # application's next connections are pinned to the new one (not only after
    # the next boot's install()).
    i = sys.modules.get("certpin._install")
    p = i and i._policy
    if type(p) is tuple and p[0]._fp == fp:
        i._policy = (new,) + p[1:]


def _refused(n, *a):
    # write_failed, text n of certpin/_utext.py (loaded only for a refusal;
    # the update's driver, certpin/_fetch.py, is loaded: an update is running)
    from certpin import UpdateError
    from certpin._fetch import _text

    e = UpdateError("pinset update refused (write_failed): " + _text(n, a))
    e.reason = "write_failed"
    raise e
