"""The one user-facing error type of the host tools.

Raise UserError for anything a person caused and can fix (missing file, garbage
PEM, unreachable host, bad pin). cli.main() turns it into
``certpin: <command>: <message>`` on stderr and exit status EXIT_USAGE (or the
status given); no traceback.
"""

EXIT_OK = 0
EXIT_FAIL = 1  # a check ran and found problems (lint findings, a host a device would refuse)
EXIT_USAGE = 2  # a user mistake: bad arguments, unreadable input, unreachable host, ...
EXIT_INTERRUPTED = 130


class UserError(Exception):
    def __init__(self, message, status=EXIT_USAGE):
        super().__init__(message)
        self.status = status
