"""The small named interfaces the RADIUS daemon's layers share.

- :class:`Sender` is what a reply goes back through: a UDP transport today (its
  ``sendto``), a stream connection later. Admission and the shells only ever call it.
- :class:`Receiver` is what a transport hands a datagram to: the auth shell and the
  accounting shell each are one.
- :class:`Router` is what may take a request after admission (the proxy shell).
- :class:`Stores` is how a shell reaches PostgreSQL and Redis (the daemon's ``Context``
  is one; a test passes its own).
- :class:`Job` is one admitted request between its datagram and its reply.
- :class:`Drops` counts and logs what is dropped, the one place that does.
- :class:`LedgerState` is what the accounting shell tells its upkeep (spooling, live
  sessions possibly behind).
- :func:`within` and :func:`hold` bound a store call in time and keep abandoned tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg

from daemons.core.ratelog import RateLimitedLog
from daemons.radius.auth import Nas
from daemons.radius.codec import DropReason, Packet
from daemons.radius.metrics import RadiusMetrics
from daemons.store.cache import Cache


class Sender(Protocol):
    """Sends a reply to the peer a request came from (``asyncio.DatagramTransport`` is
    one; a stream transport gives one per connection and may ignore ``addr``)."""

    def sendto(self, data: bytes, addr: Any, /) -> None: ...


class Receiver(Protocol):
    """Takes a request's bytes, its peer and the way back; never raises."""

    def received(self, data: bytes, addr: Any, sender: Sender) -> None: ...


class Router(Protocol):
    """Takes an admitted request before its shell does (the proxy: realms, RFC 2865
    §2.3); True when it took it. May replace ``job.username`` (a stripped realm)."""

    def __call__(self, key: tuple[Any, ...], now: float, job: Job) -> bool: ...


class Stores(Protocol):
    """PostgreSQL and Redis, looked up when used (``daemons.core.lifecycle.Context``)."""

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def cache(self) -> Cache: ...


@dataclass(slots=True)
class Job:
    """One admitted request between its datagram and its reply."""

    pkt: Packet
    nas: Nas
    addr: Any
    sender: Sender
    key: tuple[Any, ...]
    t0: float
    username: str | None
    plan: str | None = None  # issue 28: a local realm's plan for its subscribers on "default"


@dataclass(slots=True)
class LedgerState:
    """What the accounting shell and its upkeep share."""

    spooling: bool = False  # the spool holds records the ledger has not got yet
    live_missed: bool = False  # a live-session update failed: Redis may be behind


class Drops:
    """Everything that is not answered is counted by NAS and reason here, and logged at
    most once per reason per 10 s."""

    def __init__(self, metrics: RadiusMetrics, ratelog: RateLimitedLog) -> None:
        self.metrics = metrics
        self.ratelog = ratelog

    def drop(self, reason: DropReason, nas: str, addr: Any, detail: str = "") -> None:
        self.metrics.drops.labels(nas, reason.value).inc()
        self.ratelog.log(
            logging.INFO,
            reason.value,
            "request dropped",
            reason=reason.value,
            nas=nas or None,
            source=addr[0],
            detail=detail or None,
        )

    def rate_limited(self, nas: Nas, addr: Any, limit: float, burst: int) -> None:
        """Over the NAS's rate: counted, and logged at most once per NAS per 10 s."""
        self.metrics.child(self.metrics.drops, nas.name, DropReason.RATE_LIMITED.value).inc()
        self.ratelog.log(
            logging.WARNING,
            f"rate_limited:{nas.name}",
            "NAS over its rate limit; requests dropped",
            reason=DropReason.RATE_LIMITED.value,
            nas=nas.name,
            source=addr[0],
            limit=limit,
            burst=burst,
        )


_T = TypeVar("_T")


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned task's outcome, so asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()


async def within(
    coro: Coroutine[Any, Any, _T], seconds: float, abandoned: set[asyncio.Task[Any]]
) -> _T:
    """``coro``'s result, or TimeoutError after ``seconds``. Past the deadline the task is
    cancelled and left to unwind on its own, not awaited: a client's cleanup of a
    cancelled call may itself wait on the store that hangs (asyncpg's does). ``abandoned``
    holds it until it has."""
    task = asyncio.get_running_loop().create_task(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        hold(task, abandoned)
        raise TimeoutError(f"no answer in {seconds}s")
    return task.result()


def hold(task: asyncio.Task[Any], held: set[asyncio.Task[Any]]) -> None:
    """Keep a task nobody awaits referenced until it ends, its outcome retrieved."""
    held.add(task)
    task.add_done_callback(held.discard)
    task.add_done_callback(_consume)
