"""certpin pinset sign: make or extend a signed bundle (JWS, ES256) of a pinset.

Three ways to add a signature, combinable in one run:
  --key KEY.pem                        a P-256 private key on this machine
  --signer PUB.pem --signing-input OUT write the exact bytes an external signer
                                       (openssl, an HSM, a cloud KMS) must sign
  --signature SIG --signer PUB.pem     check such a signature (DER, or raw r||s)
                                       and add it
An existing bundle with the same payload is extended, so signers on separate
offline machines add their signatures one at a time.
"""
import argparse
import base64
import binascii
import hashlib
import os
import sys

from certpin_host import jws, updates
from certpin_host.errors import EXIT_FAIL, UserError
from certpin_host.files import write_atomic

HELP = "sign a pinset: make or extend a bundle (JWS) that devices verify and install"

EPILOG = """\
The bundle's payload is the exact bytes of PINSET; each signature is ES256
(ECDSA P-256, SHA-256) by a key named by its kid ("sha256/<pin of the key>").
A device installs the bundle when at least "threshold" distinct keys of the
pinset it holds NOW have signed, and, when PINSET names update keys, at least
PINSET's own "threshold" of ITS keys too (rule new_threshold: proof the new keys
are held, so a rotation to a mistyped or lost key is refused). A release that
keeps its keys meets both with the same signatures; a rotation release is signed
by the old keys AND the new ones, one signer at a time. Until its own keys have
signed, `sign` writes the bundle and says what is missing (devices, check-update
and publish refuse it until then).

Before signing, PINSET is checked as `certpin flash` checks it: what a device
would refuse is never signed; lint errors are refused unless --force, warnings
too with --strict. PINSET needs a "serial" (devices refuse rollbacks by it).

External signing (HSM, KMS, openssl): the JWS signing input is not PINSET's
bytes, so first write it, sign it there, then add the signature:
  certpin pinset sign pins.json --signer hsm.pub.pem --signing-input to-sign.bin
  openssl dgst -sha256 -sign key.pem -out sig.der to-sign.bin      # or the HSM/KMS
  certpin pinset sign pins.json --signature sig.der --signer hsm.pub.pem -o pins.jws
SIG may be DER (openssl, most KMS), raw r||s (64 bytes, PKCS#11), or either in
base64 text.

examples:
  certpin pinset sign pins.json --key sign-a.pem -o pins.jws
  certpin pinset sign pins.json --key sign-b.pem -o pins.jws        # adds a second signature
  certpin pinset check-update pins.jws --current installed.json     # would devices install it?

exit status: 0 signed (or the signing input written), 1 PINSET refused (device
rules, lint) or the bundle would be too large, 2 a user mistake (missing or
garbage file, a key that is not P-256, a signature that does not verify, an
existing BUNDLE with another payload).
"""


