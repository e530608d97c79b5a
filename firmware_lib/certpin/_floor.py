# The time floor (docs/updates.md): the latest date the device has from an
# authenticated source, kept next to the pinset (certpin._load.floor_path).
# Expiry is judged against it, so a clock an attacker sets forward (NTP is
# not authenticated) cannot expire a pinset. Only two things move it: the
# `issued` date of a pinset an update installed (signed) and the notBefore of
# a certificate that matched a pin in a handshake that completed (the server
# proved it holds the pinned key). Loaded for the rare write, then dropped.
import os


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
