# What a connection does when its pin check did not pass (the cold paths of
# certpin.Conn): the journal, on_failure, the refusal, the expired-pinset
# notice. Loaded only then and dropped again on a device; the message for a
# mismatch comes from _report.
from certpin import PinError, _use


def notify(st, reason, enforced, message):
    # Every failure of a connection comes here: recorded in the journal
    # beside the pinset file (certpin/_journal.py: never raises; its import
    # may, on a failing flash or short of RAM: the refusal goes on), then the
    # application's on_failure. enforced: whether certpin refuses the
    # connection for it (for pinset_expired: whether the pins are still
    # enforced); False when it goes ahead (report_only, or CA validation
    # alone decides). docs/reports.md.
    try:
        _use("_journal", "conn", st, reason, enforced)
    except Exception:
        pass
    f = st.ctx.on_failure
    if f:
        f({"host": st.host, "reason": reason, "enforced": enforced, "message": message})


def fail(st, reason, message):
    # Report, then refuse (unless the host is report_only).
    if reason == "pin_mismatch" and getattr(st, "late", None):  # firmware < 1.23 with cadata: why (certpin._old)
        message += st.late
    notify(st, reason, not st.report, message)
    if not st.report:
        raise PinError(message)


def expired(st):
    # The time floor is past the pinset's expiry: with cadata, CA validation
    # alone decides from now on; without, the pins stay enforced (never no
    # authentication at all).
    e = st.ps.expires
    st.pins = not st.verified
    notify(st, "pinset_expired", st.pins, "%s: the pinset expired on %04d-%02d-%02d: %s; provision a fresh pinset"
           % (st.host, e[0], e[1], e[2], "pins still enforced (no cadata)" if st.pins else "CA validation only"))


def finish(st):
    # Conn.finish() when the check did not pass.
    if st.error is not None:
        fail(st, "internal_error", "%s: the pin check failed: %r" % (st.host, st.error))
    elif not st.leaf:
        fail(st, "not_checked", "%s: the handshake completed but the pin check never ran on the leaf" % st.host)
    else:
        seen = st.seen or ()
        why = "no configured pin matched"
        for depth, d in seen:
            if depth == 0 and not isinstance(d, bytes):
                why = "the leaf certificate cannot be checked"
        try:  # imported, not through _use(): it stays loaded for the journal's record (certpin._journal)
            from certpin._report import describe

            why = describe(st.ps, st.host, [(depth, d, "") for depth, d in seen], st.verified, why)
        except (ImportError, OSError) as e:  # unreadable: the refusal stands, with a text saying so
            why = "%s: %s (certpin/_report cannot be loaded: %r)" % (st.host, why, e)
        fail(st, "pin_mismatch", why)


def refused(st, exc):
    # The stack refused the handshake. Ours: say why as a PinError. A CA
    # validation failure is a PinError too. Network errors pass through
    # (the caller re-raises them).
    if st.error is not None or (st.leaf and st.matched < 0 and st.pins and not st.report):
        finish(st)
    if isinstance(exc, ValueError) or "X509" in str(exc):
        st.report = False
        fail(st, "tls_refused", "%s: TLS certificate validation failed: %s" % (st.host, exc))
