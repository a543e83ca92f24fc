"""The subscriber cache in Redis never keeps a record older than PostgreSQL's: a writer
removes the cached record before it writes (so a writer killed between its commit and its
cache write leaves no entry, not the old one), and a reader's fill after a miss never
replaces what a writer put there (SET NX)."""

from __future__ import annotations

import asyncpg
import pytest

from daemons.core.config import DatabaseConfig
from daemons.store import radius as store
from daemons.store.cache import Cache
from daemons.store.pg import create_pool


async def test_a_reader_fill_never_replaces_a_writer_record(migrated: str, cache: Cache) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        old = store.SubscriberRow("kim", password_enc=b"old", plan="fiber-100")
        await store.upsert_subscriber(pool, cache, old)
        new = store.SubscriberRow("kim", password_enc=b"new", plan="fiber-1000", state="suspended")
        await store.upsert_subscriber(pool, cache, new)
        # A lookup that read PostgreSQL before the write committed fills the cache late.
        await store.cache_subscribers(cache, {"kim": old}, 30)
        hit, row, _ = await store.cached_subscriber(cache, "kim")
        assert hit and row is not None and (row.plan, row.state) == ("fiber-1000", "suspended")
        # ... nor a late "no such user" a lookup made before the subscriber was created.
        await store.cache_subscribers(cache, {"kim": None}, 30)
        assert (await store.cached_subscriber(cache, "kim"))[1] is not None
        # Removal: gone from both.
        assert await store.remove_subscriber(pool, cache, "kim")
        assert await store.cached_subscriber(cache, "kim") == (False, None, 0)
    finally:
        await pool.close()


async def test_the_cached_record_goes_before_the_write(migrated: str, cache: Cache) -> None:
    """A write that fails in PostgreSQL (or whose writer dies after the commit) leaves no
    cached record behind: the next lookup reads PostgreSQL."""
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        await store.upsert_subscriber(
            pool, cache, store.SubscriberRow("lee", password_enc=b"v1", plan="fiber-100")
        )
        await store.bulk_upsert_subscribers(
            pool, cache, [store.SubscriberRow("max", password_enc=b"v1", plan="fiber-100")]
        )
        assert (await store.cached_subscriber(cache, "lee"))[0]
        bad = store.SubscriberRow("lee", password_enc=b"v2", plan="fiber-100", mac="not-a-mac")
        with pytest.raises(asyncpg.PostgresError):
            await store.upsert_subscriber(pool, cache, bad)
        assert await store.cached_subscriber(cache, "lee") == (False, None, 0)
        with pytest.raises(asyncpg.PostgresError):
            await store.bulk_upsert_subscribers(
                pool, cache, [store.SubscriberRow("max", password_enc=b"v2", mac="not-a-mac")]
            )
        assert await store.cached_subscriber(cache, "max") == (False, None, 0)
        row = await store.fetch_subscriber_db(pool, "lee")
        assert row is not None and row.password_enc == b"v1"  # the failed write changed nothing
    finally:
        await pool.close()
