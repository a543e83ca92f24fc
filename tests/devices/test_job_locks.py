"""A running config job is held by the database session of the daemon running it (an
advisory lock): while that session lives no other daemon takes the job; once it is gone
(kill -9 of the daemon) the job is an orphan that the next claim resumes."""

from __future__ import annotations

import asyncpg

from daemons.core.config import DatabaseConfig
from daemons.store import devices as store
from daemons.store.pg import create_pool


async def test_a_job_is_resumed_only_once_its_daemon_is_gone(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    a = await asyncpg.connect(migrated)
    b = await asyncpg.connect(migrated)
    try:
        job_id = await store.create_job(pool, "access-vlan", {}, "apply", ["sw1"])
        (job,) = await store.claim_jobs(a)
        assert job.id == job_id
        assert await store.claim_jobs(b) == []
        assert await store.orphaned_jobs(b, set()) == []  # a is alive and holds it
        assert [j.id for j in await store.orphaned_jobs(a, set())] == [job_id]  # re-entrant:
        await store.release_job(a, job_id)  # why the runner passes its own jobs as ``mine``
        assert await store.orphaned_jobs(a, {job_id}) == []
        await a.close()  # the daemon is killed: its session ends, the lock with it
        resumed = await store.orphaned_jobs(b, set())
        assert [j.id for j in resumed] == [job_id]
        assert await store.orphaned_jobs(b, {job_id}) == []
        c = await asyncpg.connect(migrated)
        try:
            assert await store.orphaned_jobs(c, set()) == []  # b holds it now
            await store.finish_job(pool, job_id, "done")
            await store.release_job(b, job_id)
            assert await store.orphaned_jobs(c, set()) == []  # done: nothing to resume
        finally:
            await c.close()
    finally:
        await b.close()
        if not a.is_closed():
            await a.close()
        await pool.close()
