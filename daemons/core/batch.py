"""Requests that arrive while a store call is running wait and go together in the next.

A :class:`Batcher` turns many small calls (one per CWMP message, say) into one call per
batch: the first request runs at once, alone; those that come while it runs are gathered
and run together as soon as it returns, and so on. Batches grow with load and a lone
request waits for nothing. At most ``in_flight`` batches run at once.

A batch that raises is run again one request at a time, so one request the store refuses
fails alone and the others of its batch still get their answer. The caller of
:meth:`Batcher.submit` gets its own result or exception either way; a caller that is
cancelled does not take its request out of a batch already running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class Batcher(Generic[Req, Res]):
    """``run`` takes a batch of requests and returns their results in the same order."""

    def __init__(
        self,
        run: Callable[[Sequence[Req]], Awaitable[Sequence[Res]]],
        *,
        max_batch: int = 256,
        in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or in_flight < 1:
            raise ValueError("max_batch and in_flight must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._queue: list[tuple[Req, asyncio.Future[Res]]] = []
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    async def submit(self, request: Req) -> Res:
        """Run ``request`` in the next batch; its result. Raises what the batch of it
        alone raised."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if len(self._running) < self.in_flight:
            self._start()
        return await future

    async def wait(self) -> None:
        """Until every batch started has ended (at a drain)."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _start(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        task = asyncio.get_running_loop().create_task(self._batch(batch))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._queue and len(self._running) < self.in_flight:
            self._start()

    async def _batch(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        try:
            results = await self._run([r for r, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the caller, whatever it is
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for one in batch:  # which request did the store refuse: each alone
                await self._batch([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
