"""certpin keygen: make an offline backup key pair and print its pin, or a pinset signing key."""
import argparse
import os
import sys

from certpin_host.errors import UserError
from certpin_host.pins import key_description, spki_pin

EPILOG = """\
The HPKP backup-pin practice: a pinset must hold, besides the pin of the key
your server uses today, the pin of a key that is NOT in use yet. Generate it
now, put its pin in the pinset, and keep the key offline (USB stick in a safe,
password manager). When the live key is lost, compromised or rotated, get a
certificate for the backup key (openssl req -new -key FILE -subj /CN=HOST) and
deploy it: devices in the field already trust it. Without a spare, the only
way out is reflashing every device.

--signing FILE makes a pinset SIGNING key instead (always ECDSA P-256, for
ES256): the key that signs the next pinset a device fetches and installs. It
prints two labelled lines on stdout: the string that goes in the pinset's
"update.keys" (base64 DER SubjectPublicKeyInfo) and its kid ("sha256/...",
the key's pin, which names it in a signed bundle). A backup key prints one:
its pin. The value is always the first word of the line (for scripts). Keep signing keys OFFLINE, each on its own
machine, and never on a server: a signing key is never a TLS key.

examples:
  certpin keygen backup-1.pem                 # EC P-256 (the default)
  certpin keygen backup-2.pem --type rsa      # RSA 2048 (--bits 3072 for more)
  certpin pinset new pins.json api.example.com --pin sha256/LIVE... --key backup-1.pem
  certpin keygen --signing sign-a.pem --public sign-a.pub.pem
  certpin pinset set-update pins.json --update-key sign-a.pub.pem --update-key sign-b.pub.pem --threshold 2

The file is written with mode 0600 and is never overwritten.
"""


def register(sub):
    p = sub.add_parser(
        "keygen",
        help="make an offline backup key pair and print its pin, or a pinset signing key (--signing)",
        description="Generate a backup key pair (PEM, PKCS#8, unencrypted, mode 0600) and print its sha256/ pin; "
        "with --signing, a P-256 pinset signing key, printing its update.keys line and kid.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="where to write the private key (must not exist)")
    p.add_argument("--signing", metavar="FILE",
                   help="make a P-256 pinset signing key in FILE instead of a backup key (must not exist)")
    p.add_argument("--type", choices=("ec", "rsa"), default="ec", help="key type (default ec: P-256)")
    p.add_argument("--curve", choices=("P-256", "P-384"), default="P-256", help="EC curve (default P-256)")
    p.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    p.add_argument("--public", metavar="FILE", help="also write the public key (PEM) here")
    p.set_defaults(func=run, command="keygen")


def run(args):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if args.signing and args.file:
        raise UserError("give FILE (a backup key) or --signing FILE (a pinset signing key), not both")
    if not args.signing and not args.file:
        raise UserError("give FILE (a backup key) or --signing FILE (a pinset signing key)")
    if args.signing and (args.type != "ec" or args.curve != "P-256"):
        raise UserError("--signing keys are always ECDSA P-256 (ES256, what a device verifies): "
                        "drop --type/--curve")
    if args.signing:
        args.file = args.signing
    for path in (args.file, args.public):
        if path and os.path.lexists(path):
            raise UserError("%s: already exists: refusing to overwrite a key (choose another name)" % path)
    if args.public and os.path.abspath(args.public) == os.path.abspath(args.file):
        raise UserError("--public must name a different file than FILE")
    if args.type == "rsa":
        if args.bits < 2048 or args.bits > 8192:
            raise UserError("--bits must be between 2048 and 8192")
        key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    else:
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[args.curve]
        key = ec.generate_private_key(curve)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_exclusive(args.file, pem, 0o600)
    if args.public:
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        _write_exclusive(args.public, pub, 0o644)
    if args.signing:
        from certpin_host import jws

        print("%s  update.keys line of %s" % (jws.key_line(key.public_key()), args.file))
        print("%s  kid of %s (the pin that names it in a bundle; never a host's pin)"
              % (jws.kid(key.public_key()), args.file))
        print("certpin: keygen: wrote a P-256 pinset signing key to %s (mode 0600)%s. Line 1 goes in the pinset's "
              "\"update.keys\" (`certpin pinset set-update PINSET --update-key %s`), line 2 is its kid (scripts: the "
              "first word of each line). Keep it "
              "OFFLINE, on its own machine, and backed up: whoever holds enough signing keys can rewrite the pins "
              "of every device." % (args.file, (", public key to %s" % args.public) if args.public else "",
                                   args.public or args.file), file=sys.stderr)
        return 0
    pin = spki_pin(key.public_key())
    print("%s  backup pin of %s (%s): put it in the pinset, keep the key offline" % (
        pin, args.file, key_description(key.public_key())))
    print("certpin: keygen: wrote %s key to %s (mode 0600)%s. Keep it OFFLINE and backed up: it is the spare "
          "that saves your devices when the live key is lost or rotated. Put its pin in the pinset."
          % (key_description(key.public_key()), args.file,
             (", public key to %s" % args.public) if args.public else ""), file=sys.stderr)
    return 0


def _write_exclusive(path, data, mode):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise UserError("%s: already exists: refusing to overwrite a key" % path)
    except OSError as e:
        raise UserError("%s: cannot create: %s" % (path, e.strerror or e))
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; never added any
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        os.unlink(path)
        raise UserError("%s: cannot write: %s" % (path, e.strerror or e))
