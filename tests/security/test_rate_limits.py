"""Rate limits: per token on the API (HTTP 429, gRPC RESOURCE_EXHAUSTED), per source IP on
the ACS (HTTP 503 with Retry-After). The per-NAS RADIUS limit is tests/faults/test_storm.py.

The stack runs the API at API_RATE tokens/s with a burst of API_BURST a token, and the ACS
at ACS_RATE requests/s with a burst of ACS_BURST a source address. Loopback has a whole
/8, so the ACS sees distinct sources from 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

import asyncio
import time

import grpc
import httpx

from daemons.acs.service import rate_key
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.nbi.gen.netd.v1 import subscribers_pb2_grpc
from tests.security.conftest import ACS_BURST, ACS_RATE, API_BURST, API_RATE, Stack


async def test_api_per_token_http_and_grpc(stack: Stack) -> None:
    creds = grpc.ssl_channel_credentials(stack.cert.read_bytes())
    async with (
        stack.api("viewer") as viewer,
        stack.api("other") as other,
        grpc.aio.secure_channel(f"127.0.0.1:{stack.grpc_port}", creds) as channel,
    ):
        await asyncio.wait_for(channel.channel_ready(), 10)  # connected before the burst
        t0 = time.monotonic()
        statuses = []
        limited = None
        for _ in range(API_BURST * 3):
            resp = await viewer.get("/api/v1/nas")
            statuses.append(resp.status_code)
            if resp.status_code == 429 and limited is None:
                limited = resp
        elapsed = time.monotonic() - t0
        # the burst passes, then about API_RATE a second: most of the rest are refused
        assert statuses[:API_BURST] == [200] * API_BURST, statuses
        assert limited is not None, statuses
        assert statuses.count(200) <= API_BURST + int(elapsed * API_RATE) + 2, (statuses, elapsed)
        assert limited.json()["error"]["code"] == "rate_limited"
        print(f"api: {len(statuses)} requests in {elapsed:.2f} s on one token: "
              f"{statuses.count(200)} answered, {statuses.count(429)} refused 429")  # fmt: skip
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        # the same token over gRPC shares the bucket (it is in Redis)
        stub = subscribers_pb2_grpc.SubscribersServiceStub(channel)
        try:
            await stub.GetSubscriber(
                sb.GetSubscriberRequest(username="nobody"),
                metadata=(("authorization", f"Bearer {stack.tokens['viewer']}"),),
                timeout=5,
            )
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # another token at the same moment is not affected, over either
        assert (await other.get("/api/v1/nas")).status_code == 200
        try:
            await stub.GetSubscriber(
                sb.GetSubscriberRequest(username="nobody"),
                metadata=(("authorization", f"Bearer {stack.tokens['other']}"),),
                timeout=5,
            )
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        assert code == grpc.StatusCode.NOT_FOUND
        # after Retry-After the limited token gets through again
        await asyncio.sleep(int(limited.headers["Retry-After"]))
        assert (await viewer.get("/api/v1/nas")).status_code == 200


def _client(stack: Stack, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source, verify=stack.ssl())
    return httpx.AsyncClient(transport=transport, timeout=10)


async def test_acs_per_source_ip(stack: Stack) -> None:
    url = f"https://127.0.0.1:{stack.acs_port}/"
    before = stack.metric("acs", "netd_acs_rate_limited_total")
    flood, n = "127.0.0.2", ACS_BURST * 4
    async with _client(stack, flood) as client, _client(stack, "127.0.0.3") as bystander:
        t0 = time.monotonic()
        answers = [await client.post(url, content=b"") for _ in range(n)]
        elapsed = time.monotonic() - t0
        during = await bystander.post(url, content=b"")
    statuses = [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code == 503]
    # an empty POST with no session is a 400 when it is let through
    admitted = statuses.count(400)
    assert admitted + len(refused) == n, statuses
    assert statuses[:ACS_BURST] == [400] * ACS_BURST, statuses
    assert ACS_BURST <= admitted <= ACS_BURST + int(elapsed * ACS_RATE) + 1, (statuses, elapsed)
    assert refused, statuses
    for resp in refused:
        assert 1 <= int(resp.headers["retry-after"]) <= 1 + int(1 / ACS_RATE)
        assert resp.headers.get("connection") == "close" and resp.content == b""
    # another address at the same time: its own bucket
    assert during.status_code == 400
    after = stack.metric("acs", "netd_acs_rate_limited_total")
    print(f"acs: {n} requests in {elapsed:.2f} s from {flood}: {admitted} admitted, "
          f"{len(refused)} refused 503, counted {after - before:g}")  # fmt: skip
    assert after - before == len(refused)
    assert stack.metric("acs", "netd_acs_rate_limit_sources") >= 2
    # after Retry-After the flooding address is let in again
    await asyncio.sleep(int(refused[-1].headers["retry-after"]))
    async with _client(stack, flood) as client:
        assert (await client.post(url, content=b"")).status_code == 400
    # one log line for the flood (rate-limited itself), naming the source
    lines = [
        line
        for line in stack.procs["acs"].output().splitlines()
        if "per-source-IP rate limit" in line
    ]
    assert 1 <= len(lines) <= 2 and flood in lines[0], lines


def test_acs_rate_key_groups_ipv6_by_64() -> None:
    """An IPv6 line has a /64 to pick a fresh source from for every request: it shares one
    bucket. IPv4-mapped addresses (a dual-stack socket) count as the IPv4 address."""
    assert rate_key("192.0.2.1") == "192.0.2.1"
    assert rate_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert rate_key("2001:db8:1:2:aaaa::1") == rate_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("fe80::1%eth0") == "fe80::/64"
