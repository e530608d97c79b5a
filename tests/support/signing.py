"""Signing keys on disk and pinsets with an "update" section, for the host CLI tests.

Keys are made with `cryptography` directly (not `certpin keygen`), so the CLI
is tested against material it did not make. Bundles are made by support.jws
(the device tests' independent signer).
"""
import base64
import datetime
import hashlib
import json
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


class Key:
    """A P-256 key written to DIR/NAME.pem (private, PKCS#8) and DIR/NAME.pub.pem."""

    def __init__(self, directory, name, key=None):
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.path = os.path.join(str(directory), name + ".pem")
        self.pub = os.path.join(str(directory), name + ".pub.pem")
        with open(self.path, "wb") as f:
            f.write(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        with open(self.pub, "wb") as f:
            f.write(self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))

    @property
    def spki(self):
        return spki(self.key)

    @property
    def line(self):
        return base64.b64encode(self.spki).decode()

    @property
    def kid(self):
        return kid(self.key)


def spki(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def kid(private_key):
    return "sha256/" + base64.b64encode(hashlib.sha256(spki(private_key)).digest()).decode()


def today(days=0):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def fake_pin(seed):
    return "sha256/" + base64.b64encode(hashlib.sha256(str(seed).encode()).digest()).decode()


def pinset_doc(serial, keys=(), threshold=1, hosts=None, expires=None, issued=None, url=None):
    d = {"format": 1, "serial": serial, "issued": issued or today(), "expires": expires or today(180)}
    if keys:
        d["update"] = {"keys": [k.line if isinstance(k, Key) else k for k in keys], "threshold": threshold}
        if url:
            d["update"]["url"] = url
    d["hosts"] = hosts or {"api.example.com": {"pins": [fake_pin("a%d" % serial), fake_pin("b%d" % serial)]}}
    return d


def write_pinset(path, *args, **kw):
    """Write pinset_doc(*args, **kw) as JSON to path; returns str(path)."""
    with open(str(path), "w") as f:
        json.dump(pinset_doc(*args, **kw), f, indent=2)
        f.write("\n")
    return str(path)




def bundle(payload, keys, **kw):
    """Bundle bytes for payload (bytes) signed by each key (Key or cryptography key) in order;
    kw as for support.jws.signature (header=, sig=)."""
    from support import jws

    return jws.bundle(payload, [k.key if isinstance(k, Key) else k for k in keys], **kw)
