"""`make demo` (boards/UNIX/demo.py) runs end to end, tells the whole story, and leaves nothing behind."""
import os
import re
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = [sys.executable, os.path.join(ROOT, "boards", "UNIX", "demo.py")]


def test_demo_passes_and_cleans_up():
    p = subprocess.run(DEMO, capture_output=True, text=True, timeout=240, cwd=ROOT)
    out = p.stdout
    assert p.returncode == 0, out[-3000:] + p.stderr[-2000:]
    assert "PINNED OK" in out and "REFUSED" in out and "demo passed" in out
    # the pinset carries an update section and its first release is signed
    assert "--update-key" in out and "--update-url http://127.0.0.1:" in out
    assert "$ certpin pinset sign pins.json" in out

    # the server rotated to its backup key: the running board still connects
    rotated = out.index("== 10.")
    assert "UPDATE at boot: none newer (serial 1)" in out[rotated:]
    assert "| PINNED OK" in out[rotated:out.index("== 11.")]
    # the operator: next pinset signed and checked against the board's pinset
    operator = out[out.index("== 11."):out.index("== 12.")]
    assert "serial 1 -> 2" in operator
    assert "$ certpin pinset check-update pins-2.jws --current pins.json" in operator
    assert "installs it: serial 1 -> 2" in operator
    # refused by a key it does not pin yet, fetched the update, installed it, reconnected
    update = out[out.index("== 12."):out.index("== 13.")]
    refused = update.index("| REFUSED")
    installed = update.index("| UPDATE after a refusal: installed (serial 2)")
    reconnected = update.index("| PINNED OK", installed)
    assert refused < installed < reconnected, update
    assert '"GET /fleet/certpin.jws HTTP/1.0" 200' in update

    # every attacker bundle refused with its reason, the board's pinset unchanged
    attacks = out[out.index("== 13."):out.index("== 14.")]
    reasons = re.findall(r"UPDATE REFUSED, reason (\w+)", attacks)
    assert reasons == ["not_jws", "unknown_key", "rollback", "bad_signature"], attacks
    assert attacks.count("board pinset serial 2") == 4 and "UPDATE INSTALLED" not in attacks

    # the fleet's reports: certpin status shows what the board refused so far (the attacker of
    # step 9, the key of step 12, the attacker bundles of step 13)
    status = out[out.index("== 14."):out.index("== 15.")]
    assert "$ certpin status --port" in status and "pinset /certpin.json: serial 2" in status
    assert "update_refused (bad_signature)" in status and "pin_mismatch" in status
    # an interception on the path, refused, reported over HTTP
    intercepted = out[out.index("== 15."):out.index("== 16.")]
    assert "REFUSED localhost:" in intercepted
    assert "REPORTS DELIVERED over HTTP: 1 record(s)" in intercepted
    # a rotation without a pin update, refused, reported over the application's MQTT connection
    rotated = out[out.index("== 16."):out.index("== 17.")]
    assert "REFUSED localhost:" in rotated
    assert ("REPORTS PUBLISHED over MQTT: 1 record(s)" in rotated and "the collector received on fleet/reports" in rotated) \
        or "MQTT skipped" in rotated, rotated
    # certpin reports --live tells them apart
    live = out[out.index("== 17."):out.index("== 18.")]
    assert "2 record(s) from 1 device(s)" in live
    assert live.count("interception suspected") == 1 and live.count("a rotation without a pin update; ship a pin") == 1
    _catch_up_story(out[out.index("== 18."):])

    work = re.search(r"working in (\S+)", out).group(1)
    assert not os.path.exists(work)
    assert not _processes_using(work), "a process the demo started outlived it"


def _catch_up_story(out):
    # the operator: publish, a rotation signed by the old key and then the new one,
    # the old key destroyed only after publishing, a server-key rotation
    operator = out[:out.index("== 19.")]
    assert "$ certpin pinset publish pins-2.jws www/fleet --name certpin.jws" in operator
    assert operator.index("NOT COMPLETE") < operator.index("$ certpin pinset sign pins-3.json --key sign-2.pem")
    assert operator.index("$ certpin pinset publish pins-3.jws") < operator.index("$ rm sign-1.pem")
    assert "3 of 3 reach it" in operator and "STRANDED" not in operator
    # the board that slept: refused by the rotated server, one call, three requests, reconnected
    board = out[out.index("== 19."):]
    refused = board.index("REFUSED by the rotated server")
    caught = board.index("CAUGHT UP in one fetch_update() call: installed serial 5")
    assert refused < caught < board.index("PINNED OK again")
    gets = re.findall(r'"GET (/fleet/certpin\.jws\S*) HTTP/1\.0" 200', board)
    assert len(gets) == 3 and gets[0] == "/fleet/certpin.jws" and all(g.startswith("/fleet/certpin.jws.d/")
                                                                       for g in gets[1:]), gets


def test_demo_interrupted_while_the_board_runs_cleans_up():
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group, while
    # the board's example runs in the background (step 11)
    # A terminal delivers SIGINT: restore its default in the demo, whatever this test inherited (a
    # test run started in the background by a non-interactive shell ignores SIGINT, and Python then
    # keeps ignoring it: the demo ran to its end through the Ctrl-C).
    p = subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        for line in p.stdout:
            seen.append(line)
            if line.startswith("== 11."):
                break
        assert seen and seen[-1].startswith("== 11."), "".join(seen)[-3000:]
        work = re.search(r"working in (\S+)", seen[0]).group(1)
        assert _processes_using(work), "nothing of the demo running before the interrupt?"
        os.killpg(p.pid, signal.SIGINT)
        rest = p.stdout.read()
        assert p.wait(60) == 130, rest[-3000:]
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.stdout.close()
    assert "demo interrupted" in rest
    assert not os.path.exists(work)
    assert not _processes_using(work), "a process the demo started outlived the interrupt"


def _processes_using(path):
    """Processes whose command line, working directory or an open file lies under path
    (the vboard's unix port has the demo's flash image open)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                names = [f.read().decode(errors="replace")]
            names.append(os.readlink("/proc/%s/cwd" % pid))
            fds = ["/proc/%s/fd/%s" % (pid, fd) for fd in os.listdir("/proc/%s/fd" % pid)]
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                names.append(os.readlink(fd))
            except OSError:
                pass  # closed meanwhile
        if any(path in n for n in names):
            found.append(pid)
    return found
