"""Northbound gRPC API against the HTTP API, same daemon, same run: events/s a Watch
delivers, and subscribers/s written by batch and unary upserts.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated, one admin token.
The event stream is filled with 100,000 session events by the accounting path's own store
verb, accounting.update_live_sessions (25,000 sessions: Start, two Interim-Updates, Stop,
in calls of 2,000 records), each entry the msgpack of what accounting publishes. `netd
api` runs as one real process on loopback with its gRPC port open and the rate limit out
of the way. The client is this process (uvloop), one connection per API:
- Watch: SessionsService.WatchSessions from cursor "0-0" (everything the stream holds),
  max_batch 1000, until all 100,000 events have come (each answer decoded by grpcio);
- SSE: GET /api/v1/events/stream?kinds=session. with Last-Event-ID 0-0 over httpx,
  counting the events in the raw bytes (no JSON decoding: the least a client can do);
- batch: SubscribersService.BatchUpsertSubscribers of 10,000 new subscribers, each with a
  password (sealed with its NT hash) and a plan, against POST /api/v1/subscribers/batch
  with the same 10,000 as JSON (httpx);
- unary: UpsertSubscriber of 3,000 new subscribers (password and plan), 16 calls in
  flight on one channel, against POST /api/v1/subscribers (create) over 16 keep-alive
  HTTP/1.1 connections (a minimal asyncio client: no httpx cost).
"netd CPU" is the daemon's utime+stime over the measurement (from /proc/PID/stat) per
event or per subscriber; "client" is this process's. Figures are medians of BENCH_RUNS
runs (new usernames every run, so every upsert creates); "ratio" is gRPC over HTTP. The
machine has 2 cores shared by netd, PostgreSQL, Redis and the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvloop

from benchmarks.api import ApiProcess
from benchmarks.common import median, migrated_stores, table, write
from benchmarks.radius_auth import free_port
from benchmarks.radius_loadgen import _proc_cpu
from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import sessions_pb2_grpc, subscribers_pb2_grpc
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.radius.acct import AcctRecord, AcctStatus, _key
from daemons.store import accounting
from daemons.store import api as api_store
from daemons.store.cache import connect
from daemons.store.pg import create_pool

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SESSIONS = 25_000  # x 4 records
EVENTS = SESSIONS * 4
SEED_CHUNK = 2_000
BATCH = 10_000
UNARY = int(os.environ.get("BENCH_NBI_UNARY", "3000"))
INFLIGHT = 16
PREFIX = "bench"
REPO = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- the stores ----------------------------------------------------------------------------


def _records(s: int, now: float) -> list[AcctRecord]:
    nas, sid, port = f"bng{s % 20:02d}", f"{s:08X}", str(s)
    out = []
    for step, status in enumerate(
        (AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)
    ):
        t = 300 * step
        out.append(
            AcctRecord(
                nas=nas,
                status=status,
                acct_session_id=sid,
                unique_id=_key(nas, sid, port),
                idem_key=_key(str(step), nas, sid, port),
                event_time=now + t,
                username=f"user{s % 50_000:05d}",
                nas_port=port,
                framed_ip=f"10.{(s >> 16) & 255}.{(s >> 8) & 255}.{s & 255}",
                input_octets=t * 1_000_003,
                output_octets=t * 5_000_011,
                input_packets=t * 900,
                output_packets=t * 4_000,
                session_time=t,
                terminate_cause=1 if status == AcctStatus.STOP else None,
            )
        )
    return out


async def seed(dsn: str, redis_url: str) -> str:
    """The admin token; the stream filled with EVENTS session events."""
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    cache = await connect(RedisConfig(key_prefix=PREFIX), redis_url)
    try:
        _, token = await api_store.create_token(pool, "bench-admin", "admin", "bench")
        now = time.time()
        for lo in range(0, SESSIONS, SEED_CHUNK // 4):
            records = [
                r for s in range(lo, min(SESSIONS, lo + SEED_CHUNK // 4)) for r in _records(s, now)
            ]
            await accounting.update_live_sessions(cache, records, [])
        return token
    finally:
        await pool.close()
        await cache.close()


# --- measurements --------------------------------------------------------------------------


class Target:
    def __init__(self, api: ApiProcess, grpc_port: int, token: str) -> None:
        self.api = api
        self.grpc_port = grpc_port
        self.token = token
        self.metadata = (("authorization", f"Bearer {token}"),)


async def _timed(target: Target, work: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """Run ``work`` (it returns how many items it delivered): items/s and CPU per item."""
    cpu0, self0, t0 = _proc_cpu(target.api.proc.pid), _self_cpu(), time.perf_counter()
    items = await work()
    elapsed = time.perf_counter() - t0
    cpu1, self1 = _proc_cpu(target.api.proc.pid), _self_cpu()
    return {
        "rate": items / elapsed,
        "netd_us": 1e6 * (cpu1 - cpu0) / items,
        "client_us": 1e6 * (self1 - self0) / items,
        "items": items,
    }


async def watch_grpc(target: Target) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        stub = sessions_pb2_grpc.SessionsServiceStub(channel)
        call = stub.WatchSessions(
            ss.WatchSessionsRequest(cursor="0-0", max_batch=1000), metadata=target.metadata
        )
        got = 0
        async for response in call:
            got += len(response.events)
            if got >= EVENTS:
                call.cancel()
                break
    if got != EVENTS:
        raise RuntimeError(f"Watch delivered {got} events, want {EVENTS}")
    return got


async def watch_sse(target: Target) -> int:
    headers = {"Authorization": f"Bearer {target.token}", "Last-Event-ID": "0-0"}
    got = 0
    async with (
        httpx.AsyncClient(base_url=target.api.url, headers=headers, timeout=60) as client,
        client.stream("GET", "/api/v1/events/stream", params={"kinds": "session."}) as resp,
    ):
        if resp.status_code != 200:
            raise RuntimeError(f"SSE: {resp.status_code}")
        tail = b""
        async for chunk in resp.aiter_raw():
            data = tail + chunk
            got += data.count(b"\nevent: session.")
            tail = data[-20:]
            got -= tail.count(b"\nevent: session.")  # counted again with the next chunk
            if got >= EVENTS:
                break
    if got != EVENTS:
        raise RuntimeError(f"SSE delivered {got} events, want {EVENTS}")
    return got


def _names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"b{tag}-{i:05d}" for i in range(n)]


async def batch_grpc(target: Target) -> int:
    subs = [
        sb.SubscriberUpsert(username=u, password="pw-" + u, plan="default") for u in _names(BATCH)
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        stub = subscribers_pb2_grpc.SubscribersServiceStub(channel)
        done = await stub.BatchUpsertSubscribers(
            sb.BatchUpsertSubscribersRequest(subscribers=subs),
            metadata=target.metadata,
            timeout=120,
        )
    if done.created != BATCH:
        raise RuntimeError(f"batch created {done.created}")
    return BATCH


async def batch_http(target: Target) -> int:
    body = {
        "subscribers": [
            {"username": u, "password": "pw-" + u, "plan": "default"} for u in _names(BATCH)
        ]
    }
    headers = {"Authorization": f"Bearer {target.token}"}
    async with httpx.AsyncClient(base_url=target.api.url, headers=headers, timeout=120) as client:
        resp = await client.post("/api/v1/subscribers/batch", json=body)
    if resp.status_code != 200 or resp.json()["created"] != BATCH:
        raise RuntimeError(f"HTTP batch: {resp.status_code} {resp.text[:200]}")
    return BATCH


async def unary_grpc(target: Target) -> int:
    names = iter(_names(UNARY))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
        stub = subscribers_pb2_grpc.SubscribersServiceStub(channel)

        async def worker() -> None:
            for u in names:
                done = await stub.UpsertSubscriber(
                    sb.UpsertSubscriberRequest(
                        subscriber=sb.SubscriberUpsert(
                            username=u, password="pw-" + u, plan="default"
                        )
                    ),
                    metadata=target.metadata,
                )
                if not done.created:
                    raise RuntimeError(f"{u} not created")

        await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
    return UNARY


async def unary_http(target: Target) -> int:
    names = iter(_names(UNARY))
    port = int(target.api.url.rsplit(":", 1)[1])
    head = (
        f"POST /api/v1/subscribers HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {target.token}\r\nContent-Type: application/json\r\n"
    )

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for u in names:
                body = json.dumps({"username": u, "password": "pw-" + u, "plan": "default"})
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n{body}".encode())
                answer = await reader.readuntil(b"\r\n\r\n")
                if not answer.startswith(b"HTTP/1.1 201"):
                    raise RuntimeError(f"HTTP create: {answer[:200]!r}")
                at = answer.lower().find(b"\r\ncontent-length:")
                await reader.readexactly(int(answer[at + 17 : answer.index(b"\r\n", at + 2)]))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
    return UNARY


WORKLOADS: list[
    tuple[str, str, Callable[[Target], Awaitable[int]], Callable[[Target], Awaitable[int]]]
] = [
    ("Watch vs SSE: session events delivered, from 0-0", "events", watch_grpc, watch_sse),
    (f"batch upsert of {BATCH:,} new subscribers", "subscribers", batch_grpc, batch_http),
    (f"unary upsert, {INFLIGHT} in flight", "subscribers", unary_grpc, unary_http),
]


async def measure(target: Target) -> list[dict[str, Any]]:
    rows = []
    for label, unit, by_grpc, by_http in WORKLOADS:
        results: dict[str, list[dict[str, float]]] = {"grpc": [], "http": []}
        for i in range(RUNS):
            for api, work in (("grpc", by_grpc), ("http", by_http)):
                got = await _timed(target, lambda w=work: w(target))  # type: ignore[misc]
                results[api].append(got)
                _log(f"{label} {api} run {i}: {got['rate']:,.0f} {unit}/s")
        g, h = (
            {k: median([r[k] for r in results[api]]) for k in ("rate", "netd_us", "client_us")}
            for api in ("grpc", "http")
        )
        rates = {api: [r["rate"] for r in results[api]] for api in results}
        spread = {api: f"{min(v):,.0f}..{max(v):,.0f}" for api, v in rates.items()}
        rows.append(
            {
                "workload": label,
                "unit": unit,
                "gRPC /s": g["rate"],
                "HTTP /s": h["rate"],
                "ratio": g["rate"] / h["rate"],
                "gRPC netd us": g["netd_us"],
                "HTTP netd us": h["netd_us"],
                "gRPC client us": g["client_us"],
                "HTTP client us": h["client_us"],
                "notes": f"gRPC {spread['grpc']}, HTTP {spread['http']} per s over {RUNS} runs",
            }
        )
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="netd-bench-nbi-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        with migrated_stores(tmp) as (dsn, redis_url):
            t0 = time.perf_counter()
            token = asyncio.run(seed(dsn, redis_url))
            _log(f"stream seeded with {EVENTS:,} events in {time.perf_counter() - t0:.1f} s")
            grpc_port = free_port()
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": PREFIX,
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
                "NETD_API_GRPC_PORT": str(grpc_port),
            }
            api = ApiProcess(tmp, urls)
            try:
                rows = uvloop.run(measure(Target(api, grpc_port, token)))
                if "Traceback" in api.output():
                    _log("netd log has a traceback:\n" + api.output()[-4000:])
            finally:
                api.stop()
    return rows


if __name__ == "__main__":
    result = run()
    print(table(result))
    write("grpc_nbi", result, (__doc__ or "").strip())
