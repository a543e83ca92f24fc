"""Migrations on a real PostgreSQL: from empty, idempotent, guarded against edits."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from daemons.core.lifecycle import ensure_schema
from daemons.store import migrate
from tests.support import netd_env

SCHEMA = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position
"""


async def test_from_empty_then_second_run_changes_nothing(database: str) -> None:
    migs = migrate.available()
    conn = await asyncpg.connect(database)
    try:
        before = await migrate.status(conn, migs)
        assert all(s.applied_at is None for s in before)
        done = await migrate.apply(conn, migs)
        assert [m.version for m in done] == [m.version for m in migs]
        schema = await conn.fetch(SCHEMA)
        rows = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        assert await migrate.apply(conn, migs) == []
        assert await conn.fetch(SCHEMA) == schema
        again = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        assert again == rows
        after = await migrate.status(conn, migs)
        assert all(s.applied_at is not None for s in after)
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_once(database: str) -> None:
    migs = migrate.available()
    conns = [await asyncpg.connect(database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.apply(c, migs) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(migs)]
    finally:
        for c in conns:
            await c.close()


async def test_edited_migration_is_refused(migrated: str) -> None:
    migs = migrate.available()
    edited = [dataclasses.replace(migs[0], sql=migs[0].sql + "\n-- edited"), *migs[1:]]
    conn = await asyncpg.connect(migrated)
    try:
        with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
            await migrate.apply(conn, edited)
        with pytest.raises(migrate.MigrationError, match="newer than this version"):
            await migrate.status(conn, [])
    finally:
        await conn.close()


async def test_failing_migration_rolls_back(database: str) -> None:
    bad = [*migrate.available(), migrate.Migration(99, "broken", "CREATE TABLE x (); SELEC 1;")]
    conn = await asyncpg.connect(database)
    try:
        with pytest.raises(migrate.MigrationError, match=r"0099_broken\.sql failed"):
            await migrate.apply(conn, bad)
        assert await conn.fetchval("SELECT to_regclass('x')") is None
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        assert 99 not in {r["version"] for r in versions}
    finally:
        await conn.close()


def test_cli_migrate_and_status(database: str, tmp_path: Path) -> None:
    env = netd_env({"NETD_DATABASE_URL": database, "NETD_STATE_DIR": str(tmp_path / "state")})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemons.cli", "migrate", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    status = run("--status")
    assert status.returncode == 0, status.stderr
    assert "pending" in status.stdout and "0001_events.sql" in status.stdout
    first = run()
    assert first.returncode == 0, first.stderr
    assert "applied 0001_events.sql" in first.stdout
    second = run()
    assert second.returncode == 0 and second.stdout.startswith("0 applied")
    final = run("--status")
    assert ", 0 pending" in final.stdout
    # an external database starts no embedded store; `netd migrate` makes the secrets key
    # that admin commands and daemons will seal with (and no admin command makes one)
    made = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert made == ["secrets.key"], "an external database must not start embedded ones"


async def test_an_older_netd_runs_on_a_newer_schema_but_does_not_migrate_it(
    migrated: str, store_urls: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rolling upgrade: the new netd migrated; an old daemon that restarts meanwhile
    starts (migrations only add), with a warning; an old `netd migrate` refuses."""
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(migrated, min_size=1, max_size=1)
    try:
        await ensure_schema(pool, True)  # a daemon's start: applies nothing, runs
        await ensure_schema(pool, False)
    finally:
        await pool.close()
    warned = [r for r in caplog.records if "newer than this netd" in r.getMessage()]
    assert warned and warned[0].__dict__["fields"]["newer_migrations"] == ["9999_future"]
    env = netd_env({"NETD_DATABASE_URL": migrated, "NETD_STATE_DIR": str(tmp_path / "s")})
    proc = subprocess.run(
        [sys.executable, "-m", "daemons.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "9999_future that this netd does not ship" in proc.stderr
