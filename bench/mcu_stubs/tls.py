# Stand-in for the `tls` module, frozen into both qemu builds by bench/mcu.py.
# MicroPython's qemu port has no network and no `tls`; certpin imports it at
# import time (its pinned TLS layer), so without this module it would not
# import at all. Nothing the figures measure uses it: the harness imports it
# before any baseline, so its few bytes are never counted as certpin's.
