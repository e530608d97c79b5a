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
#   update(bundle, path) -> Pinset
#       verify against the file at path, then install atomically (the
#       writes are certpin._floor's)
#
# The rules run in a fixed order and the first that fails names itself in
# UpdateError.reason. The signatures are checked before the payload is
# parsed: nothing an unauthenticated sender chose reaches the pinset parser
# (a payload equal to the trusted file is a no-op before that: nothing changes).
# The work a bundle can cause is bounded by the TRUSTED pinset, not by the
# sender: at most 32 signature entries are read, at most one P-256
# verification per key (old and new), none after a threshold is reached.
# Loaded for one update and dropped afterwards with _load and _p256.
import hashlib
import json
import time
from binascii import a2b_base64, b2a_base64, hexlify

from certpin import PinsetError, UpdateError
from certpin._load import _syntax, floor_path, parse, read, read_floor

MAX_BUNDLE = 16384
MAX_SIGS = 32
# A clock before this year is "not set yet" (no NTP): rule 8 then uses the floor alone.
CLOCK_FLOOR = 2026
_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Refusals that mean "signed by keys this device does not hold (any more)":
# it missed a rotation, and fetch_update walks the catch-up path.
MISSED = ("unknown_key", "threshold", "bad_signature")


def _fail(reason, msg, *a):
    e = UpdateError("pinset update refused (%s): %s" % (reason, msg % a if a else msg))
    e.reason = reason
    raise e


def run(f, *a):
    # The one place a refused update leaves certpin: update() and
    # fetch_update() run through here (a journal of refusals hooks in here).
    try:
        return f(*a)
    except UpdateError:
        raise
    except OSError as e:
        # The network is the getter's (reason fetch) and the install is
        # install()'s: an OSError here is the filesystem failing elsewhere (a
        # module of certpin that cannot be read any more, on a flash that
        # failed a write). A certpin.Error all the same, and the truth.
        _fail("write_failed", "the filesystem failed during the update (%s); the installed pinset is what "
              "certpin.load() reads now", e)
    except MemoryError:
        # Not a verdict on the bundle (the host tool would accept what a
        # device short of RAM cannot read): say what happened.
        _fail("memory", "not enough free RAM for the update (a bundle needs about 3 times its size, and the "
              "update code about 20 KB); free some (gc.collect(), fewer objects) and try again; the installed "
              "pinset is what certpin.load() reads now")


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
    _fail("not_jws", "%s is not JSON in strict UTF-8 (integers of at most 16 digits)", what)


def _b64check(s, what):
    # base64url without padding (RFC 7515 section 2), strictly: the device's
    # a2b_base64 would skip characters it does not know.
    if not isinstance(s, str) or s.strip(_URL) or len(s) % 4 == 1:
        _fail("not_jws", "%s is not base64url without padding", what)


def _b64url(s, what):
    _b64check(s, what)
    try:
        return a2b_base64(s.replace("-", "+").replace("_", "/") + "=" * (-len(s) % 4))
    except ValueError:  # binascii.Error is one; MemoryError is not a verdict
        _fail("not_jws", "%s is not base64url without padding", what)


def _obj(d, keys, what):
    if not isinstance(d, dict):
        _fail("not_jws", "%s is not a JSON object", what)
    for k in d:
        if k not in keys:
            _fail("not_jws", "%s has the member %r (allowed: %s)", what, k, ", ".join(keys))


