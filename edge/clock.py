"""Is the system clock synchronised? Asked of the kernel (adjtimex), so it works with any NTP daemon."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
_TIME_ERROR = 5  # adjtimex's answer while the kernel considers the clock unsynchronised


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>: we only read the return value, but the kernel writes the whole struct.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 512)]


def clock_synchronised() -> bool:
    """True when the kernel says an NTP-disciplined clock is in sync; False when it cannot tell."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return False
    return bool(state >= 0 and state != _TIME_ERROR)
