# Signed pinset updates (docs/updates.md): a JWS (RFC 7515 section 7.2.1,
# general JSON serialization, ES256 only) carrying the exact bytes of the next
# pinset file, signed by at least `threshold` distinct keys of the `update`
# section of the pinset trusted NOW and, when the new pinset names update
# keys, by at least its own threshold of those (rule 6b: the new keys are held).
#
#   verify(installed_bytes, bundle, today=None) -> (payload, pinset, same)
#       the rules, pure: writes nothing (the host tool decides with it too)
#   trust(installed_bytes, floor=None) -> (Trust, Pinset)
#   step(trust, [bundle], final, today=None, n=None) -> None | (payload, Pinset, Trust)
#       one bundle against a Trust (the catch-up walk, certpin._fetch.walk,
#       runs it step by step); keyset_id(update) names a key set
#   installed(path) -> (Trust, Pinset), against(path, bundle): the rules'
#       phases of certpin.fetch_update() and certpin.update() (their driver
#       is certpin/_fetch.py, which runs a fetched bundle's step() in phases,
#       each P-256 verification with this module dropped: _fetch._step; the
#       install is certpin._floor's)
#
# The rules run in a fixed order and the first that fails names itself in
# UpdateError.reason. The signatures are checked before the payload is
# parsed: nothing an unauthenticated sender chose reaches the pinset parser
# (a payload equal to the trusted file is a no-op before that: nothing changes).
# The work a bundle can cause is bounded by the TRUSTED pinset, not by the
# sender: at most 32 signature entries are read, at most one P-256
# verification per key (old and new), none after a threshold is reached.
# Loaded for one phase of an update and dropped afterwards, with _load (the
# strict JSON check, the key reading, the payload's parse). On a device the
# P-256 code is not in RAM with them during fetch_update(): the driver
# (certpin._fetch._step) runs each verification between two runs of step();
# update(bundle) and the host's verify() run them inside, each a phase of its
# own (certpin._fetch._call).
import hashlib
import json
from binascii import a2b_base64, b2a_base64, hexlify

from certpin import PinsetError, UpdateError
from certpin._fetch import Trust, _call, _text, expired
from certpin._load import _syntax, parse

MAX_BUNDLE = 16384
MAX_SIGS = 32
_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _fail(reason, msg, *a):
    # msg: the text, or its number in certpin/_utext.py (certpin._fetch._text:
    # the texts of refusals are loaded only for a refusal; kept here they
    # would take RAM on every update).
    msg = _text(msg, a) if type(msg) is int else msg % a if a else msg
    e = UpdateError("pinset update refused (%s): %s" % (reason, msg))
    e.reason = reason
    raise e


def _json(b, what):
    # MicroPython's json is lax and its str() takes malformed UTF-8: the
    # pinset loader's byte-level check first, then json reads the bytes.
    try:
        if _syntax(b) < 0:
            return json.loads(b)
    except MemoryError:  # not a verdict on the bundle: run() says so
        raise
    except Exception:  # ValueError (and whatever else json raises on its input)
        pass
    _fail("not_jws", 4, what)  # not JSON in strict UTF-8


def _b64check(s, what):
    # base64url without padding (RFC 7515 section 2), strictly: the device's
    # a2b_base64 would skip characters it does not know.
    if not isinstance(s, str) or s.strip(_URL) or len(s) % 4 == 1:
        _fail("not_jws", 5, what)  # not base64url


def _b64url(s, what):
    _b64check(s, what)
    try:
        return a2b_base64(s.replace("-", "+").replace("_", "/") + "=" * (-len(s) % 4))
    except ValueError:  # binascii.Error is one; MemoryError is not a verdict
        _fail("not_jws", 5, what)


def _obj(d, keys, what):
    if not isinstance(d, dict):
        _fail("not_jws", 6, what)  # not a JSON object
    for k in d:
        if k not in keys:
            _fail("not_jws", 7, what, k, ", ".join(keys))  # a member not allowed


