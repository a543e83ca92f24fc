"""core/batch.Batcher: requests that come while a batch runs go together in the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from daemons.core.batch import Batcher


class Store:
    """Doubles each request after a pause; refuses negative ones (the whole batch)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most = 0

    async def run(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.01)
            if any(x < 0 for x in batch):
                raise ValueError(f"refused {min(batch)}")
            return [2 * x for x in batch]
        finally:
            self.running -= 1


async def test_first_alone_then_the_rest_together() -> None:
    store = Store()
    batcher: Batcher[int, int] = Batcher(store.run)
    got = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(10))), 5)
    assert got == [2 * i for i in range(10)]
    assert store.batches == [[0], list(range(1, 10))]
    assert store.most == 1 and len(batcher) == 0


async def test_batches_are_bounded_in_size_and_number() -> None:
    store = Store()
    batcher: Batcher[int, int] = Batcher(store.run, max_batch=3, in_flight=2)
    got = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(10))), 5)
    assert got == [2 * i for i in range(10)]
    assert max(len(b) for b in store.batches) <= 3 and store.most <= 2
    assert sorted(x for b in store.batches for x in b) == list(range(10))


async def test_a_refused_request_fails_alone() -> None:
    store = Store()
    batcher: Batcher[int, int] = Batcher(store.run)
    first = asyncio.ensure_future(batcher.submit(100))
    await asyncio.sleep(0)  # the first batch runs: the next three gather
    rest = [asyncio.ensure_future(batcher.submit(x)) for x in (1, -1, 2)]
    assert await asyncio.wait_for(first, 5) == 200
    done = await asyncio.wait_for(asyncio.gather(*rest, return_exceptions=True), 5)
    assert done[0] == 2 and done[2] == 4
    assert isinstance(done[1], ValueError)
    assert [1, -1, 2] in store.batches and [-1] in store.batches  # then one by one


async def test_wait_and_bad_arguments() -> None:
    store = Store()
    batcher: Batcher[int, int] = Batcher(store.run)
    task = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.wait_for(batcher.wait(), 5)
    assert task.done() and task.result() == 2
    with pytest.raises(ValueError):
        Batcher(store.run, max_batch=0)
