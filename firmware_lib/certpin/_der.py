# Strict DER walk from an X.509 certificate to its SubjectPublicKeyInfo (SPKI).
#
# The walk checks the tag of every element on the way, accepts only minimal
# definite lengths, and requires every element to end inside its parent and the
# certificate to end exactly where its outer SEQUENCE says. So the bytes hashed
# are the key a TLS stack reads, never something an attacker placed where a lax
# parser would look (an extension, the subject, trailing data).
#
# Memory: the walk allocates nothing (offsets are small ints, no tuples, no
# slices). Hashing allocates the hash object, one memoryview slice and the
# 32-byte digest. Code shape matters on MicroPython: the header reader has no
# loop (measured ~10x faster than a looped walk on the unix port).
import hashlib

from certpin import Error

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SEQ = const(0x30)
_INT = const(0x02)
_BITS = const(0x03)
_VER = const(0xA0)  # [0] EXPLICIT version
_IUID = const(0x81)  # [1] IMPLICIT issuerUniqueID
_SUID = const(0x82)  # [2] IMPLICIT subjectUniqueID
_EXTS = const(0xA3)  # [3] EXPLICIT extensions


def _bad(what, i, found=None):
    # Only on the failure path: building the message may allocate.
    if found is None:
        return Error("malformed certificate: %s at offset %d" % (what, i))
    return Error("malformed certificate: %s at offset %d (found 0x%02x)" % (what, i, found))


def _end(b, i, end, tag):
    # The element at b[i] must carry `tag` and a minimal definite length, and
    # must end at or before `end`. Returns the offset just past it.
    if i + 2 > end:
        raise _bad("expected tag 0x%02x, data ends" % tag, i)
    if b[i] != tag:
        raise _bad("expected tag 0x%02x" % tag, i, b[i])
    n = b[i + 1]
    i += 2
    if n > 0x80:
        k = n - 0x80  # number of length octets
        if k > 3:
            raise _bad("length of more than 3 octets", i - 1)
        if i + k > end:
            raise _bad("length octets run past their parent", i)
        n = b[i]
        if n == 0 or (k == 1 and n < 0x80):
            raise _bad("non-minimal length", i - 1)
        if k > 1:
            n = (n << 8) | b[i + 1]
        if k > 2:
            n = (n << 8) | b[i + 2]
        i += k
    elif n == 0x80:
        raise _bad("indefinite length (not DER)", i - 1)
    i += n
    if i > end:
        raise _bad("element overruns its parent", i - n)
    return i


def _body(b, i):
    # Offset of the content of the element at b[i] (header already checked by _end).
    n = b[i + 1]
    return i + 2 + (n - 0x80 if n > 0x80 else 0)


def _spki_start(b):
    # Offset of the SubjectPublicKeyInfo SEQUENCE; checks the whole certificate.
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise Error("certificate must be DER bytes, not %s" % type(b).__name__)
    n = len(b)
    if _end(b, 0, n, _SEQ) != n:
        raise _bad("data after the certificate", _end(b, 0, n, _SEQ))
    i = _body(b, 0)
    t = _end(b, i, n, _SEQ)  # TBSCertificate
    # signatureAlgorithm and signatureValue fill the rest of the certificate.
    if _end(b, _end(b, t, n, _SEQ), n, _BITS) != n:
        raise _bad("data after the signature", t)
    i = _body(b, i)
    if i < t and b[i] == _VER:
        v = _end(b, i, t, _VER)
        j = _body(b, i)
        # version INTEGER v1..v3: exactly 02 01 0x
        if v != j + 3 or b[j] != _INT or b[j + 1] != 1 or b[j + 2] > 2:
            raise _bad("bad version", j)
        i = v
    i = _end(b, i, t, _INT)  # serialNumber
    i = _end(b, i, t, _SEQ)  # signature AlgorithmIdentifier
    i = _end(b, i, t, _SEQ)  # issuer Name
    i = _end(b, i, t, _SEQ)  # validity
    i = _end(b, i, t, _SEQ)  # subject Name
    s = i
    i = _end(b, i, t, _SEQ)  # subjectPublicKeyInfo
    # SPKI is exactly { AlgorithmIdentifier, BIT STRING }.
    if _end(b, _end(b, _body(b, s), i, _SEQ), i, _BITS) != i:
        raise _bad("data after the public key", s)
    # Optional trailers of TBSCertificate, in order; nothing else may follow.
    if i < t and b[i] == _IUID:
        i = _end(b, i, t, _IUID)
    if i < t and b[i] == _SUID:
        i = _end(b, i, t, _SUID)
    if i < t:
        i = _end(b, i, t, _EXTS)
    if i != t:
        raise _bad("data after the extensions", i)
    return s


def spki_sha256(der):
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes).

    This is the digest inside an OkHttp/HPKP ``sha256/<base64>`` pin. ``der``
    is bytes, bytearray or memoryview. Raises certpin.Error if the certificate
    is not strict DER.
    """
    s = _spki_start(der)
    e = _end(der, s, len(der), _SEQ)
    mv = der if isinstance(der, memoryview) else memoryview(der)
    return hashlib.sha256(mv[s:e]).digest()


def cert_sha256(der):
    """SHA-256 of the whole DER certificate (32 bytes), after the same strict checks."""
    _spki_start(der)
    return hashlib.sha256(der).digest()
