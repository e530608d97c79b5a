"""certpin pin (not implemented yet)."""
from certpin_host.errors import UserError


def register(sub):
    p = sub.add_parser("pin", help="(not implemented yet)")
    p.set_defaults(func=run, command="pin")


def run(args):
    raise UserError("not implemented yet")
