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
    while True:
        attempt += 1
        try:
            reply = https_get(pinset, host, port, cfg["path"], cadata)
            print("PINNED OK %s:%d: %s" % (host, port, reply.split(b"\r\n")[0].decode()))
            print(reply.split(b"\r\n\r\n", 1)[-1].decode().strip())
            delay = 1
        except certpin.PinError as e:
            # the server presented a key that is not pinned: possibly an attacker
            print("REFUSED %s:%d: the server's key is not in the pinset" % (host, port))
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
