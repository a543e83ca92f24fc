"""This poller's share of the SNMP targets, held under leases in PostgreSQL
(store/snmp_leases.py) among every live `netd poller`.

Why leases, and not only a partition every poller computes: a partition is exact only if
all pollers see the same list of live pollers at the same moment, which they do not while
one starts or dies; a lease in PostgreSQL has one owner at a time whatever each poller
believes. Rendezvous hashing (schedule.owner) still decides who *should* hold what, so the
share is even and a change of pollers moves few targets; the leases make it safe.

Every ``poller.sync_interval`` a poller heartbeats, renews its leases, claims the lapsed or
free leases of the targets it should hold, and marks for handover those another live
poller should hold now (released right after their next poll). A lease lapses
``poller.lease_ttl`` seconds after its last renewal: a killed poller's targets are claimed
by the others at their next sync after that. A poller polls a target only while its own
view of the lease (the renewal's start plus the TTL, by its monotonic clock) is valid, so
it stops before anyone else can claim, even when PostgreSQL is out of its reach.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import asyncpg

from daemons.poller import schedule
from daemons.store import snmp_leases as leases


class Sharing:
    def __init__(
        self, pool: Callable[[], asyncpg.Pool], instance: str, ttl: float, every: float
    ) -> None:
        self._pool = pool  # the stores open after the daemons are made
        self.instance = instance
        self.me = f"{instance}:{os.getpid()}:{os.urandom(4).hex()}"
        self.ttl = ttl
        self.every = every
        self.held: dict[str, float] = {}  # target -> until when (monotonic) the lease holds
        self.handover: set[str] = set()  # held, but another live poller should hold them
        self.live: list[str] = [self.me]
        # A release between a sync's reading of ``held`` and its renewal would be renewed
        # again (its row's expiry is later than the sync transaction's now()) and then
        # held with no poll: syncs and releases take turns.
        self._turn = asyncio.Lock()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool()

    def valid(self, target: str) -> bool:
        """Whether this poller may poll ``target`` now."""
        return time.monotonic() < self.held.get(target, 0.0)

    async def sync(self, targets: Iterable[str]) -> tuple[dict[str, datetime | None], set[str]]:
        """One round with PostgreSQL: the targets claimed now (with their last poll by the
        previous owner, if it said), and those lost (not renewed: stop polling them).
        Raises what asyncpg raises when PostgreSQL is out of reach (nothing changes then:
        the leases run out on their own)."""
        async with self._turn:
            return await self._sync(sorted(set(targets)))

    async def _sync(self, names: list[str]) -> tuple[dict[str, datetime | None], set[str]]:
        started = time.monotonic()
        # Alive: seen within the TTL less a round, so a poller's targets are wanted by
        # the others by the time its leases lapse.
        self.live = await leases.heartbeat(
            self.pool, self.me, self.instance, max(self.ttl - self.every, self.every * 1.5)
        )
        if self.me not in self.live:
            self.live = sorted([*self.live, self.me])
        mine = [n for n in names if schedule.owner(n, self.live) == self.me]
        share = math.ceil(len(names) / max(1, len(self.live)))
        # ``mine`` held ones too: a lease that lapsed before its renewal (a round delayed
        # past the TTL on a loaded machine) is claimed back at once if nobody took it.
        synced = await leases.sync(
            self.pool,
            self.me,
            self.ttl,
            list(self.held),
            mine,
            self.every * 2 + 1.0,
            max(1, share - len(self.held)),
        )
        until = started + self.ttl
        lost = set(self.held) - synced.kept - set(synced.claimed)
        for name in lost:
            self.held.pop(name, None)
        for name in synced.kept:
            self.held[name] = until
        for name in synced.claimed:
            self.held[name] = until
        wanted = set(mine)
        self.handover = {
            n for n in self.held if n not in wanted and schedule.owner(n, self.live) is not None
        }
        return synced.claimed, lost

    async def release(self, target: str, polled_at: datetime | None) -> None:
        """Hand ``target`` over now (after its poll at ``polled_at``)."""
        async with self._turn:
            self.held.pop(target, None)
            self.handover.discard(target)
            await leases.release(self.pool, self.me, [target], polled_at)

    async def leave(self) -> None:
        """A clean stop: every lease lapses now for the others to claim."""
        self.held.clear()
        await leases.leave(self.pool, self.me)
