# certpin example for the virtual board (`certpin vboard`, the MicroPython unix port).
#
# The same flow as boards/ESP32_GENERIC/main.py without Wi-Fi and NTP (the unix
# port uses the host's network and clock): load the pinset once, make a pinned
# HTTPS GET, print a clear message when the server is refused, retry with
# backoff instead of crashing.
#
# Settings come from /app.json on the board, so the demo can point it at local
# servers:  {"host": "localhost", "port": 8443, "path": "/", "attempts": 1,
#            "cafile": "/ca.der"}      (cafile optional: a DER CA certificate)
# attempts 0 (the default) means: keep going forever, as a device would.
# Signed pinset updates: fetched from the pinset's update.url at boot and
# after a refusal (docs/updates.md); a newly installed pinset gets one retry.
import json
import time

import certpin

CONFIG = "/app.json"


def load_config():
    try:
        with open(CONFIG) as f:
            cfg = json.load(f)
    except OSError:
        cfg = {}
    cfg.setdefault("host", "localhost")
    cfg.setdefault("port", 443)
    cfg.setdefault("path", "/")
    cfg.setdefault("attempts", 0)
    return cfg


def load_cadata(cfg):
    if not cfg.get("cafile"):
        return None  # pins are checked on the leaf only
    with open(cfg["cafile"], "rb") as f:
        return f.read()  # DER: chain and hostname are verified, a pin may match any verified certificate


def https_get(pinset, host, port, path, cadata):
    s = certpin.connect(host, port, pinset=pinset, cadata=cadata, timeout=15)
    try:
        # nothing is written before the pin check passed: connect() raised otherwise
        s.write(("GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
        return s.read(512)
    finally:
        s.close()


class Refused(Exception):
    pass


def check_update(why):
    # A signed pinset update (docs/updates.md) from the pinset's update.url:
    # verified against the keys the installed pinset names, installed
    # atomically. Returns the new pinset, or None when nothing changed.
    try:
        pinset, changed = certpin.fetch_update(timeout=15)
        print("UPDATE %s: %s (serial %s)" % (why, "installed" if changed else "none newer", pinset.serial))
        return pinset if changed else None
    except certpin.UpdateError as e:  # no update.url, server down, a refused bundle: keep what we have
        print("UPDATE %s failed (%s): %s" % (why, e.reason, e.args[0].splitlines()[0]))
        return None


def main():
    cfg = load_config()
    try:
        pinset = certpin.load()  # read and validated once, at start
    except (OSError, certpin.PinsetError) as e:
        print("NO PINSET: /certpin.json cannot be used (%s); flash one: certpin flash pins.json --port PORT" % (e,))
        return
    cadata = load_cadata(cfg)
    host, port = cfg["host"], cfg["port"]
    delay, attempt = 1, 0
    pinset = check_update("at boot") or pinset
    while True:
        attempt += 1
        try:
            try:
                reply = https_get(pinset, host, port, cfg["path"], cadata)
            except certpin.PinError as e:
                # the server presented a key that is not pinned: possibly an
                # attacker, possibly a rotation this pinset does not know yet:
                # fetch a signed update, and retry once if one was installed
                print("REFUSED %s:%d: the server's key is not in the pinset" % (host, port))
                print(e)
                new = check_update("after a refusal")
                if new is None:
                    raise Refused()
                pinset = new
                reply = https_get(pinset, host, port, cfg["path"], cadata)
            print("PINNED OK %s:%d: %s" % (host, port, reply.split(b"\r\n")[0].decode()))
            print(reply.split(b"\r\n\r\n", 1)[-1].decode().strip())
            delay = 1
        except Refused:
            pass  # said above
        except certpin.PinError as e:
            print("REFUSED %s:%d: the server's key is not in the updated pinset either" % (host, port))
            print(e)
        except certpin.Error as e:  # e.g. a cadata certificate this firmware cannot load
            print("certpin: %s" % (e,))
        except OSError as e:
            print("NETWORK ERROR %s:%d: %r" % (host, port, e))
        if cfg["attempts"] and attempt >= cfg["attempts"]:
            break
        print("retrying in %d s" % delay)
        time.sleep(delay)
        delay = min(delay * 2, 60)  # back off: never hammer a server that refuses us


main()