def parse_bundle(bundle):
    # Rules 1 and 2: (payload_b64, [(protected_b64, signature_b64)]).
    if isinstance(bundle, str):
        bundle = bundle.encode()
    elif isinstance(bundle, memoryview):
        bundle = bytes(bundle)
    if not isinstance(bundle, (bytes, bytearray)):  # a bytearray is read as it is (a fetched bundle: no copy)
        _fail("not_jws", 8, type(bundle).__name__)  # neither bytes nor str
    if len(bundle) > MAX_BUNDLE:
        _fail("too_large", 9, len(bundle), MAX_BUNDLE)
    d = _json(bundle, "the bundle")
    _obj(d, ("payload", "signatures"), "the bundle (JWS JSON general serialization)")
    p = d.get("payload")
    sigs = d.get("signatures")
    if not isinstance(p, str) or not isinstance(sigs, list) or not sigs:
        _fail("not_jws", 10)  # no payload or signatures
    if len(sigs) > MAX_SIGS:
        _fail("not_jws", 11, len(sigs), MAX_SIGS)  # too many signatures
    _b64check(p, "payload")  # checked, not decoded: that waits for the signatures
    out = []
    for i, s in enumerate(sigs):
        what = "signatures[%d]" % i
        _obj(s, ("protected", "signature", "header"), what)
        h, v = s.get("protected"), s.get("signature")
        _b64check(h, what + ".protected")
        _b64check(v, what + ".signature")
        out.append((h, v))
    return p, out


def _header(h, i):
    # The protected header of signature i -> its kid, or a refusal reason.
    d = _json(_b64url(h, "signatures[%d].protected" % i), "signatures[%d].protected" % i)
    if not isinstance(d, dict):
        _fail("not_jws", 12, i)  # the protected header is not an object
    a = d.get("alg")
    if a != "ES256":
        return None, "unsupported_alg", "alg %r (only ES256 is accepted)" % (a,)
    for k in ("crit", "b64"):
        if k in d:  # JWS extensions: certpin implements none (RFC 7515 section 4.1.11)
            return None, "unsupported_alg", "the header uses %r, a JWS extension certpin does not implement" % k
    k = d.get("kid")
    if not isinstance(k, str):
        return None, "unknown_key", "no kid (sha256/<pin of the signing key>)"
    return k, None, None


def kid(key):
    # The kid of an update.keys line: sha256/<base64 of the SHA-256 of the SPKI>, a host pin's form.
    return "sha256/" + b2a_base64(hashlib.sha256(a2b_base64(key)).digest())[:-1].decode()


def keyset_id(u):
    """The id of a key set: 32 lowercase hex characters for a pinset's
    "update" dict (its keys and threshold: 2-of-3 and 1-of-3 of the same keys
    are different sets). Catch-up files are named by it (docs/updates.md)."""
    s = "%d\n" % u["threshold"] + "\n".join(sorted(u["keys"]))
    return hexlify(hashlib.sha256(s.encode()).digest()[:16]).decode()


