"""Store verbs for subscribers against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

from daemons.core.config import DatabaseConfig
from daemons.store import radius as store
from daemons.store.cache import Cache
from daemons.store.pg import create_pool


async def test_bulk_upsert_and_cache(migrated: str, cache: Cache) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        subs = [
            store.SubscriberRow(
                f"user{i:05d}",
                password_enc=b"sealed",
                plan="fiber-100",
                mac="aa:bb:cc:00:00:01" if i == 3 else None,
                framed_ip="100.64.0.3" if i == 3 else None,
            )
            for i in range(2000)
        ]
        await store.bulk_upsert_subscribers(pool, cache, subs)
        assert await pool.fetchval("SELECT count(*) FROM subscribers") == 2000
        row = await store.fetch_subscriber_db(pool, "user00003")
        assert row is not None and row.mac == "aa:bb:cc:00:00:01"
        assert row.framed_ip == "100.64.0.3"
        hit, cached, sessions = await store.cached_subscriber(cache, "user00003")
        assert hit and cached == row and sessions == 0
        # Upserting again replaces, never duplicates.
        await store.bulk_upsert_subscribers(
            pool, cache, [store.SubscriberRow("user00003", password_enc=b"other", plan="default")]
        )
        again = await store.fetch_subscriber_db(pool, "user00003")
        assert again is not None and again.plan == "default" and again.mac is None
        assert await pool.fetchval("SELECT count(*) FROM subscribers") == 2000
        # Unknown users are remembered briefly, sparing PostgreSQL.
        await store.cache_subscriber(cache, "ghost", None, 30)
        assert await store.cached_subscriber(cache, "ghost") == (True, None, 0)
        assert await store.cached_subscriber(cache, "never-seen") == (False, None, 0)
    finally:
        await pool.close()


async def test_partitions_made_by_many_at_once(migrated: str) -> None:
    """A month's ledger partition asked for by many batches and workers at once (as at
    start-up under load): every one succeeds. IF NOT EXISTS alone loses this race with
    DuplicateTableError, which once sent a worker into spooling every record."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from daemons.store import accounting  # noqa: PLC0415

    pools = [await create_pool(DatabaseConfig(), migrated, "test") for _ in range(2)]
    try:
        now = datetime(2031, 5, 17, tzinfo=UTC).timestamp()  # months no other test makes
        await asyncio.gather(*(accounting.ensure_partitions(pools[i % 2], now) for i in range(16)))
        names = await pools[0].fetch(
            "SELECT relname FROM pg_class WHERE relname IN "
            "('accounting_events_2031_05', 'accounting_events_2031_06')"
        )
        assert len(names) == 2
    finally:
        for p in pools:
            await p.close()


async def test_a_partition_made_after_its_rows_reached_the_default(migrated: str) -> None:
    """Ledger rows written before their month's partition existed (a session closed through
    the API on a fresh install, before the first accounting commit) sit in the default
    partition, and PostgreSQL then refuses that partition for ever: every later record was
    quarantined as "refused for its content". The rows now move into the new partition."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from daemons.radius.acct import AcctRecord, AcctStatus  # noqa: PLC0415
    from daemons.store import accounting  # noqa: PLC0415
    from daemons.store import snmp as snmp_store  # noqa: PLC0415

    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        when = datetime(2033, 2, 10, tzinfo=UTC).timestamp()  # a month no other test makes
        early = [
            AcctRecord(
                nas="bng1",
                status=AcctStatus.START,
                acct_session_id=f"early-{i}",
                unique_id=f"early-{i}",
                idem_key=f"k-early-{i}",
                event_time=when + i,
                username="early",
            )
            for i in range(3)
        ]
        await accounting.append_accounting(pool, early)
        in_default = "SELECT count(*) FROM accounting_events_default WHERE username = 'early'"
        assert await pool.fetchval(in_default) == 3
        await accounting.ensure_partitions(pool, when)
        assert await pool.fetchval(in_default) == 0
        assert await pool.fetchval("SELECT count(*) FROM accounting_events_2033_02") == 3
        late = [
            AcctRecord(
                nas="bng1",
                status=AcctStatus.STOP,
                acct_session_id="early-0",
                unique_id="early-0",
                idem_key="k-late-0",
                event_time=when + 60,
                username="early",
            )
        ]
        await accounting.append_accounting(pool, late)
        assert await pool.fetchval("SELECT count(*) FROM accounting_events_2033_02") == 4
        # the SNMP samples' daily partitions take the same path
        day = datetime(2033, 2, 10, 12, tzinfo=UTC)
        await pool.execute(
            "INSERT INTO snmp_samples (ts, target, metric, labels, value) "
            "VALUES ($1, 't', 'm', '{}', 1)",
            day,
        )
        await snmp_store.ensure_partitions(pool, day, 100_000)
        assert await pool.fetchval("SELECT count(*) FROM snmp_samples_20330210") == 1
    finally:
        await pool.close()
