# boot.py: one line pins the whole application.
#
# From here on every TLS client connection made through the tls and ssl
# modules (requests, mip, asyncio streams, umqtt.simple, ...) must match the
# pinset in /certpin.json, whatever verify_mode the library sets; a host that
# is not in the pinset is refused. If /certpin.json is missing or unusable,
# install() raises here and every TLS client connection stays refused (main.py
# still runs; its connections fail with the reason). What install() covers and
# what it cannot: docs/install.md.
import certpin

certpin.install()
