"""Ordered SQL migrations: ``daemons/store/migrations/NNNN_name.sql``.

Each migration runs in its own transaction and is recorded with its checksum in
``schema_migrations``. A session-level advisory lock lets many daemons start at once.
A landed migration is never edited: a changed checksum stops ``netd migrate`` with an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from daemons.store.pg import Conn

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6E657464  # "netd": the advisory lock that serialises migrators

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migration files and the database disagree, or a migration failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None


def available(package: str = "daemons.store.migrations") -> list[Migration]:
    """Every migration shipped in ``package``, in order. Raises MigrationError on a bad name."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def applied_newer(conn: Conn, migrations: list[Migration]) -> list[str]:
    """The applied migrations newer than this netd (empty on a fresh database)."""
    if not await has_schema(conn):
        return []
    return newer(migrations, await _applied(conn))


async def has_schema(conn: Conn) -> bool:
    """Whether any migration was ever applied to this database."""
    return bool(await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"))


async def _applied(conn: Conn) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {row["version"]: row for row in rows}


def newer(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> list[str]:
    """Applied migrations this netd does not ship (a newer netd applied them)."""
    known = {m.version for m in migrations}
    return [f"{v:04d}_{row['name']}" for v, row in sorted(applied.items()) if v not in known]


def _check(
    migrations: list[Migration], applied: dict[int, asyncpg.Record], allow_newer: bool = False
) -> None:
    known = {m.version: m for m in migrations}
    for version, row in applied.items():
        mig = known.get(version)
        if mig is None:
            if allow_newer:  # migrations only add (ARCHITECTURE.md): an older netd runs on
                continue
            raise MigrationError(
                f"the database has migration {version:04d}_{row['name']} that this netd does "
                "not ship: it is newer than this version of netd"
            )
        if row["checksum"] != mig.checksum:
            raise MigrationError(
                f"migration {mig.filename} was changed after it was applied; landed "
                "migrations are never edited: add a new one instead"
            )


async def status(
    conn: Conn, migrations: list[Migration], allow_newer: bool = False
) -> list[MigrationState]:
    """Each migration and when it was applied (None: pending). Raises MigrationError."""
    await conn.execute(_BOOKKEEPING)
    applied = await _applied(conn)
    _check(migrations, applied, allow_newer)
    return [
        MigrationState(m, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in migrations
    ]


async def apply(
    conn: Conn, migrations: list[Migration], allow_newer: bool = False
) -> list[Migration]:
    """Apply every pending migration in order; return those applied. ``allow_newer`` lets
    an older netd (a daemon during a rolling upgrade) start on a schema a newer one
    migrated; ``netd migrate`` itself refuses. Raises MigrationError."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        applied = await _applied(conn)
        _check(migrations, applied, allow_newer)
        done: list[Migration] = []
        for mig in migrations:
            if mig.version in applied:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        mig.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {mig.filename} failed: {exc}") from None
            done.append(mig)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
