"""Migration device_jobs (0017) on a database written before it: a device's one pinned key
becomes its pinned set, and the backups stored in clear are sealed by the devices daemon's start
(``seal_clear_backups``), their clear text gone and their digest keyed."""

from __future__ import annotations

import os

import asyncpg

from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.store import devices as store
from daemons.store import migrate
from daemons.store.pg import create_pool


async def test_upgrade_pins_the_old_key_and_seals_old_backups(database: str) -> None:
    every = migrate.available()
    conn = await asyncpg.connect(database)
    try:
        mine = next(m for m in every if m.name == "device_jobs")
        await migrate.apply(conn, [m for m in every if m.version < mine.version])
        sealer = Sealer(os.urandom(32))
        await conn.execute(
            "INSERT INTO devices (name, address, platform, credentials_enc, host_key) "
            "VALUES ('sw1', '192.0.2.1', 'cisco_ios', $1, 'ssh-rsa AAAAold')",
            sealer.seal(b'{"username": "a", "password": "b"}', b"device:sw1"),
        )
        await conn.execute(
            "INSERT INTO device_backups (device, sha256, config, reason) VALUES "
            "('sw1', 'x', 'hostname sw1\nsnmp-server community c0mm RO\n', 'scheduled')"
        )
        await migrate.apply(conn, every)
        row = await conn.fetchrow("SELECT host_key, host_keys FROM devices WHERE name = 'sw1'")
        assert list(row["host_keys"]) == ["ssh-rsa AAAAold"]
        assert row["host_key"] == "ssh-rsa AAAAold"  # kept for a daemon of the release before
    finally:
        await conn.close()
    pool = await create_pool(DatabaseConfig(), database, "test")
    try:
        assert await store.seal_clear_backups(pool, sealer) == 1
        assert await store.seal_clear_backups(pool, sealer) == 0
        r = await pool.fetchrow("SELECT id, config, config_enc, sha256, size FROM device_backups")
        assert r["config"] is None and b"c0mm" not in r["config_enc"]
        assert r["sha256"] == store.backup_digest(
            sealer, "hostname sw1\nsnmp-server community c0mm RO\n"
        )
        got = await store.get_backup(pool, sealer, r["id"])
        assert got is not None and "c0mm" in got["config"]
        assert (await store.list_backups(pool, "sw1"))[0]["size"] == r["size"] > 0
        # The same config again: not stored twice (the keyed digest matches).
        _id, changed = await store.save_backup(
            pool, sealer, "sw1", "hostname sw1\nsnmp-server community c0mm RO\n", "x"
        )
        assert _id == r["id"] and not changed
    finally:
        await pool.close()
