# certpin example for ESP32_GENERIC (MicroPython >= 1.23).
#
# Boot flow: Wi-Fi from /secrets.json, clock from NTP when CA validation is on,
# a signed pinset update from the pinset's update.url (docs/updates.md), then
# a pinned HTTPS GET to your server every minute; after a refusal, one more
# update check and, if it installed a newer pinset, one retry. A refused server gets a
# clear message; every failure is retried with backoff, never a crash loop.
#
# /secrets.json:
#   {"ssid": "my-wifi", "password": "...",
#    "host": "api.example.com", "port": 443, "path": "/health",
#    "cafile": "/ca.der"}          <- optional: DER CA certificate(s) to verify the chain
# /certpin.json: the pinset (`certpin flash pins.json --port /dev/ttyUSB0 --lib`)
import json
import time

import certpin

SECRETS = "/secrets.json"
PERIOD_S = 60


def load_config():
    with open(SECRETS) as f:
        cfg = json.load(f)
    for key in ("ssid", "password", "host"):
        if key not in cfg:
            raise KeyError(key)
    cfg.setdefault("port", 443)
    cfg.setdefault("path", "/")
    return cfg


def wifi_connect(ssid, password, timeout_s=20):
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
        t0 = time.ticks_ms()
        while not wlan.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_s * 1000:
                raise OSError("Wi-Fi: no connection to %r after %d s" % (ssid, timeout_s))
            time.sleep_ms(200)
    return wlan.ifconfig()[0]


def set_clock():
    # mbedTLS checks certificate dates when the chain is verified (cadata): an
    # unset clock (2000-01-01 on ESP32) makes every certificate "not yet valid".
    import ntptime

    ntptime.settime()  # UTC; ESP32 counts from 2000, certpin compares dates, not epoch seconds


def https_get(pinset, host, port, path, cadata):
    s = certpin.connect(host, port, pinset=pinset, cadata=cadata, timeout=15)
    try:
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
    try:
        cfg = load_config()
    except (OSError, ValueError, KeyError) as e:
        print("NO SETTINGS: %s missing or not JSON (%r): copy one with mpremote fs cp secrets.json :secrets.json" % (SECRETS, e))
        return
    try:
        pinset = certpin.load()  # read and validated once, at start
    except (OSError, certpin.PinsetError) as e:
        print("NO PINSET: /certpin.json cannot be used (%s); flash one: certpin flash pins.json --port PORT" % (e,))
        return
    cadata = None
    if cfg.get("cafile"):
        with open(cfg["cafile"], "rb") as f:
            cadata = f.read()
    host, port = cfg["host"], cfg["port"]
    delay = 5
    clock_set = False
    booted = False
    while True:
        try:
            ip = wifi_connect(cfg["ssid"], cfg["password"])
            if cadata and not clock_set:
                set_clock()  # unauthenticated, but expiry is judged by certpin's time floor, not this clock
                clock_set = True
            if not booted:
                booted = True
                pinset = check_update("at boot") or pinset
            try:
                reply = https_get(pinset, host, port, cfg["path"], cadata)
            except certpin.PinError as e:
                # Not one of the pinned keys: an attacker, a proxy, or a key
                # rotated before this device got the pinset naming it. Nothing
                # was sent to that server. A newer signed pinset may know it:
                # fetch it, and retry once if one was installed.
                print("REFUSED %s: the server's key is not pinned" % host)
                print(e)
                new = check_update("after a refusal")
                if new is None:
                    raise Refused()
                pinset = new
                reply = https_get(pinset, host, port, cfg["path"], cadata)  # a PinError: refused again
            print("pinned GET %s from %s: %s" % (host, ip, reply.split(b"\r\n")[0].decode()))
            delay = 5
            time.sleep(PERIOD_S)
            continue
        except Refused:
            pass  # said above
        except certpin.PinError as e:
            print("REFUSED %s: the server's key is not pinned, even by the updated pinset" % host)
            print(e)
        except certpin.Error as e:  # e.g. a cadata certificate this firmware cannot load
            print("certpin: %s" % (e,))
        except OSError as e:
            print("network error: %r" % (e,))
        print("retrying in %d s" % delay)
        time.sleep(delay)
        delay = min(delay * 2, 600)


main()
