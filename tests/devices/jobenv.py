"""A job runner on a real PostgreSQL for the device tests: devices added, jobs created,
claimed and run to their end in the test's event loop, events kept."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.devices.jobs import Runner, run_job
from daemons.store import devices as store
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database

VLAN = {"vlan": 20, "vlan_name": "voice", "ports": ["GigabitEthernet0/1", "GigabitEthernet0/2"]}


class Env:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, templates: Path | None = None) -> None:
        self.pool = pool
        self.sealer = sealer
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.runner = Runner(
            pool,
            sealer,
            templates or resources.path("policies") / "config",
            8,
            5.0,
            30,
            self._event,
            5.0,
        )

    async def _event(self, kind: str, subject: str, data: dict[str, Any], severity: str) -> None:
        self.events.append((kind, subject, data))

    async def add(
        self,
        name: str,
        port: int,
        platform: str = "cisco_ios",
        password: str = "secret",
        username: str = "admin",
        secret: str = "",
        variables: dict[str, Any] | None = None,
    ) -> store.Device:
        d = store.Device(
            name, "127.0.0.1", port, platform, username, password, secret, vars=variables or {}
        )
        await store.put_device(self.pool, self.sealer, d)
        return await self.get(name)

    async def get(self, name: str) -> store.Device:
        got = await store.get_device(self.pool, self.sealer, name)
        assert got is not None
        return got

    async def create(
        self,
        mode: str,
        devices: list[str],
        variables: dict[str, Any] | None = None,
        template: str = "access-vlan",
        **kw: Any,
    ) -> int:
        return await store.create_job(
            self.pool, template, variables if variables is not None else VLAN, mode, devices, **kw
        )

    async def run(self, job_id: int) -> dict[str, Any]:
        (job,) = [j for j in await store.claim_jobs(self.pool) if j.id == job_id]
        await run_job(self.runner, self.pool, self.sealer, job, "test")
        got = await store.get_job(self.pool, job_id)
        assert got is not None
        return got

    async def job(
        self,
        mode: str,
        devices: list[str],
        variables: dict[str, Any] | None = None,
        template: str = "access-vlan",
        **kw: Any,
    ) -> dict[str, Any]:
        return await self.run(await self.create(mode, devices, variables, template, **kw))

    async def backup_text(self, backup_id: int) -> str:
        got = await store.get_backup(self.pool, self.sealer, backup_id)
        assert got is not None
        return str(got["config"])


@pytest.fixture
async def env(store_urls: StoreUrls) -> AsyncIterator[Env]:
    async with fresh_database(store_urls, "d_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        e = Env(pool, Sealer(os.urandom(32)))
        try:
            yield e
        finally:
            e.runner.close()
            await pool.close()
