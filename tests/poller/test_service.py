"""A real `netd poller` against our own snmpd: targets from PostgreSQL, samples in Redis,
PostgreSQL and /snmp/metrics, and an unreachable target reported once as an event."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.poller.client import Credentials
from daemons.store import snmp as store
from daemons.store.cache import connect, unpack
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.support import NetdProcess, free_port, netd_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    snmpd = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield snmpd
    snmpd.stop()


async def _until(check: object, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_poller_end_to_end(store_urls: StoreUrls, agent: Snmpd, tmp_path: Path) -> None:
    key = os.urandom(32)
    sealer = Sealer(key)
    prefix = "p" + os.urandom(5).hex()
    async with fresh_database(store_urls, "p_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        v2c = Credentials("2c", community=COMMUNITY)
        await store.put_target(
            pool,
            sealer,
            store.Target("agent", "127.0.0.1", agent.port, v2c, ("system", "if-mib"), 10),
        )
        await store.put_target(
            pool, sealer, store.Target("silent", "127.0.0.1", 9, v2c, ("system",), 10)
        )
        sealed = await pool.fetchval("SELECT credentials_enc FROM snmp_targets LIMIT 1")
        assert COMMUNITY.encode() not in sealed  # encrypted at rest
        exporter, status = free_port(), free_port()
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_POLLER_EXPORTER_PORT": str(exporter),
                "NETD_POLLER_STATUS_PORT": str(status),
                "NETD_POLLER_TIMEOUT": "0.3",
                "NETD_POLLER_RETRIES": "0",
                "NETD_POLICIES_DIR": str(REPO / "policies"),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
            }
        )
        proc = NetdProcess(["poller"], env, tmp_path)
        try:
            proc.wait_http(f"http://127.0.0.1:{status}/health/ready")

            async def polled() -> bool:
                return bool(await cache.client.exists(cache.key("snmp:agent", "latest")))

            await _until(polled, 15)
            latest = unpack(await cache.client.get(cache.key("snmp:agent", "latest")))
            metrics = {m for m, _labels, _v, _k in latest["samples"]}
            assert {"sysUpTime", "ifOperStatus", "ifHCInOctets"} <= metrics
            text = httpx.get(f"http://127.0.0.1:{exporter}/snmp/metrics").text
            assert "# TYPE ifHCInOctets counter" in text and 'ifName="lo"' in text
            rows = await pool.fetchval(
                "SELECT count(*) FROM snmp_samples WHERE target = 'agent' AND metric = 'sysUpTime'"
            )
            assert rows >= 1

            async def reported() -> bool:
                return bool(
                    await pool.fetchval(
                        "SELECT count(*) FROM events "
                        "WHERE kind = 'snmp.unreachable' AND subject = 'silent'"
                    )
                )

            await _until(reported, 15)
            own = httpx.get(f"http://127.0.0.1:{status}/metrics").text
            assert 'netd_snmp_polls_total{result="unreachable",target="silent"}' in own
            assert 'netd_snmp_poll_lateness_seconds{target="agent"}' in own
        finally:
            proc.stop()
            await pool.close()
            await cache.close()
        out = proc.output()
        assert "Traceback" not in out and COMMUNITY not in out