def parse_bundle(bundle):
    # Rules 1 and 2: (payload_b64, [(protected_b64, signature_b64)]).
    if isinstance(bundle, str):
        bundle = bundle.encode()
    elif isinstance(bundle, (bytearray, memoryview)):
        bundle = bytes(bundle)
    if not isinstance(bundle, bytes):
        _fail("not_jws", "expected the bundle as bytes or str, not %s", type(bundle).__name__)
    if len(bundle) > MAX_BUNDLE:
        _fail("too_large", "the bundle has %d bytes (at most %d)", len(bundle), MAX_BUNDLE)
    d = _json(bundle, "the bundle")
    _obj(d, ("payload", "signatures"), "the bundle (JWS JSON general serialization)")
    p = d.get("payload")
    sigs = d.get("signatures")
    if not isinstance(p, str) or not isinstance(sigs, list) or not sigs:
        _fail("not_jws", "the bundle needs \"payload\" and a non-empty list \"signatures\"")
    if len(sigs) > MAX_SIGS:
        _fail("not_jws", "%d signatures (at most %d: a device's pinset names at most 16 keys, "
              "and a rotation's bundle is signed by old and new ones)", len(sigs), MAX_SIGS)
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
        _fail("not_jws", "signatures[%d].protected is not a JSON object", i)
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


def _signatures(p, sigs, keys, threshold, done, n, reason):
    # p: the payload as it is in the bundle (base64url, ASCII bytes).
    # Rules 4/5 (the trusted keys, reason "threshold") and 6b (the new
    # pinset's own keys, reason "new_threshold"). done: {kid: True/False}
    # for keys already verified in this bundle, shared by both passes: a key
    # is verified at most once (a second entry with its kid, valid or not, is
    # not verified again) and counts for both when valid. Stops as soon as
    # the threshold is reached. n: [verifications made], or None.
    # Imported here: the P-256 code is paid for only by a device that updates.
    from certpin._p256 import public_key, verify

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
                    if n is not None:
                        n[0] += 1
                    ok = verify(public_key(a2b_base64(keys[kids.index(k)])), md.digest(), sig)
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
        if reason == "threshold":
            reason = "threshold" if good else first
            what = "update keys of the installed pinset"
        else:
            what = "update keys the NEW pinset names (a pinset that names new update keys must be signed by a " \
                   "threshold of them too: proof they are held)"
        _fail(reason, "%d of %d required valid signatures from distinct %s\n%s", good, threshold, what,
              "\n".join(verdicts))


class Trust:
    # What a device trusts, small: never a pinset's text beside a bundle.
    #   serial, floor: of the trusted pinset (floor: the latest authenticated
    #     date: the floor file, issued dates)
    #   keys, threshold, id: its update keys (lines), threshold, keyset_id;
    #     None, 0, None without an update section
    #   url: its update.url or None
    #   digest: SHA-256 of its file's bytes (rule 2a compares payloads with it)
    def __init__(self, digest, d, ps, floor):
        u = d.get("update")
        self.serial, self.digest = ps.serial, digest
        self.floor = ps.floor if floor is None or ps.floor and ps.floor > floor else floor
        self.keys = u["keys"] if u else None
        self.threshold = u["threshold"] if u else 0
        self.id = keyset_id(u) if u else None
        self.url = u.get("url") if u else None


def trust(installed, floor=None):
    """(Trust, Pinset) of a device holding the pinset file bytes ``installed``
    (floor: the date of its floor file, or None). A broken pinset is a PinsetError."""
    if isinstance(installed, str):
        installed = installed.encode()
    d, ps = parse(installed)
    t = Trust(hashlib.sha256(installed).digest(), d, ps, floor)
    ps.floor = t.floor
    return t, ps