def register(ps):
    s = ps.add_parser("sign", help=HELP, description="Make BUNDLE, a JWS whose payload is the exact bytes of "
                      "PINSET, signed with each --key (or an external --signature); add to BUNDLE if it "
                      "already holds the same payload.", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("pinset", metavar="PINSET")
    s.add_argument("--key", action="append", default=[], metavar="KEY.pem",
                   help="a P-256 private key to sign with (encrypted: set CERTPIN_PASSPHRASE); repeatable")
    s.add_argument("--signer", action="append", default=[], metavar="PUB.pem",
                   help="the public key of an external signer (with --signing-input or --signature)")
    s.add_argument("--signing-input", metavar="OUT",
                   help="write the bytes the --signer must sign to OUT and stop (no bundle is written)")
    s.add_argument("--signature", action="append", default=[], metavar="SIG",
                   help="a signature made elsewhere over the signing input (DER or raw r||s), for the "
                   "--signer at the same position; repeatable")
    s.add_argument("-o", "--output", metavar="BUNDLE", help="the bundle to write (extended if it exists)")
    s.add_argument("--force", action="store_true", help="sign despite lint errors (never what a device refuses)")
    s.add_argument("--strict", action="store_true", help="refuse lint warnings too")
    s.set_defaults(func=run)


def run(args):
    if args.signing_input:
        if args.key or args.signature or args.output or len(args.signer) != 1:
            raise UserError("--signing-input OUT takes exactly one --signer PUB.pem and nothing else to sign "
                            "(it only writes the bytes for that signer)")
    else:
        if not args.key and not args.signature:
            raise UserError("nothing to sign with: give --key KEY.pem, or --signature SIG --signer PUB.pem "
                            "(--signing-input OUT writes what an external signer must sign)")
        if len(args.signature) != len(args.signer):
            raise UserError("give one --signer PUB.pem per --signature (%d signature(s), %d signer(s))"
                            % (len(args.signature), len(args.signer)))
        if not args.output:
            raise UserError("give -o BUNDLE: where to write the signed bundle")
    payload = _checked_pinset(args)
    bundle = jws.Bundle(payload)

    if args.signing_input:
        pub = updates.load_public(args.signer[0])
        data = bundle.signing_input(jws.protected_for(pub))
        write_atomic(args.signing_input, data)
        print("%s: %d bytes to sign by %s (%s), ECDSA P-256 with SHA-256. For example:"
              % (args.signing_input, len(data), jws.kid(pub), args.signer[0]))
        print("  openssl dgst -sha256 -sign KEY.pem -out sig.der %s" % args.signing_input)
        print("  certpin pinset sign %s --signature sig.der --signer %s -o BUNDLE"
              % (args.pinset, args.signer[0]))
        return 0

    if os.path.abspath(args.output) == os.path.abspath(args.pinset):
        raise UserError("-o %s is PINSET itself: write the bundle to another file (e.g. %s.jws)"
                        % (args.output, os.path.splitext(args.pinset)[0]))
    existing = _existing(args.output, payload)
    if existing is not None:
        bundle = existing

    added = []
    for path in args.key:
        key = updates.load_private(path)
        pub = key.public_key()
        prot = jws.protected_for(pub)
        raw = jws.sign_raw(key, bundle.signing_input(prot))
        added.append((path, pub, prot, raw))
    for sig_path, pub_path in zip(args.signature, args.signer):
        pub = updates.load_public(pub_path)
        prot = jws.protected_for(pub)
        raw = _external(sig_path, pub_path, pub, bundle, prot, payload, args.pinset)
        added.append((sig_path, pub, prot, raw))

    for source, pub, prot, raw in added:
        _warn_host_key(source, pub, payload)
        _add(bundle, source, pub, prot, raw)
    out = bundle.dumps()
    if len(out) > jws.MAX_BUNDLE:
        raise UserError("the bundle would be %d bytes: a device refuses bundles over %d bytes (base64 makes the "
                        "pinset 4/3 larger, and each signature adds about 220 bytes); nothing written"
                        % (len(out), jws.MAX_BUNDLE), EXIT_FAIL)
    write_atomic(args.output, out)
    kids = _kids(bundle)
    print("%s: %d signature(s) by %d distinct key(s): %s" % (args.output, len(bundle.signatures), len(kids),
                                                              ", ".join(kids)))
    missing = own_keys_missing(out, payload)
    if missing:
        print("%s: NOT COMPLETE: %s" % (args.output, missing))
        print("%s: next: on the machine of one of those keys: certpin pinset sign %s --key KEY.pem -o %s"
              % (args.output, args.pinset, args.output))
    else:
        print("%s: next: certpin pinset check-update %s --current INSTALLED_PINSET (the pinset devices hold now: "
              "its update keys and threshold decide)" % (args.output, args.output))
    return 0


def own_keys_missing(bundle_bytes, payload):
    """None when the pinset names no update keys or a threshold of them signed the bundle
    (rule new_threshold, decided by the device library); else what is missing."""
    import json

    import certpin
    from certpin import _update

    u = json.loads(payload.decode("utf-8")).get("update")
    if not isinstance(u, dict):
        return None
    from certpin_host.site import signatures_meet

    try:
        p, sigs = _update.parse_bundle(bundle_bytes)
        signatures_meet(p, sigs, u, "new_threshold")
        return None
    except certpin.Error as e:
        if getattr(e, "reason", None) != "new_threshold":
            raise UserError("the bundle is not one a device reads: %s" % (e.args[0] if e.args else e), EXIT_FAIL)
    signed = set(_valid_kids(bundle_bytes, u["keys"]))
    have = [jws.kid_of_line(k) for k in u["keys"]]
    todo = [k for k in have if k not in signed]
    return ("devices refuse it (new_threshold) until %d of the %d update keys PINSET names have signed it (proof the "
            "new keys are held); %d ha%s: %s; not yet: %s"
            % (u["threshold"], len(have), len(signed), "s" if len(signed) == 1 else "ve",
               ", ".join(k for k in have if k in signed) or "none", ", ".join(todo)))


def _valid_kids(bundle_bytes, lines):
    """The kids of `lines` with a valid signature in the bundle (for the message; the device decided)."""
    keys = {}
    for line in lines:
        try:
            pub = jws.public_key_of_line(line)
        except ValueError:
            continue
        keys[jws.kid(pub)] = pub
    b = jws.loads(bundle_bytes)
    out = []
    for i, header, kid_, raw, problem in b.entries():
        if problem or kid_ not in keys or kid_ in out or header.get("alg") != jws.ALG or len(raw) != 64:
            continue
        if jws.verify_der(keys[kid_], jws.raw_to_der(raw), b.signing_input(b.signatures[i]["protected"])):
            out.append(kid_)
    return out


def _checked_pinset(args):
    """PINSET's bytes, after the checks `certpin flash` runs, plus what an update needs."""
    import json

    from certpin_host.cmd_flash import check_pinset

    def log(msg):
        print("certpin: pinset: sign: %s" % msg, file=sys.stderr)

    raw = check_pinset(args.pinset, args.force, log, strict=args.strict, action="signed")
    data = json.loads(raw.decode("utf-8"))
    if type(data.get("serial")) is not int:
        raise UserError("%s: no \"serial\": a device installs an update only when its serial is greater than the "
                        "installed one (`certpin pinset add` or `set-update` keep one)" % args.pinset, EXIT_FAIL)
    if "issued" not in data:
        log("note: %s has no \"issued\" date, so devices' time floor (their authenticated clock for expiry) does "
            "not advance with it; `certpin pinset add`/`set-update` write one" % args.pinset)
    if len(jws.b64url(raw)) + 250 > jws.MAX_BUNDLE:
        raise UserError("%s is %d bytes: its bundle would exceed the %d bytes a device accepts (base64 makes it "
                        "4/3 larger: keep a pinset to be sent as an update under about 11 KB)"
                        % (args.pinset, len(raw), jws.MAX_BUNDLE), EXIT_FAIL)
    return raw


def _existing(path, payload):
    """The bundle at path if it exists (same payload required), else None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError("%s: cannot read: %s" % (path, e.strerror or e))
    try:
        bundle = jws.loads(data)
    except jws.BundleError as e:
        raise UserError("%s exists and is not a bundle (%s): refusing to overwrite it" % (path, e))
    if bundle.payload != payload:
        raise UserError("%s holds a different pinset (%s): signatures are only added to a bundle of the same "
                        "bytes; sign into a new file, or remove it" % (path, _describe_payload(bundle.payload)))
    return bundle


def _describe_payload(payload):
    import json

    try:
        serial = json.loads(payload.decode("utf-8")).get("serial")
    except (UnicodeDecodeError, ValueError, AttributeError):
        serial = None
    return "%d bytes%s, sha256 %s" % (len(payload), (", serial %r" % serial) if serial is not None else "",
                                      hashlib.sha256(payload).hexdigest()[:16])


def _read_signature(path):
    """Signature bytes from SIG: DER or raw r||s, binary or base64 text -> raw r||s (64 bytes)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % path)
    except OSError as e:
        raise UserError("%s: cannot read: %s" % (path, e.strerror or e))
    candidates = [data]
    text = data.strip()
    if text and all(32 < c < 127 for c in text):  # base64 text, as KMS command lines print it
        try:
            candidates.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            pass
    for c in candidates:
        try:
            return jws.der_to_raw(c)
        except ValueError:
            pass
        if len(c) == 2 * jws.COORD:
            return c
    raise UserError("%s: not an ECDSA signature (expected DER, as `openssl dgst -sha256 -sign` writes, or the "
                    "64 bytes r||s; binary or base64)" % path)


