"""`make demo` (boards/UNIX/demo.py) runs end to end and leaves nothing behind."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_passes_and_cleans_up():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "boards", "UNIX", "demo.py")], capture_output=True,
                       text=True, timeout=240, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "PINNED OK" in p.stdout and "REFUSED" in p.stdout and "demo passed" in p.stdout
    work = re.search(r"working in (\S+)", p.stdout).group(1)
    assert not os.path.exists(work)
    assert not [c for c in _cmdlines() if work in c], "a process the demo started outlived it"


def _cmdlines():
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                yield f.read().decode(errors="replace")
        except (OSError, ValueError):
            pass
