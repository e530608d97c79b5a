"""certpin vboard: a virtual board (the MicroPython unix port behind a pseudo-terminal)."""
import argparse

from certpin_host.errors import UserError

EPILOG = """\
The board's `/` is DIR itself (--fs posix) or a LittleFS2/FAT image file
DIR/flash-<fs>.img of --size bytes, formatted on first use (--fs lfs2|fat: the
same rename and power-cut behaviour as a real board's flash). Without --root,
a temporary directory is used and removed when the board stops.

It prints `vboard: port /dev/pts/N`: give that to mpremote, ampy or
`certpin flash`. Ctrl-D in the raw REPL soft-reboots it as on a board.
It runs until Ctrl-C or SIGTERM.

examples:
  certpin vboard --root ./board                 # / is ./board
  certpin vboard --root ./board --fs lfs2 --size 2097152
  certpin flash pins.json --port /dev/pts/7 --lib
  mpremote connect /dev/pts/7 fs ls :
"""


def _size(text):
    try:
        mult = 1
        t = text.strip().lower()
        for suffix, m in (("k", 1024), ("m", 1024 * 1024)):
            if t.endswith(suffix):
                t, mult = t[:-1], m
        return int(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError("not a size in bytes: %r (e.g. 1048576, 1024k, 2m)" % text)


def register(sub):
    p = sub.add_parser(
        "vboard",
        help="run a virtual board: the MicroPython unix port behind a pseudo-terminal",
        description="Run a virtual board: the MicroPython unix port on a pty, relayed to a second pty "
        "that mpremote, ampy and `certpin flash` use like a board's serial port.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", metavar="DIR", help="host directory holding the board's filesystem (default: a temporary one)")
    p.add_argument("--fs", choices=("posix", "lfs2", "fat"), default="posix",
                   help="posix: / is DIR; lfs2/fat: / is an image file in DIR (default: posix)")
    p.add_argument("--size", type=_size, default=None, metavar="BYTES",
                   help="size of a new lfs2/fat image (default 1048576; a multiple of 4096); "
                   "an existing image keeps its size")
    p.add_argument("--port-file", metavar="FILE", help="also write the port path to FILE (removed on exit)")
    p.add_argument("--heapsize", metavar="N", help="MicroPython heap, e.g. 200k (default: the unix port's)")
    p.set_defaults(func=run, command="vboard")


def run(args):
    from certpin_host import vboard

    if args.size is not None and args.fs == "posix":
        raise UserError("--size applies to --fs lfs2 or fat (a posix board is as big as its directory)")
    try:
        board = vboard.VirtualBoard(
            root=args.root, fs=args.fs, size=args.size, heapsize=args.heapsize
        ).start()
    except (vboard.VBoardError, OSError) as e:
        raise UserError(str(e))
    return 0 if vboard.serve(board, port_file=args.port_file) else 1