def _external(sig_path, pub_path, pub, bundle, prot, payload, pinset_path):
    raw = _read_signature(sig_path)
    der = jws.raw_to_der(raw)
    message = bundle.signing_input(prot)
    if jws.verify_der(pub, der, message):
        return raw
    how = ("make the signing input with `certpin pinset sign %s --signer %s --signing-input to-sign.bin`, sign "
           "THAT file (openssl dgst -sha256 -sign KEY.pem -out sig.der to-sign.bin), then run this again"
           % (pinset_path, pub_path))
    if jws.verify_der(pub, der, payload):
        raise UserError("%s is a signature over the pinset file itself, not over the JWS signing input (the "
                        "protected header and the payload, base64url, joined by '.'); a device cannot use it. "
                        "To fix: %s" % (sig_path, how))
    if jws.verify_der(pub, der, hashlib.sha256(message).digest()):
        raise UserError("%s signs SHA-256(signing input) as if it were the message (hashed twice): sign the "
                        "signing input itself with SHA-256 (openssl dgst -sha256 -sign), or give the digest to a "
                        "raw-ECDSA signer as the hash. To start over: %s" % (sig_path, how))
    raise UserError("%s does not verify with %s (%s) over the signing input of %s: the wrong key, the wrong file, "
                    "or PINSET changed since the signing input was written. To fix: %s"
                    % (sig_path, pub_path, jws.kid(pub), pinset_path, how))


