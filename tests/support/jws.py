"""Test-side signer for pinset update bundles (JWS JSON general serialization, ES256).

Written from RFC 7515/7518 with `cryptography`, independently of the device code,
so the tests can also build what a correct signer never would (wrong alg, a kid
that lies, a short signature, padding). Interop with an independent JOSE
library is tested separately (tests/test_update_interop.py).
"""
import base64
import datetime
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def spki(key):
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_line(key):
    """What goes in update.keys: standard base64 (with padding) of the DER SPKI."""
    return base64.b64encode(spki(key)).decode()


def kid(key):
    return "sha256/" + base64.b64encode(hashlib.sha256(spki(key)).digest()).decode()


def raw_sign(key, data):
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature(key, payload_b64, header=None, sig=None):
    """One entry of "signatures". header: the protected header dict (default alg ES256, kid of key)."""
    h = {"alg": "ES256", "kid": kid(key)} if header is None else header
    hb = b64url(json.dumps(h, separators=(",", ":")).encode())
    if sig is None:
        sig = raw_sign(key, (hb + "." + payload_b64).encode())
    return {"protected": hb, "signature": b64url(sig)}


def bundle(payload, keys, **kw):
    """The bundle bytes for `payload` (bytes) signed by each key in order."""
    p = b64url(payload)
    return json.dumps({"payload": p, "signatures": [signature(k, p, **kw) for k in keys]}).encode()


def today(days=0):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def pinset(serial, keys=None, threshold=1, hosts=None, issued=None, expires=None, url=None, extra=None):
    """Pinset file bytes; keys: the update keys (cryptography keys or key lines)."""
    d = {"format": 1, "serial": serial}
    if issued is not False:
        d["issued"] = issued or today()
    d["expires"] = expires or today(180)
    if keys is not None:
        u = {"keys": [k if isinstance(k, str) else key_line(k) for k in keys], "threshold": threshold}
        if url:
            u["url"] = url
        d["update"] = u
    d["hosts"] = hosts or {"api.example.com": {"pins": ["sha256/" + base64.b64encode(hashlib.sha256(b"pin %d %d" % (serial, i)).digest()).decode() for i in range(2)]}}
    if extra:
        d.update(extra)
    return json.dumps(d, indent=1).encode()
