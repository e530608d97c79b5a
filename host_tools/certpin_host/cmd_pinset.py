"""certpin pinset (not implemented yet)."""
from certpin_host.errors import UserError


def register(sub):
    p = sub.add_parser("pinset", help="(not implemented yet)")
    p.set_defaults(func=run, command="pinset")


def run(args):
    raise UserError("not implemented yet")
