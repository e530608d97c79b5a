"""The pinset's "update" member (who may sign the next pinset) on the host side.

    "update": {"keys": [<base64 DER SPKI of a P-256 key>, ...], "threshold": N, "url": "https://..."}

Key files for it, the command-line flags that set it, and the lint rules that
check it. The device's loader (certpin.loads) stays the authority on what a
device refuses; lint_update() says specifically why.
"""
from certpin_host import jws
from certpin_host.pinsetfile import UPDATE_KEYS
from certpin_host.errors import UserError
from certpin_host.files import read_bytes
from certpin_host.pins import SPKI_PREFIX, load_file

MAX_KEYS = 16
MAX_URL = 512


# ---------------------------------------------------------------- key files


def load_public(path):
    """The P-256 public key in PATH (public key, private key, certificate or CSR); UserError otherwise."""
    item = load_file(path)[0]
    if not jws.is_p256(item.public_key):
        raise UserError("%s: a %s key: update keys must be ECDSA P-256 (ES256); make one with "
                        "`certpin keygen --signing FILE`" % (path, item.key))
    return item.public_key


def load_private(path):
    """The P-256 private key in PATH (PEM or DER; encrypted keys use $CERTPIN_PASSPHRASE)."""
    from cryptography.hazmat.primitives import serialization

    from certpin_host.pins import _load_private

    data = read_bytes(path, "key file")
    loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        key = _load_private(path, loader, data)
    except ValueError as e:
        if b"PUBLIC KEY" in data or b"CERTIFICATE" in data:
            raise UserError("%s: a public key or certificate, not a private key: --key needs the private key "
                            "(for a key held elsewhere use --signer PUB.pem with --signing-input/--signature)" % path)
        raise UserError("%s: not a private key: %s" % (path, e))
    except Exception as e:  # UnsupportedAlgorithm and friends
        raise UserError("%s: unsupported private key: %s" % (path, e))
    if not jws.is_p256(key.public_key()):
        from certpin_host.pins import key_description

        raise UserError("%s: a %s key: pinset signing keys must be ECDSA P-256 (ES256); make one with "
                        "`certpin keygen --signing FILE`" % (path, key_description(key.public_key())))
    return key


# ---------------------------------------------------------------- flags


def add_flags(p, editing):
    p.add_argument("--update-key", action="append", default=[], metavar="PUB_OR_KEY.pem",
                   help="a P-256 key allowed to sign the next pinset (public or private key file); repeatable. "
                   + ("Replaces the list of update keys" if editing else "Writes an \"update\" section"))
    p.add_argument("--threshold", type=int, metavar="N",
                   help="how many distinct update keys must sign (default 1 when keys are given"
                   + ("; the current value otherwise)" if editing else ")"))
    p.add_argument("--update-url", metavar="URL", help="where devices fetch the signed update (http:// or https://)")
    if editing:
        p.add_argument("--no-update-url", action="store_true", help="remove the update URL")


def any_flag(args):
    return bool(args.update_key) or args.threshold is not None or args.update_url is not None or \
        getattr(args, "no_update_url", False)


def apply_flags(data, args):
    """Set data["update"] from --update-key/--threshold/--update-url; returns a description or None."""
    if not any_flag(args):
        return None
    old = data.get("update")
    if old is not None and not isinstance(old, dict):
        raise UserError("\"update\" in the file is not an object: fix it by hand (see `certpin pinset lint`)")
    upd = dict(old or {})
    if args.update_key:
        lines = []
        for path in args.update_key:
            line = jws.key_line(load_public(path))
            if line in lines:
                raise UserError("--update-key %s: the same key is given twice (a key counts once towards the "
                                "threshold)" % path)
            lines.append(line)
        if len(lines) > MAX_KEYS:
            raise UserError("%d update keys: at most %d" % (len(lines), MAX_KEYS))
        upd["keys"] = lines
    if "keys" not in upd:
        raise UserError("--threshold/--update-url need update keys: give --update-key FILE (one per signing key)")
    if args.threshold is not None:
        upd["threshold"] = args.threshold
    elif "threshold" not in upd:
        upd["threshold"] = 1
    if args.update_url is not None:
        problem = url_problem(args.update_url)
        if problem:
            raise UserError("--update-url: %s" % problem)
        upd["url"] = args.update_url
    if getattr(args, "no_update_url", False):
        upd.pop("url", None)
    keys, t = upd["keys"], upd["threshold"]
    if type(t) is not int or not 1 <= t <= len(keys):
        raise UserError("--threshold %s: must be between 1 and the number of update keys (%d)" % (t, len(keys)))
    data["update"] = upd  # (pinsetfile.dumps orders its members; unknown ones are kept for lint to flag)
    return "update: %d key(s), threshold %d%s" % (len(keys), t, (", url %s" % upd["url"]) if "url" in upd else "")