def step(t, box, final, today=None, n=None):
    """One bundle against the Trust t: None when its payload is the trusted
    file itself (rule 2a), else (payload bytes, new Pinset, new Trust), else
    UpdateError. box: [the bundle (bytes or str)], emptied once it is read
    (so that only its parts stay in RAM, not the bundle too). final: rule 8
    applies (the release an update ends on); today (Y, M, D) overrides the
    date rule 8 judges by; n: [count of P-256 verifications], increased."""
    p, sigs = parse_bundle(box[0])
    box[0] = None
    # The trusted file itself (a device polling update.url after it updated,
    # also after a signing-key rotation the bundle's signers are no longer
    # trusted for): a no-op, whoever signed it, since nothing changes. The
    # payload is compared as bytes (by digest), not parsed.
    data = _b64url(p, "payload")
    dg = hashlib.sha256(data).digest()
    if dg == t.digest:
        return None
    if t.keys is None:
        _fail("no_update_keys", "the installed pinset has no \"update\" section naming the keys that may sign "
              "its successor: flash a pinset with one over USB (certpin flash)")
    if t.serial is None:
        _fail("no_serial", "the installed pinset has no \"serial\", so a replay could not be told from an update: "
              "flash a pinset with a serial over USB (certpin flash)")
    done = {}
    p = p.encode()  # the signing inputs' payload part, once for every verification
    try:
        _signatures(p, sigs, t.keys, t.threshold, done, n, "threshold")
    except UpdateError as e:
        e.digest = dg  # the catch-up walk compares where it ends with this release
        raise
    # Rule 6: only now is the payload parsed.
    try:
        d, new = parse(data)
    except PinsetError as e:
        _fail("bad_pinset", "the signed payload is not a valid pinset: %s", e.args[0])
    if new.serial is None:
        _fail("bad_pinset", "the signed pinset has no serial (the next update could not be told from a replay)")
    u = d.get("update")
    if u:  # Rule 6b: the new key set signed it too
        _signatures(p, sigs, u["keys"], u["threshold"], done, n, "new_threshold")
    if new.serial <= t.serial:
        _fail("rollback", "the signed pinset has serial %d, not greater than the installed serial %d "
              "(an older pinset replayed, or the same serial reused)", new.serial, t.serial)
    nt = Trust(dg, d, new, t.floor)
    d = None
    new.floor = nt.floor
    if final:
        e = expired(new, today)
        if e:
            _fail("expired", "the signed pinset (serial %d) expired on %04d-%02d-%02d (today is %04d-%02d-%02d)"
                  % ((new.serial,) + new.expires + e))
    return data, new, nt


def expired(ps, today=None):
    # Rule 8: the date ps is judged expired by, or None when it is in force.
    if today is None:
        today = _today(ps.floor)
    e = ps.expires
    return today if e and e < today else None


def verify(installed, bundle, today=None):
    """Decide whether a device holding the pinset file bytes ``installed``
    would install ``bundle`` (bytes or str): (payload, new Pinset, same) where
    same means the bundle carries exactly the installed file (a no-op, and the
    Pinset is the installed one), else UpdateError. ``today`` (Y, M, D) is the
    date rule 8 judges expiry by; None: the later of this machine's clock
    (when set) and the installed pinset's issued date. A broken ``installed``
    is a PinsetError. Writes nothing.
    """
    t, cur = trust(installed)
    r = step(t, [bundle], True, today)
    if r is None:
        return bytes(installed.encode() if isinstance(installed, str) else installed), cur, True
    return r[0], r[1], False


def _today(floor):
    # Rule 8's today: the clock when it is plausibly set, but never before the
    # floor. gmtime hides the epoch (2000 on esp32, 1970 elsewhere).
    t = tuple(time.gmtime()[:3])
    if t[0] < CLOCK_FLOOR:
        t = (0, 0, 0)
    return floor if floor and floor > t else t


def installed(path):
    # (Trust, Pinset) of the pinset file at path and its floor file.
    try:
        data = read(path)
    except OSError as e:
        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    fp = floor_path(path)
    t, ps = trust(data, read_floor(fp))
    ps._fp = fp
    return t, ps


def update(bundle, path="/certpin.json"):
    return run(_apply, bundle, path)


def _apply(bundle, path):
    t, cur = installed(path)
    r = step(t, [bundle], True)
    if r is None:
        return cur
    # The floor never goes back: the old pinset's floor, moved up to the new issued date.
    from certpin._floor import save

    save(path, r[0], r[1], r[2].floor)
    return r[1]
