"""certpin vboard (not implemented yet)."""
from certpin_host.errors import UserError


def register(sub):
    p = sub.add_parser("vboard", help="(not implemented yet)")
    p.set_defaults(func=run, command="vboard")


def run(args):
    raise UserError("not implemented yet")
