"""Flashing N virtual boards at once against one by one (certpin flash --lib, a pinset of H hosts).

    .venv/bin/python bench/flash_bench.py [N] [HOSTS] [TOOL]

Starts N `certpin vboard`s (LittleFS2 images, as a board's flash), then times
`certpin flash PINSET --lib` run once per board, one after the other, and once
with every board's --port (in parallel), each on fresh boards. Prints the
seconds of each and the bytes each board received.
"""
import base64
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CERTPIN = [sys.executable, "-m", "certpin_host"]


def start(root):
    p = subprocess.Popen(CERTPIN + ["vboard", "--root", root, "--fs", "lfs2", "--size", "1m"], stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    for _ in range(5):
        m = re.match(r"vboard: port (\S+)", p.stdout.readline())
        if m:
            return p, m.group(1)
    raise SystemExit("vboard did not start")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def pinset(path, hosts):
    pin = lambda s: "sha256/" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()  # noqa: E731
    exp = (datetime.date.today() + datetime.timedelta(days=180)).isoformat()
    doc = {"format": 1, "serial": 1, "expires": exp,
           "hosts": {"h%04d.example.com" % i: {"pins": [pin("a%d" % i), pin("b%d" % i)]} for i in range(hosts)}}
    with open(path, "w") as f:
        json.dump(doc, f)
    return os.path.getsize(path)


def run(n, hosts, tool):
    work = tempfile.mkdtemp(prefix="certpin-flash-bench-")
    size = pinset(os.path.join(work, "pins.json"), hosts)
    out = {}
    for mode in ("one by one", "parallel"):
        boards = [start(os.path.join(work, "%s-%d" % (mode[:3], i))) for i in range(n)]
        try:
            t = time.monotonic()
            if mode == "parallel":
                argv = [a for _, port in boards for a in ("--port", port)]
                p = subprocess.run(CERTPIN + ["flash", os.path.join(work, "pins.json"), "--lib", "--tool", tool] + argv,
                                   capture_output=True, text=True)
                assert p.returncode == 0, p.stdout + p.stderr
            else:
                for _, port in boards:
                    p = subprocess.run(CERTPIN + ["flash", os.path.join(work, "pins.json"), "--lib", "--tool", tool,
                                                  "--port", port], capture_output=True, text=True)
                    assert p.returncode == 0, p.stdout + p.stderr
            out[mode] = time.monotonic() - t
            m = re.search(r"copying \d+ file\(s\), (\d+) bytes", p.stdout)
            out["bytes"] = int(m.group(1)) if m else None
        finally:
            for b, _ in boards:
                stop(b)
    print("%d boards, %s, pinset %d bytes, %s bytes per board: one by one %.1f s, in parallel %.1f s (%.1fx)" % (
        n, tool, size, out["bytes"], out["one by one"], out["parallel"], out["one by one"] / out["parallel"]))


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 4, int(sys.argv[2]) if len(sys.argv) > 2 else 100,
        sys.argv[3] if len(sys.argv) > 3 else "mpremote")
