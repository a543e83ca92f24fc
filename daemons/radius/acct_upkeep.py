"""What keeps the accounting state true after the commit, and over time.

- After each committed batch (an accounting shell sink): Interim and Start refresh an
  address lease, Stop releases it; an Interim-Update past its plan's monthly data cap or
  time limit runs the plan's quota action (CoA to another plan, or Disconnect) once per
  session, audited.
- In the background, in the instance's first process only (one per instance keeps the
  live sessions whole): the reaper closes sessions that missed their interim updates for
  2.5 intervals; the live-session check rebuilds Redis's live sessions from the sessions
  table when Redis lost them or may have missed updates (:class:`LedgerState`), never
  while the spool holds records the table has not got yet.

Owns: those tasks. Shares: :class:`LedgerState` with the accounting shell, the tables
(engine for the plans, NAS table for the vendor), the in-flight bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from redis.exceptions import RedisError

from daemons.core.config import RadiusConfig
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer, SealError
from daemons.radius import acct
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.sessions import CoaError, act, plan_change
from daemons.radius.shared import LedgerState, Stores
from daemons.radius.tables import Tables
from daemons.store import accounting, pools
from daemons.store import radius as store

log = logging.getLogger("netd.radius")


class Upkeep:
    def __init__(
        self,
        cfg: RadiusConfig,
        stores: Stores,
        sealer: Sealer,
        tables: Tables,
        inflight: Inflight,
        metrics: RadiusMetrics,
        ratelog: RateLimitedLog,
        ledger: LedgerState,
    ) -> None:
        self.cfg = cfg
        self.stores = stores
        self.sealer = sealer
        self.tables = tables
        self.inflight = inflight
        self.metrics = metrics
        self.ratelog = ratelog
        self.ledger = ledger
        self._tasks: list[asyncio.Task[None]] = []

    # --- after each commit ---

    def after_commit(self, records: list[acct.AcctRecord]) -> None:
        """The accounting shell's sink: lease and quota work, off the acks' path."""
        if self.tables.pools:
            self.inflight.spawn(self._leases(records))
        if any(r.status == acct.AcctStatus.INTERIM_UPDATE for r in records):
            self.inflight.spawn(self._quotas(records))

    async def _quotas(self, records: list[acct.AcctRecord]) -> None:
        """On Interim-Update: a plan's monthly data cap or time limit, once exceeded, runs
        its action (CoA to another plan, or Disconnect) once per session, audited."""
        engine = self.tables.engine
        interims = {
            r.unique_id: r
            for r in records
            if r.status == acct.AcctStatus.INTERIM_UPDATE and r.username
        }
        if (
            engine is None
            or not interims
            or not any(p.has_quota for p in engine.policy.plans.values())
        ):
            return
        policy = engine.policy
        pool = self.stores.pool
        try:
            names = list({r.username for r in interims.values()})
            found = await store.fetch_subscribers_db(pool, names)
            for r in interims.values():
                sub = found.get(r.username)
                plan = policy.plan_for(sub.plan) if sub and sub.state == "active" else None
                if plan is None or not plan.has_quota or plan.quota_action is None:
                    continue
                octets, seconds = await accounting.month_usage(pool, r.username, time.time())
                over = (plan.data_cap is not None and octets >= plan.data_cap) or (
                    plan.time_limit is not None and seconds >= plan.time_limit
                )
                if not over or not await accounting.claim_quota_action(pool, r.unique_id):
                    continue
                found_sessions = await accounting.find_sessions(pool, unique_id=r.unique_id)
                if not found_sessions:
                    continue
                nas = self.tables.nas.lookup_name(r.nas)
                if plan.quota_action == "disconnect":
                    kind, extra = "disconnect", []
                else:
                    kind = "coa"
                    extra = plan_change(
                        policy,
                        plan.quota_action.removeprefix("coa:"),
                        nas.vendor if nas else "generic",
                    )
                outcome = await act(
                    pool,
                    self.sealer,
                    self.tables.dictionary,
                    policy,
                    found_sessions[0],
                    kind,
                    extra,
                    actor="quota",
                )
                self.metrics.quota_actions.labels(kind, outcome.result).inc()
                log.info(
                    "quota exceeded: action taken",
                    extra={
                        "fields": {
                            "user": r.username,
                            "plan": plan.name,
                            "octets": octets,
                            "seconds": seconds,
                            "action": plan.quota_action,
                            "result": outcome.result,
                        }
                    },
                )
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
            CoaError,
            SealError,
            KeyError,
            ValueError,
        ) as exc:
            self.ratelog.log(logging.WARNING, "quota", "quota check failed", error=repr(exc))

    async def _leases(self, records: list[acct.AcctRecord]) -> None:
        """Interim refreshes an address lease, Stop releases it (best effort: a lease left
        behind expires by itself)."""
        refresh = [
            (r.framed_ip, r.username)
            for r in records
            if r.framed_ip and r.status in (acct.AcctStatus.START, acct.AcctStatus.INTERIM_UPDATE)
        ]
        release = [
            (r.framed_ip, r.username)
            for r in records
            if r.framed_ip and r.status == acct.AcctStatus.STOP
        ]
        try:
            await pools.refresh_many(self.stores.pool, refresh)
            await pools.release_many(self.stores.pool, release)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.ratelog.log(
                logging.WARNING, "leases", "address leases not updated", error=repr(exc)
            )

    # --- in the background ---

    def start(self) -> None:
        """The live-session check and the reaper (the instance's first process only)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch_live()), loop.create_task(self._reap())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch_live(self) -> None:
        """Rebuild Redis's live sessions from the sessions table when Redis has lost them
        (restarted empty), or may have missed updates (unreachable for a while: it may be
        back with its old data, after a partition or from a snapshot). Not while the spool
        holds records the table has not got yet: the rebuild would leave their sessions out."""
        while True:
            try:
                lost = not await accounting.live_sessions_present(self.stores.cache)
                if (lost or self.ledger.live_missed) and not self.ledger.spooling:
                    self.ledger.live_missed = False
                    live, removed = await accounting.rebuild_live_sessions(
                        self.stores.pool, self.stores.cache
                    )
                    log.info(
                        "live sessions rebuilt from the ledger",
                        extra={
                            "fields": {
                                "sessions": live,
                                "closed_removed": removed,
                                "reason": "lost" if lost else "missed updates",
                            }
                        },
                    )
            except (
                RedisError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                self.ledger.live_missed = True
                self.ratelog.log(
                    logging.WARNING, "live-rebuild", "live sessions not checked", error=repr(exc)
                )
            await asyncio.sleep(self.cfg.live_sessions_check_interval)

    async def _reap(self) -> None:
        """Close sessions that missed their interim updates for 2.5 intervals."""
        while True:
            await asyncio.sleep(self.cfg.reaper_interval)
            try:
                n = await accounting.reap_stale_sessions(
                    self.stores.pool,
                    self.stores.cache,
                    2.5 * self.cfg.interim_interval,
                    time.time(),
                )
            except (
                RedisError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                self.ratelog.log(
                    logging.WARNING, "reaper", "stale sessions not reaped", error=repr(exc)
                )
                continue
            if n:
                self.metrics.reaped.inc(n)
                log.info("stale sessions closed", extra={"fields": {"sessions": n}})
