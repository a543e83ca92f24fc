"""A real `netd radius` process on loopback, with NAS clients and subscribers in a fresh
database, shared by a test module."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from daemons.store import radius as store
from daemons.store.cache import Cache
from tests.conftest import StoreUrls
from tests.stack import Seeded, assert_clean_log, seeded_stores
from tests.support import NetdProcess, free_port, free_udp_port

REPO = Path(__file__).resolve().parents[2]
SECRET = b"s3cret-lo"
STRICT_SECRET = b"s3cret-strict"


@dataclass
class RadiusServer:
    port: int
    acct_port: int
    status_port: int
    database: str
    prefix: str
    key: bytes
    proc: NetdProcess
    cache: Cache
    pool: asyncpg.Pool
    redis_url: str = ""

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.status_port}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, value = line.rsplit(" ", 1)
                got = series[len(name) :].strip("{}")
                if all(part in got.split(",") for part in want.split(",") if part):
                    return float(value)
        return 0.0

    def alive(self) -> bool:
        return self.proc.proc.poll() is None


NAS = [
    ("lo", "127.0.0.1/32", SECRET, "mikrotik", False),
    ("strict", "127.0.0.2/32", STRICT_SECRET, "cisco", True),
    ("v6", "::1/128", SECRET, "huawei", False),
    ("lab", "127.0.1.0/24", SECRET, "juniper", False),
]
SUBSCRIBERS = [
    # username, password, hash scheme, plan, state, mac, ip
    ("alice", "pw1", "none", "fiber-100", "active", None, None),
    ("bob", "pw2", "argon2", "fiber-100", "active", None, None),
    ("carol", "pw3", "none", "fiber-100", "disabled", None, None),
    ("dave", "pw4", "none", "fiber-100", "suspended", None, None),
    ("erin", "pw5", "none", "fiber-100", "active", "aa:bb:cc:dd:ee:ff", None),
    ("frank", "pw6", "none", "default", "active", None, None),
    ("grace", "pw7", "none", "fiber-1000", "active", None, "100.64.0.7"),
    ("User", "clientPass", "none", "fiber-100", "active", None, None),
]


@contextlib.asynccontextmanager
async def radius_process(
    postgres: str,
    redis: str,
    tmp: Path,
    env: Mapping[str, str],
    prefixes: tuple[str, str] = ("r_", "r"),
    prepare: Callable[[Seeded], Awaitable[None]] | None = None,
    secrets: Iterable[str] = (),
) -> AsyncIterator[RadiusServer]:
    """A `netd radius` on fresh stores holding NAS and SUBSCRIBERS (``prepare`` adds to
    them, and may write policies under ``tmp/policies``), on loopback ports of its own;
    its log is checked for tracebacks and secrets (``secrets`` too) at the end."""
    async with seeded_stores(postgres, redis, *prefixes) as st:
        for nas_name, net, secret, vendor, strict in NAS:
            await st.add_nas(nas_name, net, secret, vendor, strict)
        await st.add_subscribers(
            (store.SubscriberRow(user, plan=plan, state=state, mac=mac, framed_ip=ip), pw, scheme)
            for user, pw, scheme, plan, state, mac, ip in SUBSCRIBERS
        )
        port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
        environ = st.env(
            tmp,
            {
                "NETD_RADIUS_AUTH_PORT": str(port),
                "NETD_RADIUS_ACCT_PORT": str(acct_port),
                "NETD_RADIUS_STATUS_PORT": str(status_port),
                **env,
            },
        )
        if prepare is not None:
            await prepare(st)
        with running(st, tmp, environ, (port, acct_port, status_port), RadiusServer) as server:
            yield server
        out = server.proc.output()
    assert_clean_log(out, secrets)
    for secret in ("pw1", "pw2", "clientPass", SECRET.decode(), st.key.hex()):
        assert f'"{secret}"' not in out and f"={secret} " not in out, "secret in log"


_S = TypeVar("_S", bound=RadiusServer)


@contextlib.contextmanager
def running(
    st: Seeded,
    tmp: Path,
    env: dict[str, str],
    ports: tuple[int, int, int],
    cls: type[_S],
    /,
    **extra: Any,
) -> Iterator[_S]:
    """`netd radius` on ``env`` (its auth, accounting and status ports), ready, until the
    block ends; ``cls`` and ``extra``: what the tests get to know of it."""
    port, acct_port, status_port = ports
    proc = NetdProcess(["radius"], env, tmp)
    try:
        proc.wait_http(f"http://127.0.0.1:{status_port}/health/ready")
        yield cls(
            port,
            acct_port,
            status_port,
            st.dsn,
            st.prefix,
            st.key,
            proc,
            st.cache,
            st.pool,
            st.redis_url,
            **extra,
        )
    finally:
        proc.stop()


@pytest.fixture(scope="module")
async def radius(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[RadiusServer]:
    """A test module may tune the daemon with a module-level RADIUS_ENV dict."""

    async def frank_is_online(st: Seeded) -> None:  # his plan allows one session
        await st.cache.client.sadd(store.sessions_key(st.cache, "frank"), "sess-1")

    env = {
        "NETD_RADIUS_LIVE_SESSIONS_CHECK_INTERVAL": "0.3",
        "NETD_RADIUS_LISTEN": "127.0.0.1,::1,2001:db8::1",
        "NETD_RADIUS_NAS_REFRESH_INTERVAL": "30",
        **getattr(request.module, "RADIUS_ENV", {}),
    }
    async with radius_process(
        store_urls.postgres,
        store_urls.redis,
        tmp_path_factory.mktemp("radius"),
        env,
        prepare=frank_is_online,
    ) as server:
        yield server


def wait_until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
