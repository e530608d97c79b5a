"""Decide acceptance the way a device does, by calling the device library.

``certpin.loads`` and ``certpin.check`` (firmware_lib/certpin, installed in the
venv) are the rules; the host tools call them so host and device agree. If the
installed library lacks them, a fallback with the documented rules is used and
``using_device_library()`` says so.
"""
from certpin_host import pinsetfile
from certpin_host.pins import CERT_PREFIX, SPKI_PREFIX, cert_item


class Refused(Exception):
    """A device would refuse this connection; the message says why."""


def _lib():
    try:
        import certpin
    except Exception:
        return None
    if hasattr(certpin, "loads") and hasattr(certpin, "check"):
        return certpin
    return None


def using_device_library():
    return _lib() is not None


def load(text):
    """Return (device pinset object or None, the JSON data). Raises ValueError with the device's message."""
    lib = _lib()
    obj = None
    if lib is not None:
        try:
            obj = lib.loads(text)
        except lib.Error as e:
            raise ValueError(str(e))
    try:
        data, _ = pinsetfile.loads_with_duplicates(text)
    except ValueError as e:
        raise ValueError("not valid JSON: %s" % e)
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise ValueError("not a pinset (a JSON object with \"hosts\")")
    return obj, data


def entry_for(data, host):
    """(key, entry) the device uses for host: exact match, else the most specific subdomains entry."""
    hosts = data["hosts"]
    h = pinsetfile.normalise_host(host)
    if h in hosts:
        return h, hosts[h]
    if not pinsetfile.is_ip(h):
        parts = h.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[i:])
            e = hosts.get(parent)
            if isinstance(e, dict) and e.get("subdomains") is True:
                return parent, e
    return None, None


def check(obj, data, host, chain, verified):
    """The pin that matched, or raise Refused. chain: DER certificates, leaf first."""
    lib = _lib()
    if lib is not None and obj is not None:
        try:
            return lib.check(obj, host, list(chain), verified=verified)
        except lib.Error as e:
            raise Refused(str(e))
    return _fallback_check(data, host, chain, verified)


def _fallback_check(data, host, chain, verified):
    key, entry = entry_for(data, host)
    if entry is None:
        raise Refused("%s: host not in the pinset" % host)
    if not chain:
        raise Refused("%s: the server presented no certificate" % host)
    pins = set(entry.get("pins", ()))
    for depth, der in enumerate(chain if verified else chain[:1]):
        item = cert_item(der, source=host, depth=depth)
        if item.device_error:
            if depth == 0:
                raise Refused("%s: the leaf certificate cannot be checked: %s" % (host, item.device_error))
            continue
        for p in (item.spki_sha256, item.cert_sha256):
            if p in pins:
                return p
    raise Refused("%s: no configured pin matches the %s" % (host, "chain" if verified else "leaf certificate"))


def pin_matches(pin, item):
    if pin.startswith(SPKI_PREFIX):
        return pin == item.spki_sha256
    if pin.startswith(CERT_PREFIX):
        return pin == item.cert_sha256
    return False
