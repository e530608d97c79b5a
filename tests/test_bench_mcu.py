"""`make bench-mcu`'s harness (bench/mcu.py) kept from rotting.

The same code path `make bench-mcu` runs on the emulated boards, cheaply: the raw REPL
driver, the guest's RAM filesystem, the library from the .mpy files `certpin flash --lib`
installs, the heap figures, a signed update written through the filesystem, the tables, and
the --scenario path. On the unix port always; on each emulated board where its toolchain,
QEMU and a build from an earlier `make bench-mcu` are present (the test never installs
toolchains nor fetches MicroPython's source: `make bench-mcu` does), else it skips saying so.
"""
import io
import os
import re
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import mcu  # noqa: E402
import run  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return mcu.make_inputs(str(tmp_path_factory.mktemp("mcu-inputs")))


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    return mcu.library_mpy(str(tmp_path_factory.mktemp("mcu-mpy")))


@pytest.fixture(scope="module")
def catchup(tmp_path_factory):
    # The standing catch-up row's scenario and files: the fleet simulation's site, made with
    # the certpin command line, and the pinset of the device whose walk verifies most.
    files, label = mcu.catchup_files(str(tmp_path_factory.mktemp("mcu-catchup") / "catchup"))
    return os.path.join(ROOT, "bench", "mcu_scenario_catchup.py"), files, label


def check_figures(r):
    # Behaviour, not speed: the figures exist and are of the right kind and order.
    assert 0 < r["ram_import"] <= r["ram_pinset"] < 64 * 1024
    assert 0 < r["alloc_spki"] <= 512
    assert r["alloc_spki"] <= r["alloc_check"] <= 1024
    assert r["alloc_spki_bytes"] >= r["alloc_spki"]
    for k in ("ticks_check", "ticks_spki", "ticks_update_first", "ticks_update_again", "ticks_fs_update"):
        assert r[k] > 0, k
    assert r["ticks_update_first"] > 10 * r["ticks_check"]


def table(board, fz, mp, scenario=None, label=""):
    out = io.StringIO()
    mcu.print_table(board, mcu.board_rows(board, fz, mp, scenario, label), out)
    return out.getvalue()


def test_unix_port_runs_the_harness(micropython, inputs, mpy, catchup):
    r = mcu.run_unix(micropython, inputs, mpy, quick=True, catchup=catchup)
    check_figures(r)
    # the worst catch-up of the fleet simulation: the device's walk over the site's files,
    # at least a rotation behind (more than one request), ending on the newest release
    assert r["catchup"]["ticks_first"] > r["ticks_update_first"] and r["catchup"]["ticks_again"] > 0
    assert re.search(r"\(serial \d+ -> \d+: [2-9] requests, \d+ verifications\)", catchup[2]), catchup[2]
    text = table("unix", None, r, label=catchup[2])
    assert "heap in use after `import certpin`" in text
    assert "worst catch-up of the fleet simulation" + catchup[2] in text
    assert "%s B" % mcu.fmt_int(r["ram_pinset"]) in text


def scenario_files(d, bundle_serial):
    upd = os.path.join(d, "update")
    run.make_update_files(upd)
    files = os.path.join(d, "files")
    os.makedirs(files)
    shutil.copy(os.path.join(upd, "certpin.json"), os.path.join(files, "certpin.json"))
    shutil.copy(os.path.join(upd, "b%d.jws" % bundle_serial), os.path.join(files, "update.jws"))
    return files


def test_unix_port_runs_a_scenario(micropython, inputs, mpy, tmp_path):
    files = scenario_files(str(tmp_path), 3)
    sc = (os.path.join(ROOT, "bench", "mcu_scenario_update.py"), files, "an update to serial 3")
    r = mcu.run_unix(micropython, inputs, mpy, quick=True, scenario=sc)
    assert r["scenario"]["ticks_first"] > 0 and r["scenario"]["ticks_again"] > 0
    text = table("unix", None, r, sc)
    assert "an update to serial 3 (--scenario)" in text


def test_a_failing_scenario_fails_the_run(micropython, inputs, mpy, tmp_path):
    # S() returning False (here: the bundle is not signed by the installed pinset's key)
    # must stop the bench with the guest's reason, never print a figure for it.
    files = scenario_files(str(tmp_path), 3)
    other = scenario_files(str(tmp_path / "other"), 3)
    shutil.copy(os.path.join(other, "update.jws"), os.path.join(files, "update.jws"))
    script = tmp_path / "s.py"
    script.write_text('B = fs.f["/update.jws"]\n\n\ndef S():\n    try:\n        certpin.update(B, "/flash/certpin.json")\n'
                      '    except certpin.UpdateError:\n        return False\n    return True\n')
    with pytest.raises(mcu.HarnessError, match="S\\(\\) failed"):
        mcu.run_unix(micropython, inputs, mpy, quick=True, scenario=(str(script), files, "x"))


def test_lower_bound_rows_are_labelled():
    # The clock rows are estimates and must say so, with the chip and its clock.
    r = {"ticks_check": 1600, "ticks_es256": 1_000_000, "ticks_update_first": 1_600_000,
         "catchup": {"ticks_first": 3_200_000, "ticks_again": 3_200_000, "peak": None}}
    text = table("MICROBIT", r, r)
    rows = [line for line in text.splitlines() if "RP2040 at 133 MHz" in line]
    assert len(rows) == 4 and all("LOWER BOUND" in line and "1 instruction/cycle" in line for line in rows)
    # 1,600,000 ticks of 62.5 ns = 100,000,000 instructions = 751.9 ms at 133 MHz
    assert re.search(r"one whole update\(\)\s+751\.9 ms\s+751\.9 ms", text)
    assert re.search(r"the worst catch-up\s+1503\.8 ms\s+1503\.8 ms", text)


def built(board):
    """The firmware an earlier `make bench-mcu` built for board (library not frozen), or a skip."""
    why = mcu.missing_tools(board)
    if why:
        pytest.skip("%s: %s" % (board, why))
    import frozen

    elf = os.path.join(frozen.SRC, "ports", "qemu", "build-%s-plain" % board, "firmware.elf")
    if not os.path.exists(elf):
        pytest.skip("%s: no qemu build yet (make bench-mcu builds it; this test does not fetch the source)" % board)
    return mcu.build(frozen.SRC, board, False)  # make refreshes it if the stand-ins changed


@pytest.mark.parametrize("board", mcu.DEFAULT_BOARDS)
def test_emulated_board_runs_the_harness(board, inputs, mpy, catchup):
    elf = built(board)
    r = mcu.run_board(board, elf, inputs, mpy, quick=True, check_timer=True, catchup=catchup)
    check_figures(r)
    assert r["catchup"]["ticks_first"] > r["ticks_update_first"]
    # Instructions come from a hardware timer; the check ties them to a known loop
    # (inline assembler) or, on the nRF51, to the core's own SysTick.
    counts = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", r["timer_check"])]
    if board in mcu.LOOPS:
        assert abs(counts[-1] - 2_000_000) < 2_000, r["timer_check"]
    else:
        a, b = counts[0], counts[1]
        assert abs(a - b) < a / 100, r["timer_check"]
