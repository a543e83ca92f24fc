"""Log lines that cannot flood: at most one per key per interval, with a count of the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, **fields: Any) -> bool:
        """Log unless ``key`` was logged within the interval; return whether it was."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        self._last[key] = now
        if len(self._last) > 10_000:  # keys come from the network: keep the map bounded
            self._last.clear()
        self.logger.log(level, msg, extra={"fields": fields})
        return True
