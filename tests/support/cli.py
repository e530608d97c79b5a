"""Run the certpin CLI from tests: in-process (fast) or as a subprocess (end to end)."""
import json
import subprocess
import sys

from certpin_host import cli


class Result:
    def __init__(self, status, out, err):
        self.status = status
        self.out = out
        self.err = err

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "Result(status=%r, out=%r, err=%r)" % (self.status, self.out[-2000:], self.err[-2000:])


def run(capsys, *args):
    """cli.main(args) in this process; returns Result (argparse exits become a status)."""
    capsys.readouterr()
    try:
        status = cli.main([str(a) for a in args])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return Result(status, out, err)


def run_subprocess(*args, timeout=60, env=None, cwd=None):
    p = subprocess.run([sys.executable, "-m", "certpin_host"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return Result(p.returncode, p.stdout, p.stderr)
