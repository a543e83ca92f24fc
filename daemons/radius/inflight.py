"""Requests in flight and the tasks that hold them, bounded by ``radius.max_inflight``.

Each shell registers what it holds (``held``: requests waiting for their batch or being
decided or committed); every task spawned through :meth:`Inflight.spawn` counts as one
more, unless it is a batch task whose requests its shell counts already. ``draining`` is
set by the daemon's drain: admission takes nothing new, and :meth:`wait` answers what is
in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from daemons.core.ratelog import RateLimitedLog
from daemons.radius.metrics import RadiusMetrics


class Inflight:
    def __init__(self, limit: int, metrics: RadiusMetrics, ratelog: RateLimitedLog) -> None:
        self.limit = limit
        self.metrics = metrics
        self.ratelog = ratelog
        self.draining = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._batch_tasks = 0  # of tasks, those whose requests the load counts already
        self._held: tuple[Callable[[], int], ...] = ()
        self._peak = 0

    def register(self, held: Callable[[], int]) -> None:
        """Count what a shell holds (its ``held()``) in the load."""
        self._held = (*self._held, held)

    def load(self) -> int:
        """Requests held, which radius.max_inflight bounds: what each shell holds, plus
        the tasks that hold no batch (a hash check, an allocation, lease and quota
        updates). A batch task is not counted again: its requests are."""
        total = len(self.tasks) - self._batch_tasks
        for held in self._held:  # a loop, not sum() of a generator: this runs per request
            total += held()
        return total

    def taken(self, load: int) -> None:
        """A request was taken at ``load``: keep the peak."""
        if load >= self._peak:
            self._peak = load + 1
            self.metrics.inflight_peak.set(self._peak)

    def spawn(self, coro: Coroutine[Any, Any, None], batch: bool = False) -> None:
        """Run ``coro`` as a tracked task; ``batch`` for one whose requests are counted in
        the load already (a lookup batch, a commit)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        if batch:
            self._batch_tasks += 1
            task.add_done_callback(self._batch_done)
        task.add_done_callback(self._done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batch_tasks -= 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.metrics.inflight.set(self.load())
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.ratelog.log(logging.ERROR, "internal", "request failed", error=repr(exc))

    async def wait(self) -> None:
        """Until every tracked task (and any they spawn) has ended."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
