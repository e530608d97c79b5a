# Signed pinset updates (docs/updates.md): a JWS (RFC 7515 section 7.2.1,
# general JSON serialization, ES256 only) carrying the exact bytes of the next
# pinset file, signed by at least `threshold` distinct keys of the `update`
# section of the pinset installed NOW.
#
#   verify(installed_bytes, bundle, today=None) -> (payload, pinset, same)
#       the rules, pure: writes nothing (the host tool decides with it too)
#   update(bundle, path) -> Pinset
#       verify against the file at path, then install atomically
#
# The rules run in a fixed order and the first that fails names itself in
# UpdateError.reason. The signatures are checked before the payload is
# parsed: nothing an unauthenticated sender chose reaches the pinset parser
# (a payload equal to the installed file is a no-op before that: nothing changes).
# Loaded for one update and dropped afterwards with _load and _p256.
import hashlib
import json
import os
import time
from binascii import a2b_base64, b2a_base64

from certpin import PinsetError, UpdateError, _use
from certpin._load import _syntax, floor_path, parse, read, read_floor

MAX_BUNDLE = 16384
# A clock before this year is "not set yet" (no NTP): rule 8 then uses the floor alone.
CLOCK_FLOOR = 2026
_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _fail(reason, msg, *a):
    e = UpdateError("pinset update refused (%s): %s" % (reason, msg % a if a else msg))
    e.reason = reason
    raise e


def _json(text, what):
    # MicroPython's json is lax: the pinset loader's syntax check first.
    try:
        if _syntax(text.encode()) < 0:  # the check reads UTF-8 bytes
            return json.loads(text)
    except Exception:  # ValueError, MemoryError
        pass
    _fail("not_jws", "%s is not valid JSON", what)


def _b64check(s, what):
    # base64url without padding (RFC 7515 section 2), strictly: the device's
    # a2b_base64 would skip characters it does not know.
    if not isinstance(s, str) or s.strip(_URL) or len(s) % 4 == 1:
        _fail("not_jws", "%s is not base64url without padding", what)


def _b64url(s, what):
    _b64check(s, what)
    try:
        return a2b_base64(s.replace("-", "+").replace("_", "/") + "=" * (-len(s) % 4))
    except Exception:
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
    if not isinstance(bundle, (bytes, bytearray, memoryview)):
        _fail("not_jws", "expected the bundle as bytes or str, not %s", type(bundle).__name__)
    if len(bundle) > MAX_BUNDLE:
        _fail("too_large", "the bundle has %d bytes (at most %d)", len(bundle), MAX_BUNDLE)
    try:
        text = str(bundle, "utf-8")
    except Exception:
        _fail("not_jws", "the bundle is not UTF-8 text")
    d = _json(text, "the bundle")
    _obj(d, ("payload", "signatures"), "the bundle (JWS JSON general serialization)")
    p = d.get("payload")
    sigs = d.get("signatures")
    if not isinstance(p, str) or not isinstance(sigs, list) or not sigs:
        _fail("not_jws", "the bundle needs \"payload\" and a non-empty list \"signatures\"")
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
    t = _b64url(h, "signatures[%d].protected" % i)
    try:
        t = str(t, "utf-8")
    except Exception:
        _fail("not_jws", "signatures[%d].protected is not UTF-8", i)
    d = _json(t, "signatures[%d].protected" % i)
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


def check_signatures(p, sigs, keys, threshold):
    # Rules 4 and 5. keys: base64 DER SPKIs of the installed pinset.
    # Imported here: the P-256 code is paid for only by a device that updates.
    from certpin._p256 import public_key, verify

    kids = ["sha256/" + b2a_base64(hashlib.sha256(a2b_base64(k)).digest())[:-1].decode() for k in keys]
    good = []
    verdicts = []
    first = None
    for i, (h, v) in enumerate(sigs):
        kid, reason, why = _header(h, i)
        if kid is not None:
            if kid not in kids:
                reason, why = "unknown_key", "kid %s is not an update key of the installed pinset" % kid[:60]
            else:
                sig = _b64url(v, "signatures[%d].signature" % i)
                md = hashlib.sha256(h.encode())
                md.update(b".")
                md.update(p.encode())
                j = kids.index(kid)
                if len(sig) != 64:
                    reason, why = "bad_signature", "%s: %d bytes, not 64 (raw r || s)" % (kid, len(sig))
                elif not verify(public_key(a2b_base64(keys[j])), md.digest(), sig):
                    reason, why = "bad_signature", "%s: the signature does not verify" % kid
                else:
                    why = "%s: valid" % kid
                    if j not in good:  # one key signing twice counts once
                        good.append(j)
                    else:
                        why += " (the same key again: counted once)"
        if reason and first is None:
            first = reason
        verdicts.append("  signatures[%d]: %s" % (i, why))
    if len(good) < threshold:
        _fail(
            "threshold" if good else first,
            "%d of %d required valid signatures from distinct update keys\n%s",
            len(good), threshold, "\n".join(verdicts),
        )
    return len(good)


