# A scenario for `bench/mcu.py --scenario`, and the template for others (the fleet
# simulation's worst catch-up): the harness puts the files of --files DIR under /flash,
# runs this script once in the guest, then measures S() as it measures update(): the
# instructions of a first and a second call (the files restored before each) and the
# least free heap S() succeeds in. S() does the work once and returns True on success;
# anything else (False, an exception) fails the run. The script may use `certpin`, `fs`
# (the RAM filesystem: fs.f maps "/name" to the bytes of /flash/name) and the usual
# modules; it runs after the harness has imported certpin and loaded a pinset.
#
# This one: one signed update from the bundle file "update.jws" of --files DIR over the
# "certpin.json" there (bench/run.py's make_update_files writes such a pair; the smoke test
# in tests/test_bench_mcu.py runs it on the unix port).
B = fs.f["/update.jws"]


def S():
    return certpin.update(B, "/flash/certpin.json").serial > 1