def url_problem(url):
    if not isinstance(url, str):
        return "the URL must be a string, not %s" % type(url).__name__
    if not (url.startswith("http://") or url.startswith("https://")):
        return "%r: the URL must start with http:// or https://" % url
    if len(url) > MAX_URL:
        return "the URL is %d characters: at most %d" % (len(url), MAX_URL)
    bad = [c for c in url if not (" " < c < "\x7f")]
    if bad:
        return "%r: the URL must be printable ASCII without spaces (found %r)" % (url, bad[0])
    if len(url) == url.index("//") + 2:
        return "%r has no host" % url
    return None


# ---------------------------------------------------------------- lint


def lint_update(data, err, warn):
    """Lint rules for data["update"] (data: the parsed pinset object)."""
    if "update" not in data:
        warn("no \"update\": devices cannot be sent a signed pinset, so broken pins can only be fixed by "
             "reflashing every device (`certpin keygen --signing`, then `pinset set-update --update-key`)")
        return
    upd = data["update"]
    if not isinstance(upd, dict):
        err("\"update\" must be an object with \"keys\" and \"threshold\", found %s" % type(upd).__name__)
        return
    for k in upd:
        if k not in UPDATE_KEYS:
            err("update: unknown key %r (allowed: %s)" % (k, ", ".join(UPDATE_KEYS)))
    keys = upd.get("keys")
    good = []
    if "keys" not in upd:
        err("update: missing \"keys\" (the P-256 keys allowed to sign the next pinset)")
    elif not isinstance(keys, list) or not keys:
        err("update: \"keys\" must be a non-empty list of base64 DER P-256 public keys")
        keys = None
    else:
        if len(keys) > MAX_KEYS:
            err("update: %d keys: at most %d" % (len(keys), MAX_KEYS))
        seen = set()
        for i, line in enumerate(keys):
            try:
                jws.public_key_of_line(line)
            except ValueError as e:
                err("update.keys[%d]: %s" % (i, e))
                continue
            if line in seen:
                err("update.keys[%d]: the same key is listed twice (a key counts once: the threshold could be "
                    "unreachable)" % i)
                continue
            seen.add(line)
            good.append(line)
        if len(good) == 1 and len(keys) == 1:
            warn("update: a single update key: no spare if it is lost or stolen; add a second key kept on another "
                 "offline machine (`certpin keygen --signing`)")
        pins = _host_pins(data)
        for line in good:
            pin = jws.kid_of_line(line)
            if pin in pins:
                err("update: the key %s is also pinned for %s: a TLS server key must not sign pinsets (a server "
                    "compromise would then let the attacker rewrite the pins)" % (pin, ", ".join(sorted(pins[pin]))))
    if "threshold" not in upd:
        err("update: missing \"threshold\" (how many distinct keys must sign; 1 <= threshold <= keys)")
    else:
        t = upd["threshold"]
        if type(t) is not int:
            err("update: \"threshold\" must be an integer, found %r" % (t,))
        elif t < 1:
            err("update: \"threshold\" %d is below 1: any bundle, even unsigned, would be enough" % t)
        elif isinstance(keys, list) and keys and t > len(keys):
            err("update: \"threshold\" %d is more than the %d key(s): no update can ever be installed"
                % (t, len(keys)))
    if "url" in upd:
        problem = url_problem(upd["url"])
        if problem:
            err("update: \"url\": %s" % problem)


def _host_pins(data):
    """{sha256/ pin: {hosts}} of the pinset's hosts (whatever is well-formed)."""
    out = {}
    hosts = data.get("hosts")
    if isinstance(hosts, dict):
        for h, entry in hosts.items():
            if isinstance(entry, dict) and isinstance(entry.get("pins"), list):
                for p in entry["pins"]:
                    if isinstance(p, str) and p.startswith(SPKI_PREFIX):
                        out.setdefault(p, set()).add(str(h))
    return out