def verify(installed, bundle, today=None):
    """Decide whether a device holding the pinset file bytes ``installed``
    would install ``bundle`` (bytes or str): (payload, new Pinset, same) where
    same means the bundle carries exactly the installed file (a no-op, and the
    Pinset is the installed one), else UpdateError. ``today`` (Y, M, D) is the
    date rule 8 judges expiry by; None: the later of this machine's clock
    (when set) and the installed pinset's issued date. A broken ``installed``
    is a PinsetError. Writes nothing.
    """
    return _verify(installed, bundle, today, None)[:3]


def _verify(installed, bundle, today, floor):
    # verify(), also returning the installed Pinset; floor: the device's floor file.
    p, sigs = parse_bundle(bundle)
    cur_d, cur = parse(installed)
    if floor and (cur.floor is None or floor > cur.floor):
        cur.floor = floor
    if isinstance(installed, str):
        installed = installed.encode()
    # The installed file itself (a device polling update.url after it updated,
    # also after a signing-key rotation the bundle's signers are no longer
    # trusted for): a no-op, whoever signed it, since nothing changes. The
    # payload is compared as bytes, not parsed.
    data = _b64url(p, "payload")
    if data == bytes(installed):
        return data, cur, True, cur
    u = cur_d.get("update")
    if u is None:
        _fail("no_update_keys", "the installed pinset has no \"update\" section naming the keys that may sign "
              "its successor: flash a pinset with one over USB (certpin flash)")
    if cur.serial is None:
        _fail("no_serial", "the installed pinset has no \"serial\", so a replay could not be told from an update: "
              "flash a pinset with a serial over USB (certpin flash)")
    check_signatures(p, sigs, u["keys"], u["threshold"])
    # Rule 6: only now is the payload parsed.
    try:
        new = parse(data)[1]
    except PinsetError as e:
        _fail("bad_pinset", "the signed payload is not a valid pinset: %s", e.args[0])
    if new.serial is None:
        _fail("bad_pinset", "the signed pinset has no serial (the next update could not be told from a replay)")
    if new.serial <= cur.serial:
        _fail("rollback", "the signed pinset has serial %d, not greater than the installed serial %d "
              "(an older pinset replayed, or the same serial reused)", new.serial, cur.serial)
    if today is None:
        today = _today(cur.floor)
    e = new.expires
    if e and e < today:
        _fail("expired", "the signed pinset expired on %04d-%02d-%02d (today is %04d-%02d-%02d)" % (e + today))
    return data, new, False, cur


def _today(floor):
    # Rule 8's today: the clock when it is plausibly set, but never before the
    # floor. gmtime hides the epoch (2000 on esp32, 1970 elsewhere).
    t = tuple(time.gmtime()[:3])
    if t[0] < CLOCK_FLOOR:
        t = (0, 0, 0)
    return floor if floor and floor > t else t


def install(path, data):
    # Atomic on LittleFS and FAT alike: the new file is complete and read
    # back before it takes the name; the old one is moved aside to path.bak
    # first, so a power cut at any instant leaves path (old or new) or only
    # path.bak (the old), which certpin._load.load() puts back.
    tmp = path + ".tmp"
    bak = path + ".bak"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        h = hashlib.sha256()
        buf = bytearray(256)
        with open(tmp, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
        if h.digest() != hashlib.sha256(data).digest():
            os.remove(tmp)
            _fail("write_failed", "%s read back differently from what was written: flash failing?", tmp)
        try:
            os.remove(bak)  # a stale one from an update that lost power after its install
        except OSError:
            pass
        os.rename(path, bak)
        try:
            os.rename(tmp, path)
        except OSError:
            os.rename(bak, path)
            raise
        os.remove(bak)
    except OSError as e:
        _fail("write_failed", "cannot write %s (%s); the installed pinset is unchanged", path, e)


def update(bundle, path="/certpin.json"):
    try:
        return apply(bundle, path)[0]
    except UpdateError as e:  # the refusal goes to the journal (certpin/_journal.py), then to the caller
        _use("_journal", "update", path, e, "")
        raise


def apply(bundle, path):
    # (the Pinset installed now, whether the bundle changed it)
    try:
        installed = read(path)
    except OSError as e:
        raise PinsetError("%s: cannot read the pinset file (%s)" % (path, e))
    fp = floor_path(path)
    floor = read_floor(fp)
    data, new, same, cur = _verify(installed, bundle, None, floor)
    new._fp = fp
    if same:
        return new, False
    install(path, data)
    # The floor never goes back: the old pinset's floor, moved up to the new issued date.
    day = cur.floor
    if new.issued and (day is None or new.issued > day):
        day = new.issued
    new.floor = floor
    if day:
        from certpin._floor import advance

        advance(new, day)  # writes the floor file only if it moves
    return new, True
