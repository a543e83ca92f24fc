"""Health endpoints against real stores, including a PostgreSQL and a Redis that stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.health import Health
from daemons.core.http import health_router
from daemons.store.cache import Cache, connect
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool


def client(health: Health, registry: CollectorRegistry) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router(health, registry))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_endpoints(migrated: str, cache: Cache) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    registry = CollectorRegistry()
    Counter("netd_test_things", "a test counter", registry=registry).inc(3)
    health = Health(pool, cache)
    try:
        async with client(health, registry) as http:
            assert (await http.get("/health/live")).status_code == 200
            assert (await http.get("/health/startup")).status_code == 503
            not_yet = await http.get("/health/ready")
            assert not_yet.status_code == 503
            assert not_yet.json()["checks"]["startup"] == "starting"
            health.started = True
            assert (await http.get("/health/startup")).status_code == 200
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["postgres"] == "ok"
            metrics = await http.get("/metrics")
            assert "netd_test_things_total 3.0" in metrics.text
            # Readiness at the scrape, for alert rules (contrib/prometheus/alerts.yml).
            assert "\nnetd_ready 1.0" in metrics.text
            assert 'netd_store_up{store="postgres"} 1.0' in metrics.text
            assert 'netd_store_up{store="redis"} 1.0' in metrics.text
            health.draining = True
            assert (await http.get("/health/ready")).status_code == 503
            assert "\nnetd_ready 0.0" in (await http.get("/metrics")).text
            health.draining = False
            # Many probes at once share one store check.
            health.result_ttl = 0
            calls = 0
            original = health._check_stores

            async def counting() -> tuple[str, str]:
                nonlocal calls
                calls += 1
                await asyncio.sleep(0.05)
                return await original()

            health._check_stores = counting  # type: ignore[method-assign]
            answers = await asyncio.gather(*(http.get("/health/ready") for _ in range(50)))
            assert {a.status_code for a in answers} == {200}
            assert calls == 1
    finally:
        await pool.close()


async def test_ready_turns_503_when_a_store_stops(tmp_path: Path) -> None:
    emb = EmbeddedStores(tmp_path / "netd", postgres=True, redis=True, run_as="netd", timeout=60)
    await asyncio.to_thread(emb.acquire)
    assert emb.postgres is not None and emb.redis is not None
    pool = await create_pool(DatabaseConfig(), emb.postgres.dsn, "test")
    cache = await connect(RedisConfig(), emb.redis.url)
    health = Health(pool, cache, timeout=1.0, result_ttl=0)
    health.started = True
    try:
        async with client(health, CollectorRegistry()) as http:
            assert (await http.get("/health/ready")).status_code == 200
            await asyncio.to_thread(emb.postgres.stop)
            down = await http.get("/health/ready")
            assert down.status_code == 503
            assert down.json()["checks"]["postgres"].startswith("down")
            assert down.json()["checks"]["redis"] == "ok"
            await asyncio.to_thread(emb.postgres.start)
            assert (await http.get("/health/ready")).status_code == 200  # pool reconnects
            await asyncio.to_thread(emb.redis.stop)
            down = await http.get("/health/ready")
            assert down.status_code == 503 and down.json()["checks"]["redis"].startswith("down")
            await asyncio.to_thread(emb.redis.start)
            for _ in range(20):
                if (await http.get("/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await http.get("/health/ready")).status_code == 200
    finally:
        await pool.close()
        await cache.close()
        await asyncio.to_thread(emb.release)
