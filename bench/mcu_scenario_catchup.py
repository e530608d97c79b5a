# A scenario for `bench/mcu.py` (see bench/mcu_scenario_update.py for the form), run on every
# board as a standing row of `make bench-mcu`: the worst catch-up of the fleet simulation
# (bench/fleet.py's site after its 20 releases and 3 signing-key rotations; the device whose
# walk verifies most), with the device's own code: certpin/_fetch.py's phases and walk, as
# fetch_update() runs them, the getter reading the site's files from /flash/site instead of
# HTTP (the emulated boards have no network; a file's bytes come as a bytearray, as
# certpin._http.get returns a body). bench/mcu.py writes the files: certpin.json (the pinset
# that device holds), site/ (the published site, its catch-up files) and newest (the serial the
# walk must end on).
URL = "http://certpin-site.invalid/fleet.jws"
NEWEST = int(str(fs.f["/newest"], "utf-8"))
P = "/flash/certpin.json"


def _get(u):
    # The site's file at u (a copy: a fetched body is a new bytearray), or None (HTTP 404).
    f = fs.f.get("/site/" + u[len(URL) - 9 :])
    return None if f is None else bytearray(f)


def _keep(data, new, nt, final):
    sys.modules["certpin._fetch"]._call("_floor", "save", P, data, new, nt.floor)


def S():
    __import__("certpin._fetch")
    F = sys.modules["certpin._fetch"]
    try:
        t = F._call("_update", "installed", P)[0]
        new = F.walk(t, _get, URL, None, _keep)[0]
        return new is not None and new.serial == NEWEST
    finally:
        F = t = new = None
        certpin._drop()  # as certpin._use drops the update's modules after fetch_update()