def _signatures(p, sigs, keys, threshold, done, n, reason, known=None):
    # p: the payload as it is in the bundle (base64url, ASCII bytes).
    # Rules 4/5 (the trusted keys, reason "threshold") and 6b (the new
    # pinset's own keys, reason "new_threshold"). done: {kid: True/False}
    # for keys already verified in this bundle, shared by both passes: a key
    # is verified at most once (a second entry with its kid, valid or not, is
    # not verified again) and counts for both when valid. Stops as soon as
    # the threshold is reached. n: [verifications made], or None.
    # known: None, each verification runs here (a phase of its own:
    # certpin._fetch._call); else {kid: verdict} of the verifications the
    # driver ran (certpin._fetch._step), and the first one needed that is not
    # in it is returned, [kid, key, digest, signature], for the driver to run
    # with this module dropped. None when the threshold is met.
    kids = [kid(k) for k in keys]
    whose = "the installed pinset's" if reason == "threshold" else "the new pinset's"
    good = 0
    for k in kids:
        if done.get(k):
            good += 1
    verdicts = []
    first = None
    for i, (h, v) in enumerate(sigs):
        if good >= threshold:
            verdicts.append("  signatures[%d] and later: not checked (threshold reached)" % i)
            break
        k, why, msg = _header(h, i)
        if k is not None:
            if k not in kids:
                why, msg = "unknown_key", "kid %s is not one of %s update keys" % (k[:60], whose)
            elif k in done:
                why = None if done[k] else "bad_signature"
                msg = "%s: the same key again: %s" % (k, "counted once" if done[k] else "not verified twice")
            else:
                sig = _b64url(v, "signatures[%d].signature" % i)
                ok = False
                if len(sig) != 64:
                    msg = "%s: %d bytes, not 64 (raw r || s)" % (k, len(sig))
                else:
                    md = hashlib.sha256(h.encode())
                    md.update(b".")
                    md.update(p)
                    if known is not None:
                        if k not in known:
                            return [k, keys[kids.index(k)], md.digest(), sig]
                        ok = known[k]
                    else:
                        if n is not None:
                            n[0] += 1
                        # A phase of its own: the P-256 code is not in RAM while the payload is parsed.
                        ok = _call("_p256", "check", keys[kids.index(k)], md.digest(), sig)
                    msg = "%s: %s" % (k, "valid" if ok else "the signature does not verify")
                done[k] = ok
                if ok:
                    good += 1
                else:
                    why = "bad_signature"
        if why and first is None:
            first = why
        verdicts.append("  signatures[%d]: %s" % (i, msg))
    if good < threshold:
        if reason == "threshold":  # its text here: a device that missed a rotation walks on from it (certpin._fetch)
            _fail("threshold" if good else first, "%d of %d required valid signatures from distinct update keys of "
                  "the installed pinset\n%s", good, threshold, "\n".join(verdicts))
        _fail(reason, 13, good, threshold, "\n".join(verdicts))  # new_threshold


def _trust(digest, u, ps, floor):
    # The Trust (certpin/_fetch.py) of the pinset ps, whose "update" section
    # is u (or None) and whose file's SHA-256 is digest; floor: the floor so
    # far, or None.
    t = Trust()
    t.serial, t.digest = ps.serial, digest
    t.floor = ps.floor if floor is None or ps.floor and ps.floor > floor else floor
    t.keys = u["keys"] if u else None
    t.threshold = u["threshold"] if u else 0
    t.id = keyset_id(u) if u else None
    t.url = u.get("url") if u else None
    return t


def trust(installed, floor=None):
    """(Trust, Pinset) of a device holding the pinset file bytes ``installed``
    (floor: the date of its floor file, or None). A broken pinset is a PinsetError."""
    if isinstance(installed, str):
        installed = installed.encode()
    d, ps = parse(installed)
    t = _trust(hashlib.sha256(installed).digest(), d.get("update"), ps, floor)
    ps.floor = t.floor
    return t, ps


