# The texts of refused and failed updates, by number: loaded only when an
# update, a request or an install is refused, and dropped again on a device.
# Kept in the modules that check, fetch and install, they took the heap of
# every update (a .mpy module's strings are copied into the heap when it is
# imported; measured: 4 KB of the rules' 10 KB on the 64-bit unix port).
# The refusals on the way of a device that missed a signing-key rotation (a
# threshold of unknown keys) keep their texts in certpin/_update.py: the
# catch-up walk starts from them.
T = (
    # certpin/_fetch.py: run(), fetch_update(), walk()
    "the filesystem failed during the update (%s); the installed pinset is what certpin.load() reads now",  # 0
    "not enough free RAM for the update (a bundle needs about 3 times its size, and the update code about 20 KB); "
    "free some (gc.collect(), fewer objects) and try again; the installed pinset is what certpin.load() reads now",
    "no url given, and the pinset at %s has no update.url",
    "%s: not found (HTTP 404)",
    # certpin/_update.py: the rules
    "%s is not JSON in strict UTF-8 (integers of at most 16 digits)",  # 4
    "%s is not base64url without padding",
    "%s is not a JSON object",
    "%s has the member %r (allowed: %s)",
    "expected the bundle as bytes or str, not %s",  # 8
    "the bundle has %d bytes (at most %d)",
    'the bundle needs "payload" and a non-empty list "signatures"',
    "%d signatures (at most %d: a device's pinset names at most 16 keys, and a rotation's bundle is signed by old "
    "and new ones)",
    "signatures[%d].protected is not a JSON object",  # 12
    "%d of %d required valid signatures from distinct update keys the NEW pinset names (a pinset that names new "
    "update keys must be signed by a threshold of them too: proof they are held)\n%s",
    'the installed pinset has no "update" section naming the keys that may sign its successor: flash a pinset '
    "with one over USB (certpin flash)",
    'the installed pinset has no "serial", so a replay could not be told from an update: flash a pinset with a '
    "serial over USB (certpin flash)",
    "the signed payload is not a valid pinset: %s",  # 16
    "the signed pinset has no serial (the next update could not be told from a replay)",
    "the signed pinset has serial %d, not greater than the installed serial %d (an older pinset replayed, or the "
    "same serial reused)",
    "the signed pinset (serial %d) expired on %04d-%02d-%02d (today is %04d-%02d-%02d)",
    # certpin/_catchup.py: the catch-up steps
    "while catching up (the newest release at %s was refused: %s)",  # 20
    "and the site offers no way on from this key set: %s is not there",
    "and the site's catch-up file for this key set, %s, is the release this device holds",
    "catch-up step %d: %s",  # 23
    "more than %d catch-up steps from %s: the walk got to serial %d; the device keeps what it installed, call "
    "again to go on",
    "the newest release this device can reach (serial %d) expired on %04d-%02d-%02d (today is %04d-%02d-%02d)",
    "the catch-up path from %s ended on serial %d, a genuine release (installed), but not the newest release the "
    "site serves there: its catch-up files and newest release disagree (a publish in progress, or a site that "
    "withholds releases); call again later",
    # certpin/_floor.py: the install
    "%s read back differently from what was written: flash failing? The installed pinset is unchanged",  # 27
    "cannot write %s (%s); the installed pinset is unchanged",
    # certpin/_http.py: the transport
    "%r is not a URL of printable ASCII (at most 512 characters)",  # 29
    "%r is not an http:// or https:// URL",
    "%r: bad port",
    "%r: no usable host",
    "%s: no complete answer within %s s",  # 33
    "%s: connection refused by %s:%d (nothing listening there?)",
    "%r: not a usable host name",
    "%s: HTTP %s, a redirect to %r: not followed; point update.url (or the url argument) at the bundle itself",
    "%s: HTTP %s",  # 37
    "%s: the response headers are longer than %d bytes",
    "%s: the response is larger than %d bytes (a bundle is at most that)",
    "%s: more bytes than its Content-Length of %d: refused, not cut short",
    "%s: the connection closed before the response headers ended (%d bytes)",  # 41
    "%s: truncated: %d of the %d bytes of Content-Length",
    "%s: not an HTTP response: %r",
    "%s: bad Content-Length %r",
    "%s: Content-Length %d is larger than %d bytes (a bundle is at most that)",  # 45
    "%s: Transfer-Encoding %r: not supported (the request is HTTP/1.0); serve the bundle as a plain file",
)
