# The pin policy of one TLS connection, shared by the MicroPython and CPython
# layers: which host entry applies, expiry, what the stack showed us, verdict.
#
# see() runs inside mbedTLS's verify callback on MicroPython: it never raises
# (an exception there would unwind through C) and never calls user code.
# on_failure is called only from finish()/refused(), outside the handshake.
import time

from certpin import Error, PinError, PinsetError
from certpin._check import describe, match, unknown_host
from certpin._der import spki_sha256
from certpin._pinset import Pinset

# A clock reading before this year means "not set yet" (no NTP): expiry is not judged.
CLOCK_FLOOR = 2026


def today():
    # (Y, M, D) in UTC. gmtime() has 8 fields on boards, 9 on unix; the
    # epoch is 2000 on esp32, 1970 elsewhere: gmtime hides both.
    return tuple(time.gmtime()[:3])


def expired(ps):
    e = ps.expires
    if e is None:
        return False
    now = today()
    return now[0] >= CLOCK_FLOOR and now > e


class Conn:
    def __init__(self, ctx, host):
        ps = ctx.pinset
        if not isinstance(host, str) or not host:
            raise PinError("server_hostname is required: the pinset is looked up by it")
        r = ps._find(host)
        if r < 0:
            raise PinError(unknown_host(ps, host))
        self.ps = ps
        self.r = r
        self.host = host
        self.verified = bool(ctx.cadata)
        self.report = bool(ps._b[r] & 2)
        self.on_failure = ctx.on_failure
        self.pins = True  # False: expired pinset + CA validation -> CA only
        self.leaf = False  # the check ran on depth 0
        self.matched = None
        self.seen = []  # (depth, digest or error text, subject) as the stack showed them
        self.error = None  # an unexpected error inside the callback
        if expired(ps):
            y, m, d = ps.expires
            if self.verified:
                self.pins = False
                what = "pins not enforced, CA validation only"
            else:
                what = "pins still enforced (no cadata, so no other authentication)"
            self._notify(
                "pinset_expired",
                False,
                "%s: the pinset expired on %04d-%02d-%02d: %s; provision a fresh pinset" % (host, y, m, d, what),
            )

    def see(self, cert, depth):
        # One certificate of the chain the TLS stack built (top first, leaf last).
        # Returns True to let the handshake go on.
        try:
            if depth == 0:
                self.leaf = True
            if not self.pins:
                return True
            if self.matched is None:
                try:
                    d = spki_sha256(cert)
                except Error as e:
                    self.seen.append((depth, e.args[0], None))
                    d = None
                if d is not None:
                    self.seen.append((depth, d, None))
                    if depth == 0 or self.verified:
                        self.matched = match(self.ps, self.r, cert, d)
            return depth > 0 or self.matched is not None or self.report
        except Exception as e:  # MemoryError, or a bug: refuse, never unwind through C
            self.error = e
            return False

    def _notify(self, reason, enforced, message):
        if self.on_failure is not None:
            self.on_failure({"host": self.host, "reason": reason, "enforced": enforced, "message": message})

    def _fail(self, reason, message):
        self._notify(reason, not self.report, message)
        if not self.report:
            raise PinError(message)

    def finish(self):
        # After a completed handshake, before the socket reaches the caller.
        if self.error is not None:
            self._fail("internal_error", "%s: the pin check failed: %r" % (self.host, self.error))
        elif not self.pins:
            return
        elif not self.leaf:
            self._fail(
                "not_checked",
                "%s: the handshake completed but the pin check never ran on the leaf certificate "
                "(session resumption or a certificate-less cipher suite?)" % self.host,
            )
        elif self.matched is None:
            self.seen.sort()
            why = "no configured pin matched"
            for depth, d, _ in self.seen:
                if depth == 0 and not isinstance(d, bytes):
                    why = "the leaf certificate cannot be checked"
            self._fail("pin_mismatch", describe(self.ps, self.r, self.host, self.seen, self.verified, why))

    def refused(self, exc):
        # The TLS stack refused the handshake. If our check caused it, say why
        # as a PinError; a CA validation failure is a PinError too; network
        # errors go through as they are.
        if self.error is not None or (self.leaf and self.matched is None and self.pins and not self.report):
            self.finish()  # raises the PinError that explains our refusal
        if isinstance(exc, ValueError) or "CERT" in str(exc) or "X509" in str(exc):
            self.report = False
            self._fail("tls_refused", "%s: TLS certificate validation failed: %s" % (self.host, exc))


def context_args(pinset, cadata, on_failure):
    if not isinstance(pinset, Pinset):
        raise PinsetError("expected a Pinset from certpin.load() or certpin.loads()")
    if cadata is not None:
        if not isinstance(cadata, (list, tuple)):
            cadata = [cadata]
        if not cadata:
            raise Error("cadata: an empty list; pass None for pin-only (leaf) checking")
        for c in cadata:
            if not isinstance(c, (bytes, bytearray)):
                raise Error("cadata: expected DER certificate bytes, found %s" % type(c).__name__)
    if on_failure is not None and not callable(on_failure):
        raise Error("on_failure must be callable")
    return pinset, (list(cadata) if cadata else None), on_failure


def connect(ctx_class, host, port, pinset, cadata, timeout):
    import socket

    if pinset is None:
        from certpin._pinset import load

        pinset = load()
    ctx = ctx_class(pinset, cadata)
    if pinset._find(host) < 0:  # refuse before any network traffic
        raise PinError(unknown_host(pinset, host))
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
    try:
        if timeout is not None:
            s.settimeout(timeout)
        s.connect(ai[-1])
        return ctx.wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise
