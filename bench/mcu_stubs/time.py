# Stand-in for the `time` module, frozen into both qemu builds by bench/mcu.py.
# MicroPython 1.26's qemu port has no `time` module (no RTC); certpin._update
# calls time.gmtime() for its expiry rule. This one answers what a board whose
# clock was never set answers (an esp32 before NTP: 2000-01-01): certpin then
# judges expiry by its time floor alone (CLOCK_FLOOR in certpin/_update.py).
# The harness imports it before any baseline.


def gmtime(t=None):
    return (2000, 1, 1, 0, 0, 0, 5, 1)
