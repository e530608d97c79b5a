"""`make demo` (boards/UNIX/demo.py) runs end to end and leaves nothing behind."""
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_passes_and_cleans_up():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "certpin-demo-*")))
    p = subprocess.run([sys.executable, os.path.join(ROOT, "boards", "UNIX", "demo.py")], capture_output=True,
                       text=True, timeout=240, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "PINNED OK" in p.stdout and "REFUSED" in p.stdout and "demo passed" in p.stdout
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "certpin-demo-*"))) == before