def step(t, box, final, today=None, n=None, known=None):
    """One bundle against the Trust t: None when its payload is the trusted
    file itself (rule 2a), else (payload bytes, new Pinset, new Trust), else
    UpdateError. box: [the bundle (bytes or str)]; once read, the bundle is
    dropped from it and its parts appended, [None, parts] (so that only they
    stay in RAM, not the bundle too, and a step run again does not read the
    bundle again). final: rule 8 applies (the release an update ends on);
    today (Y, M, D) overrides the date rule 8 judges by; n: [count of P-256
    verifications], increased by those run here. known: None, the
    verifications run inside; else {kid: verdict} of those run so far, and
    the next one needed is returned instead, [kid, key, digest, signature]
    (_signatures; certpin._fetch._step runs a step so, each verification
    with this module and _load dropped: the step runs again from its parts,
    to the same verdicts, for each)."""
    if len(box) < 2:
        p, sigs = parse_bundle(box[0])
        box[0] = None
        box.append((p.encode(), sigs))  # p: the signing inputs' payload part, made once
    p, sigs = box[1]
    # The trusted file itself (a device polling update.url after it updated,
    # also after a signing-key rotation the bundle's signers are no longer
    # trusted for): a no-op, whoever signed it, since nothing changes. The
    # payload is compared as bytes (by digest), not parsed.
    try:  # base64url, checked by parse_bundle
        data = a2b_base64(p.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(p) % 4))
    except ValueError:  # binascii.Error is one; MemoryError is not a verdict
        _fail("not_jws", 5, "payload")
    dg = hashlib.sha256(data).digest()
    if dg == t.digest:
        return None
    if t.keys is None:
        _fail("no_update_keys", 14)
    if t.serial is None:
        _fail("no_serial", 15)
    done = {}
    try:
        r = _signatures(p, sigs, t.keys, t.threshold, done, n, "threshold", known)
    except UpdateError as e:
        e.digest = dg  # the catch-up walk compares where it ends with this release
        raise
    if r:
        return r
    # Rule 6: only now is the payload parsed.
    try:
        d, new = parse(data)
    except PinsetError as e:
        _fail("bad_pinset", 16, e.args[0])
    if new.serial is None:
        _fail("bad_pinset", 17)  # no serial
    u = d.get("update")
    d = None  # the rest of the parsed payload (hosts, pins): the Pinset has them
    if u:  # Rule 6b: the new key set signed it too
        r = _signatures(p, sigs, u["keys"], u["threshold"], done, n, "new_threshold", known)
        if r:
            return r
    if new.serial <= t.serial:
        _fail("rollback", 18, new.serial, t.serial)
    nt = _trust(dg, u, new, t.floor)
    new.floor = nt.floor
    if final:
        e = expired(new, today)
        if e:
            _fail("expired", 19, *((new.serial,) + new.expires + e))
    return data, new, nt


def verify(installed, bundle, today=None, floor=None):
    """Decide whether a device holding the pinset file bytes ``installed``
    would install ``bundle`` (bytes or str): (payload, new Pinset, same) where
    same means the bundle carries exactly the installed file (a no-op, and the
    Pinset is the installed one), else UpdateError. ``today`` (Y, M, D) is the
    date rule 8 judges expiry by; None: the later of this machine's clock
    (when set), the installed pinset's issued date and ``floor`` (the date in
    the device's floor file, if known). A broken ``installed`` is a
    PinsetError. Writes nothing.
    """
    return _verify(installed, bundle, today, floor)[:3]


def _verify(installed, bundle, today, floor):
    # verify(), also returning the installed Pinset (the host tool's older entry point).
    t, cur = trust(installed, floor)
    r = step(t, [bundle], True, today)
    if r is None:
        return bytes(installed.encode() if isinstance(installed, str) else installed), cur, True, cur
    return r[0], r[1], False, cur


def installed(path):
    # (Trust, Pinset) of the pinset file at path and its floor file.
    from certpin._load import _fail as unreadable, floor_path, read, read_floor  # loaded with this module

    try:
        data = read(path)
    except OSError as e:
        unreadable(path, 27, e)  # "<path>: cannot read the pinset file (<error>)"
    fp = floor_path(path)
    t, ps = trust(data, read_floor(fp))
    ps._fp = fp
    return t, ps


def against(path, bundle):
    # certpin.update()'s rules: the installed Pinset when the bundle carries
    # the installed file (a no-op), else step()'s (payload, Pinset, Trust).
    t, cur = installed(path)
    r = step(t, [bundle], True)
    return cur if r is None else r
