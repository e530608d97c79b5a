"""certpin: compute pins, build, lint and sign pinsets, verify them against live servers, flash boards.

Subcommands (each in its own module certpin_host/cmd_<name>.py):
  pin      print the SPKI pins of certificates, keys, CSRs or live servers
  keygen   make an offline backup key pair and print its pin, or a pinset signing key (--signing)
  pinset   build, check, sign and publish pinset files (new, add, from-server, set-update, lint, sign,
           check-update, publish; sign, check-update and publish live in pinset_sign.py,
           pinset_check.py and pinset_publish.py, the update site's layout in site.py)
  verify   connect to every host of a pinset and report whether a device would accept it
  flash    lint a pinset (or check a signed bundle against the board), then install it atomically
  status   what a board holds: library, pinset, time floor, failure journal
  reports  summarise the failure reports devices sent; --live tells a key rotation from an interception
  vboard   run a virtual board: the MicroPython unix port behind a pseudo-terminal

Each module provides ``register(subparsers)``, which adds its parser and sets
``func`` (the handler, taking the parsed args and returning an exit status).
"""
import argparse
import importlib
import sys

from certpin_host.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError

COMMANDS = ("pin", "keygen", "pinset", "verify", "flash", "status", "reports", "vboard")

EPILOG = """\
workflow:
  certpin pin api.example.com                      # see the server's chain and pins
  certpin keygen backup-1.pem                      # an offline backup key (keep it safe)
  certpin pinset new pins.json api.example.com --pin sha256/... --pin sha256/...
  certpin pinset lint pins.json                    # governance checks
  certpin verify pins.json                         # would a device accept every host now?
  certpin flash pins.json --port /dev/ttyUSB0 --lib

signed updates (devices fetch and install them; docs/signing.md):
  certpin keygen --signing sign-a.pem --public sign-a.pub.pem   # one per offline machine
  certpin pinset set-update pins.json --update-key sign-a.pub.pem --update-key sign-b.pub.pem --threshold 2
  certpin pinset sign pins.json --key sign-a.pem -o pins.jws    # each signer in turn
  certpin pinset check-update pins.jws --current installed.json # exit 0: devices install it
  certpin pinset check-update fleet.jws --site www/             # every published release reaches it?
  certpin pinset publish fleet.jws www/                         # the newest release + the catch-up files

in the field (docs/reports.md):
  certpin status --port /dev/ttyUSB0               # a board's pinset, time floor and failure journal
  certpin reports collected.jsonl --live           # what devices reported: rotation or interception?

exit status: 0 ok, 1 a check found problems, 2 usage error or a user mistake,
3 `certpin reports --live` suspects an interception, 130 interrupted. Run
`certpin COMMAND --help` for each command.
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="certpin",
        description="Certificate and public-key pinning for MicroPython devices: "
        "compute pins, build, lint and sign pinsets, verify them against live servers, flash boards.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module("certpin_host.cmd_" + name).register(sub)
    return parser


def _version():
    try:
        import certpin

        return certpin.__version__
    except Exception:  # the CLI must still start to report a broken install
        return "unknown"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args) or 0
    except UserError as e:
        print("certpin: %s: %s" % (args.command, e), file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("certpin: %s: interrupted" % args.command, file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