def _warn_host_key(source, pub, payload):
    """A signing key whose pin is also a host's pin is a TLS server key used to sign pinsets: warn."""
    import json

    try:
        hosts = json.loads(payload.decode("utf-8")).get("hosts") or {}
    except (UnicodeDecodeError, ValueError, AttributeError):
        return
    pin = jws.kid(pub)
    named = sorted(h for h, e in hosts.items() if isinstance(e, dict) and pin in (e.get("pins") or ()))
    if named:
        print("certpin: pinset: sign: WARNING: %s is the key pinned for %s: a TLS server key is signing pinsets, "
              "so whoever takes that server's key can rewrite the pins of every device. Sign with a dedicated "
              "offline key (`certpin keygen --signing`) and name it in \"update\" instead" % (source, ", ".join(named)),
              file=sys.stderr)


def _add(bundle, source, pub, prot, raw):
    k = jws.kid(pub)
    for i, header, kid_, old_raw, problem in bundle.entries():
        if kid_ != k:
            continue
        if not problem and header.get("alg") == jws.ALG and old_raw is not None and len(old_raw) == 64 and \
                jws.verify_der(pub, jws.raw_to_der(old_raw), bundle.signing_input(bundle.signatures[i]["protected"])):
            print("%s: already signed by %s: not added again (a key counts once)" % (source, k))
            return
        print("%s: replaces signatures[%d] by %s, which does not verify" % (source, i, k))
        bundle.signatures[i] = {"protected": prot, "signature": jws.b64url(raw)}
        return
    bundle.add(prot, raw)
    print("%s: signed by %s" % (source, k))


def _kids(bundle):
    out = []
    for _, _, kid_, _, _ in bundle.entries():
        if kid_ and kid_ not in out:
            out.append(kid_)
    return out


