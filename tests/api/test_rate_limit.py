"""The per-token rate limit: a token bucket in Redis, 429 with Retry-After beyond it."""

from __future__ import annotations

import asyncio
import time

from tests.api.conftest import ApiServer

API_ENV = {"NETD_API_RATE_LIMIT": "5", "NETD_API_RATE_BURST": "10"}


async def test_a_token_over_its_rate_gets_429_and_others_do_not(api: ApiServer) -> None:
    async with api.client("viewer") as viewer, api.client("admin") as admin:
        answers = [await viewer.get("/api/v1/status") for _ in range(25)]
        statuses = [r.status_code for r in answers]
        limited = next(r for r in answers if r.status_code == 429)
        other = await admin.get("/api/v1/status")  # a different token, its own bucket
        # The burst (10) passes, then about one every 200 ms: far fewer than 25 in this time.
        assert statuses[:10] == [200] * 10
        assert statuses.count(429) >= 10
        assert limited.status_code == 429
        body = limited.json()["error"]
        assert body["code"] == "rate_limited" and body["request_id"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        assert other.status_code == 200
        await asyncio.sleep(float(limited.headers["Retry-After"]))
        assert (await viewer.get("/api/v1/status")).status_code == 200
        # Sustained, from an empty bucket: over 2 s about 5/s get through.
        for _ in range(50):
            if (await viewer.get("/api/v1/status")).status_code == 429:
                break
        t0, ok = time.monotonic(), 0
        while time.monotonic() - t0 < 2.0:
            ok += (await viewer.get("/api/v1/status")).status_code == 200
            await asyncio.sleep(0.02)
        assert 5 * 2 - 3 <= ok <= 5 * 2 + 2
    row = await api.pool.fetchval("SELECT count(*) FROM audit_log")
    assert row == 0  # reads are not audited


async def test_the_limit_is_shared_by_every_api_process(api: ApiServer) -> None:
    """The bucket is in Redis: a second client (as a second API process would be) of the
    same token shares it."""
    async with api.client("operator") as a, api.client("operator") as b:
        got = [(await (a if i % 2 else b).get("/api/v1/status")).status_code for i in range(16)]
    assert got[:10] == [200] * 10 and got.count(429) >= 4
