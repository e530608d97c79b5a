# Injected filesystem failures during an update's install and during load(),
# under CPython and the MicroPython unix port (also inside a virtual board's
# LittleFS/FAT image: tests/test_update_powercut.py runs this file's source
# after the board's boot script, with CONFIG set).
#
# argv: CONFIG.json DIR (or the globals CONFIG and DIR set before this runs).
# CONFIG: {"old": pinset text (serial A), "bundle": hex of a bundle installing
#          the pinset "new" (serial B), "new": its text, "errnos": [..]}
# A shim stands in for `os` (sys.modules["os"]: both runtimes look there
# before their built-in module) and for the builtin open(): every os call and
# every open/read/readinto/write counts as one operation, and the k-th one
# (or the k-th and every later one: "sticky", a flash that died) raises
# OSError(errno). Scenarios, each run once clean (to count the operations)
# and then with a failure at every operation, for every errno, one-shot and
# sticky; after each, the failure is lifted (a reboot) and the files are
# read with a clean load():
#   update   DIR holds old: certpin.update(bundle)
#   stale    DIR holds new and a stale certpin.json.bak (old): certpin.load()
#   window   DIR holds only certpin.json.bak (old) and .tmp (new): certpin.load()
# Prints a line "ROW <scenario> <json>" per run: {"at", "errno", "sticky",
# "ops", "result", "after", "again", "files", "floor", "names" (the clean
# run's operations)}, where result/after/again are ["ok", serial] or
# [ExceptionClass, reason, message]; then "DONE".
import sys

try:
    CONFIG
except NameError:
    CONFIG = __import__("json").load(open(sys.argv[1]))
    DIR = sys.argv[2]
import builtins  # noqa: E402
import os as _os  # noqa: E402
from binascii import unhexlify  # noqa: E402

import certpin  # noqa: E402  (imported before the shim: its own imports keep the real os)

_open = builtins.open
PATH = DIR + "/certpin.json"


class _Fault:
    def __init__(self):
        self.n = 0
        self.at = -1
        self.errno = 5
        self.sticky = False
        self.names = None  # a list: the operations' names are recorded (the clean run)

    def hit(self, name):
        k = self.n
        self.n += 1
        if self.names is not None:
            self.names.append(name)
        if self.at >= 0 and (k == self.at or self.sticky and k > self.at):
            raise OSError(self.errno)


F = _Fault()


class _Shim:
    pass


def _wrap(name, f):
    # os.<name>, counted; its first argument (a path) is named in the clean run's log.
    def g(*a):
        F.hit(name + " " + " ".join(str(x)[len(DIR) + 1 :] for x in a))
        return f(*a)

    return g


shim = _Shim()
for _n in ("rename", "remove", "stat", "mkdir", "listdir", "ilistdir", "getcwd", "chdir", "statvfs", "rmdir"):
    if hasattr(_os, _n):
        setattr(shim, _n, _wrap(_n, getattr(_os, _n)))
if hasattr(_os, "replace"):
    shim.replace = _wrap("replace", _os.replace)


class _File:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()

    def close(self):
        self.f.close()

    def read(self, *a):
        F.hit("read")
        return self.f.read(*a)

    def readinto(self, b):
        F.hit("readinto")
        return self.f.readinto(b)

    def write(self, b):
        F.hit("write")
        return self.f.write(b)


def _fopen(p, mode="r", *a):
    F.hit("open " + p[len(DIR) + 1 :] + " " + mode)
    return _File(_open(p, mode, *a))


def _put(name, text):
    with _open(DIR + "/" + name, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())


def _clear():
    for name in _os.listdir(DIR or "/"):
        if name.startswith("certpin."):
            _os.remove(DIR + "/" + name)


def _files():
    return sorted(n for n in _os.listdir(DIR or "/") if n.startswith("certpin."))


def _outcome(f):
    try:
        return ["ok", f().serial]
    except certpin.Error as e:
        return [type(e).__name__, getattr(e, "reason", None), e.args[0] if e.args else ""]
    except Exception as e:  # never expected: the test fails on it
        return [type(e).__name__, None, repr(e)]


def _read(name):
    try:
        with _open(DIR + "/" + name, "rb") as f:
            return f.read().decode()
    except OSError:
        return None


BUNDLE = unhexlify(CONFIG["bundle"])


def _setup(scenario):
    _clear()
    if scenario == "update":
        _put("certpin.json", CONFIG["old"])
    elif scenario == "stale":
        _put("certpin.json", CONFIG["new"])
        _put("certpin.json.bak", CONFIG["old"])
    else:
        _put("certpin.json.bak", CONFIG["old"])
        _put("certpin.json.tmp", CONFIG["new"])


def _act(scenario):
    if scenario == "update":
        return certpin.update(BUNDLE, PATH)
    return certpin.load(PATH)


def _run(scenario, at, errno, sticky):
    _setup(scenario)
    F.n, F.at, F.errno, F.sticky = 0, at, errno, sticky
    F.names = [] if at < 0 else None
    sys.modules["os"] = shim
    builtins.open = _fopen
    try:
        result = _outcome(lambda: _act(scenario))
    finally:
        ops = F.n
        names = F.names
        F.names = None
        F.at = -1
        builtins.open = _open
        sys.modules["os"] = _os
    files = _files()
    after = _outcome(lambda: certpin.load(PATH))  # the reboot: no failures
    floor = _read("certpin.floor")
    again = _outcome(lambda: certpin.update(BUNDLE, PATH))  # the board can still update
    return {"at": at, "errno": errno, "sticky": sticky, "ops": ops, "result": result, "after": after,
            "again": again, "files": files, "floor": floor, "names": names}


def _scrub():
    # CPython keeps imported modules: drop certpin's lazily imported ones so
    # that they import the shim (MicroPython drops them after every call).
    for m in ("certpin._load", "certpin._update", "certpin._floor", "certpin._p256"):
        if m in sys.modules:
            del sys.modules[m]
        if hasattr(certpin, m[8:]):
            delattr(certpin, m[8:])


import json as _json  # noqa: E402

for scenario in ("update", "stale", "window"):
    _scrub()
    sys.modules["os"] = shim
    clean = _run(scenario, -1, 0, False)
    print("ROW", scenario, _json.dumps(clean))
    for at in range(clean["ops"]):
        for errno in CONFIG["errnos"]:
            for sticky in (False, True):
                print("ROW", scenario, _json.dumps(_run(scenario, at, errno, sticky)))
_scrub()
print("DONE")
