"""A published update site, built test-side: the layout of docs/updates.md ("The site").

    SITE/NAME                      the newest release
    SITE/NAME.d/<keyset-id>.jws    per key set K named by any published release: the newest
                                   published release whose signatures meet K's threshold
    SITE/NAME.d/releases/<serial>.jws   every published release, byte for byte

Written from the design, independently of the device code (signatures are
checked with `cryptography`, the key-set id is computed here), so tests can
compare the device's walk against it. `certpin pinset publish` (the host
tool) maintains the same layout; this builder also makes what a correct
publisher never would (Site.put writes any bytes at any path).

Also: Fleet, a helper that makes a chain of signed releases with rotations.
"""
import base64
import hashlib
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from support import jws


def keyset_id(keys, threshold):
    """32 lowercase hex: SHA-256 of "<threshold>\\n" + the sorted key lines joined by "\\n", first 16 bytes."""
    lines = [k if isinstance(k, str) else jws.key_line(k) for k in keys]
    text = "%d\n" % threshold + "\n".join(sorted(lines))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def catchup_path(name, kid):
    return "%s.d/%s.jws" % (name, kid)


def payload_of(bundle):
    return jws.unb64url(json.loads(bundle)["payload"])


def valid_signers(bundle, key_lines):
    """The key lines (of key_lines) with a valid ES256 signature in the bundle, each once."""
    b = json.loads(bundle)
    by_kid = {}
    for line in key_lines:
        der = base64.b64decode(line)
        by_kid["sha256/" + base64.b64encode(hashlib.sha256(der).digest()).decode()] = line
    out = []
    for s in b["signatures"]:
        try:
            h = json.loads(jws.unb64url(s["protected"]))
            raw = jws.unb64url(s["signature"])
        except (ValueError, KeyError):
            continue
        line = by_kid.get(h.get("kid")) if isinstance(h, dict) and h.get("alg") == "ES256" else None
        if line is None or line in out or len(raw) != 64:
            continue
        pub = serialization.load_der_public_key(base64.b64decode(line))
        sig = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            pub.verify(sig, (s["protected"] + "." + b["payload"]).encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        out.append(line)
    return out


class Site:
    """A site directory: publish(bundle) adds a release and rewrites the catch-up files."""

    def __init__(self, root, name="fleet.jws"):
        self.root, self.name = str(root), name
        self.releases = []  # (serial, pinset bytes, bundle bytes), in publishing order
        os.makedirs(os.path.join(self.root, name + ".d", "releases"), exist_ok=True)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def put(self, rel, data):
        """Write bytes at SITE/rel (tmp + rename), whatever they are."""
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p + ".tmp", "wb") as f:
            f.write(data)
        os.replace(p + ".tmp", p)

    def remove(self, rel):
        os.remove(self.path(rel))

    def publish(self, bundle):
        payload = payload_of(bundle)
        serial = json.loads(payload)["serial"]
        self.releases.append((serial, payload, bundle))
        self.put("%s.d/releases/%d.jws" % (self.name, serial), bundle)
        sets = {}
        for _, p, _ in self.releases:
            u = json.loads(p).get("update")
            if u:
                sets[keyset_id(u["keys"], u["threshold"])] = u
        for kid, u in sets.items():
            best = None
            for s, p, b in self.releases:
                if len(valid_signers(b, u["keys"])) >= u["threshold"] and (best is None or s > best[0]):
                    best = (s, b)
            if best:
                self.put(catchup_path(self.name, kid), best[1])
        self.put(self.name, max(self.releases)[2])
        return serial

    def catchup(self, keys, threshold):
        return catchup_path(self.name, keyset_id(keys, threshold))


class Fleet:
    """Signed releases in a row: release(keys, threshold, signers, **pinset kw) -> (serial, pinset, bundle)."""

    def __init__(self, first_serial=1):
        self.serial = first_serial - 1
        self.made = []

    def release(self, keys, threshold, signers, **kw):
        self.serial += 1
        p = jws.pinset(self.serial, keys, threshold=threshold, **kw)
        b = jws.bundle(p, signers)
        self.made.append((self.serial, p, b))
        return self.serial, p, b
