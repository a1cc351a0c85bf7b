"""Log lines for failures that repeat: the first at once, then one summary a minute, and one line when
the failure ends (Home Assistant's coordinator style). Used where a failure can recur every sale or
every loop turn: a full disk, a broken uplink loop."""

from __future__ import annotations

import logging
import time

from protocol.throttle import Throttle, summarised


class LogThrottle:
    """One logger's view of one recurring failure."""

    def __init__(self, logger: logging.Logger, *, every: float = 60.0) -> None:
        self._logger = logger
        self._gate = Throttle(every)
        self.failing = False

    def _log(self, level: int, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        self.failing = True
        held_back = self._gate.report(time.monotonic())
        if held_back is not None:
            msg, args = summarised(msg, args, held_back)
            self._logger.log(level, msg, *args, exc_info=exc_info)

    def error(self, msg: str, *args: object) -> None:
        """Log at ERROR, throttled."""
        self._log(logging.ERROR, msg, args, False)

    def warning(self, msg: str, *args: object) -> None:
        """Log at WARNING, throttled."""
        self._log(logging.WARNING, msg, args, False)

    def exception(self, msg: str, *args: object) -> None:
        """Log at ERROR with the current traceback, throttled."""
        self._log(logging.ERROR, msg, args, True)

    def recovered(self, msg: str, *args: object) -> None:
        """The failure is over: log `msg` at INFO once (nothing if it was not failing)."""
        if not self.failing:
            return
        self.failing = False
        held_back = self._gate.reset()
        if held_back:
            msg += " (%d more failures went unlogged)"
            args = (*args, held_back)
        self._logger.info(msg, *args)
