"""certpin keygen (not implemented yet)."""
from certpin_host.errors import UserError


def register(sub):
    p = sub.add_parser("keygen", help="(not implemented yet)")
    p.set_defaults(func=run, command="keygen")


def run(args):
    raise UserError("not implemented yet")
