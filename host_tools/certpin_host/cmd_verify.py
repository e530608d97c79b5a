"""certpin verify (not implemented yet)."""
from certpin_host.errors import UserError


def register(sub):
    p = sub.add_parser("verify", help="(not implemented yet)")
    p.set_defaults(func=run, command="verify")


def run(args):
    raise UserError("not implemented yet")
