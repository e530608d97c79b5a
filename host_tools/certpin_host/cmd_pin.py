"""certpin pin: print the SPKI pins of certificates, keys, CSRs or live servers."""
import argparse
import json
import os
import sys

from certpin_host import fetch
from certpin_host.errors import UserError
from certpin_host.pins import cert_item, load_file, print_warnings

EPILOG = """\
SOURCE is a file (PEM or DER certificate, PEM chain, PKCS#7 bundle, public key,
private key, CSR) or HOST[:PORT] (default port 443). A file of that name wins.

examples:
  certpin pin api.example.com                 # the chain the server sends, verified
  certpin pin localhost:8443 --cafile ca.pem  # a server with a private CA
  certpin pin api.example.com --connect-to api.example.com:443:staging.internal:8443
                                              # connect there, check (and send SNI) api.example.com
  certpin pin backup-1.pem server.csr         # pins of a key and a CSR
  certpin pin api.example.com --json          # machine-readable, chain order

A live server's chain is verified (system trust store, or only --cafile) before
anything is printed: a pin learnt from an unverified connection may be an
attacker's. --insecure shows an unverified chain anyway, with a warning.
Encrypted private keys: set CERTPIN_PASSPHRASE.

A certificate's pin hashes its key exactly as the certificate carries it: what
a device computes (the device library does the hashing). Warnings on stderr say
when another tool (openssl's `x509 -pubkey | pkey` pipeline, cryptography)
would print a different pin for that key, when a device cannot check the
certificate at all, and which fields cannot be decoded (shown as unreadable;
null in --json). Exit 2 only when no key can be found in a certificate.
"""

_FILE_SUFFIXES = (".pem", ".der", ".crt", ".cer", ".cert", ".key", ".pub", ".csr", ".req", ".p7b", ".p7c", ".json")


def register(sub):
    p = sub.add_parser(
        "pin",
        help="print the SPKI pins of certificates, keys, CSRs or live servers",
        description="Print the sha256/<base64> SPKI pin (and certificate fingerprint) of every "
        "certificate, key or CSR in each SOURCE, or of every certificate a server sends.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="a file or HOST[:PORT]")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects in chain order")
    p.add_argument("--cafile", metavar="FILE", help="trust only this PEM CA file (default: the system trust store)")
    p.add_argument("--connect-to", action="append", default=[], metavar="HOST:PORT:ADDR:PORT",
                   help=fetch.CONNECT_TO_HELP)
    p.add_argument("--servername", help=argparse.SUPPRESS)  # replaced by --connect-to: says so
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect and handshake timeout (default 10)")
    p.add_argument("--insecure", action="store_true",
                   help="show the chain even when it does not verify (NEVER pin from this blindly)")
    p.set_defaults(func=run, command="pin")


def looks_like_file(source):
    return os.sep in source or "/" in source or source.lower().endswith(_FILE_SUFFIXES)


def items_for(source, args):
    """(items, note) for one SOURCE."""
    if os.path.exists(source) or looks_like_file(source):
        return load_file(source), None
    try:
        host, port = fetch.split_hostport(source)
    except ValueError as e:
        raise UserError("%s: not a file, and not HOST[:PORT]: %s" % (source, e))
    address, cport = fetch.route(args.rules, host, port)
    try:
        got = fetch.fetch(host, port, address=address, connect_port=cport, cafile=args.cafile, timeout=args.timeout,
                          allow_unverified=args.insecure)
    except fetch.FetchError as e:
        msg = str(e)
        if "did not verify" in msg:
            msg += "; use --cafile for a private CA, or --insecure to look anyway (then check the pins another way)"
        raise UserError(msg)
    if not got.served:
        raise UserError("%s: the server presented no certificate" % got.where())
    label = "%s:%d" % (host, port)
    items = [cert_item(der, source=label, depth=i) for i, der in enumerate(got.served)]
    if got.verified:
        note = "verified against %s" % (("--cafile " + args.cafile) if args.cafile else "the system trust store")
    else:
        note = "NOT VERIFIED (%s)" % got.verify_error
        print("certpin: pin: WARNING: %s: the certificate did NOT verify (%s). Anyone on the network path "
              "could have sent this chain: do not pin it unless you check it another way."
              % (got.where(), got.verify_error), file=sys.stderr)
    for it in items:
        it.verified = got.verified
    return items, note


def run(args):
    if args.servername is not None:
        raise UserError(fetch.replaced_flag("--servername", "certpin pin %s --connect-to %s:443:ADDR:443"
                                            % (args.servername, args.servername)))
    try:
        args.rules = fetch.parse_connect_to(args.connect_to)
    except ValueError as e:
        raise UserError(str(e))
    try:
        fetch.check_cafile(args.cafile)
    except fetch.FetchError as e:
        raise UserError(str(e))
    results = []
    for source in args.sources:
        items, note = items_for(source, args)
        results.append((source, items, note))
    if args.json:
        out = []
        for source, items, note in results:
            for it in items:
                d = it.as_dict()
                d["source"] = source
                if hasattr(it, "verified"):
                    d["verified"] = it.verified
                out.append(d)
                print_warnings("pin", it, source)
        print(json.dumps(out, indent=2))
        return 0
    for n, (source, items, note) in enumerate(results):
        if n:
            print()
        print("# %s%s" % (source, (" (%s)" % note) if note else ""))
        for it in items:
            print(format_item(it))
            print_warnings("pin", it, source)
    return 0


def format_item(it):
    depth = str(it.depth)
    subject = it.subject
    if subject is None and it.kind in ("certificate", "csr"):
        subject = "(subject unreadable)"
    if it.kind == "certificate":
        if it.is_ca is None:
            role = "role unreadable"
        else:
            role = "CA" if it.is_ca else "leaf"
        if it.depth == 0 and it.is_ca:
            role = "CA (self-signed?)" if it.subject is not None and it.subject == it.issuer else "CA"
        na = it.not_after
        return "%s  %s  %s  notAfter %s  %s  [%s]" % (
            depth, it.spki_sha256, subject or "(empty subject)", na.strftime("%Y-%m-%d") if na else "unreadable",
            role, it.key)
    what = {"public key": "public key", "private key": "private key", "csr": "CSR"}[it.kind]
    subject = ("  " + subject) if subject else ""
    return "%s  %s  %s%s  [%s]" % (depth, it.spki_sha256, what, subject, it.key)
