"""`netd` as a real process: startup, sd_notify, heartbeats, SIGTERM drain, SIGHUP reload."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from daemons.core.config import (
    Config,
    DatabaseConfig,
    LifecycleConfig,
    Loaded,
    RedisConfig,
)
from daemons.core.lifecycle import Daemon, Runner
from daemons.core.status import StatusListener
from daemons.store.cache import Cache
from tests.conftest import StoreUrls
from tests.support import NetdProcess, free_port, free_udp_port, netd_env, pid_alive

ALL = ["api", "radius", "acs", "voltha", "poller", "devices"]


def recv_until(sock: socket.socket, wanted: str, timeout: float = 20.0) -> list[str]:
    """Datagrams received until one contains ``wanted``."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        got.append(msg)
        if wanted in msg:
            return got
    raise AssertionError(f"never received {wanted!r}; got {got}")


def external_env(store_urls: StoreUrls, database: str, prefix: str, tmp: Path) -> dict[str, str]:
    return {
        "NETD_DATABASE_URL": database,
        "NETD_REDIS_URL": store_urls.redis,
        "NETD_REDIS_KEY_PREFIX": prefix,
        "NETD_STATE_DIR": str(tmp / "state"),
        "NETD_API_PORT": str(free_port()),
        "NETD_LIFECYCLE_HEARTBEAT_INTERVAL": "0.5",
        "NETD_INSTANCE_NAME": "test",
        "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
        "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
        "NETD_ACS_PORT": str(free_port()),
        "NETD_POLLER_EXPORTER_PORT": str(free_port()),
        "NETD_VOLTHA_SADIS_PORT": str(free_port()),
        "NETD_POLLER_TRAP_PORT": "0",
    }


async def test_up_serves_notifies_beats_and_drains(
    store_urls: StoreUrls,
    database: str,
    cache: Cache,
    key_prefix: str,
    tmp_path: Path,
    netd: list[NetdProcess],
) -> None:
    env = external_env(store_urls, database, key_prefix, tmp_path)
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        env.update({"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"})
        proc = NetdProcess(["up"], netd_env(env), tmp_path)
        netd.append(proc)
        ready_msgs = await asyncio.to_thread(recv_until, notify, "READY=1")
        assert any("MAINPID=" in m for m in ready_msgs)
        base = f"http://127.0.0.1:{env['NETD_API_PORT']}"
        ready = await asyncio.to_thread(proc.wait_http, f"{base}/health/ready")
        assert ready.json()["checks"] == {
            "startup": "ok",
            "draining": "no",
            "postgres": "ok",
            "redis": "ok",
        }
        await asyncio.to_thread(recv_until, notify, "WATCHDOG=1", 3.0)

        metrics = httpx.get(f"{base}/metrics").text
        for name in ALL:
            assert f'netd_daemon_up{{daemon="{name}"}} 1.0' in metrics
        frozen = re.search(r"^netd_gc_frozen_objects (\S+)$", metrics, re.M)
        assert frozen and float(frozen.group(1)) > 10_000  # start-up's objects, frozen
        beats = await cache.list_heartbeats()
        assert sorted(b["daemon"] for b in beats) == sorted(ALL)
        for beat in beats:
            assert beat["instance"] == "test" and beat["pid"] == proc.proc.pid
            assert beat["version"] and beat["uptime"] >= 0 and beat["status"] == "running"

        t0 = time.monotonic()
        proc.signal(signal.SIGTERM)
        await asyncio.to_thread(recv_until, notify, "STOPPING=1", 10.0)
        assert await asyncio.to_thread(proc.wait, 15.0) == 0, proc.output()
        assert time.monotonic() - t0 < 4.0  # no store connection left behind to wait for
    assert await cache.list_heartbeats() == []
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT source, kind FROM events ORDER BY id")
    finally:
        await conn.close()
    assert sorted((r["source"], r["kind"]) for r in rows) == sorted(
        [(n, "daemon.started") for n in ALL] + [(n, "daemon.stopped") for n in ALL]
    )
    assert "Traceback" not in proc.output()


def test_embedded_default_ready_within_15s_and_stops_clean(
    tmp_path: Path, netd: list[NetdProcess]
) -> None:
    port = free_port()
    env = netd_env(
        {
            "NETD_API_PORT": str(port),
            "NETD_LOG_FORMAT": "json",
            "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
            "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
            "NETD_ACS_PORT": str(free_port()),
            "NETD_POLLER_EXPORTER_PORT": str(free_port()),
            "NETD_VOLTHA_SADIS_PORT": str(free_port()),
            "NETD_POLLER_TRAP_PORT": "0",
            "NETD_STATE_DIR": str(tmp_path / "state"),
        }
    )
    t0 = time.monotonic()
    proc = NetdProcess(["up"], env, tmp_path)  # no URLs: embedded stores in the state dir
    netd.append(proc)
    proc.wait_http(f"http://127.0.0.1:{port}/health/ready", timeout=15.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 15.0
    state = tmp_path / "state"
    pg_pid = int((state / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    redis_pid = int((state / "redis" / "redis.pid").read_text().strip())
    assert pid_alive(pg_pid) and pid_alive(redis_pid)
    proc.signal(signal.SIGINT)  # what Ctrl-C sends
    assert proc.wait(30.0) == 0, proc.output()
    assert not pid_alive(pg_pid) and not pid_alive(redis_pid)
    assert "embedded stores stopped" in proc.output()


def test_daemon_alone_serves_health_on_its_status_port(
    store_urls: StoreUrls,
    database: str,
    key_prefix: str,
    tmp_path: Path,
    netd: list[NetdProcess],
) -> None:
    env = external_env(store_urls, database, key_prefix, tmp_path)
    status_port = free_port()
    env["NETD_RADIUS_STATUS_PORT"] = str(status_port)
    proc = NetdProcess(["radius"], netd_env(env), tmp_path)
    netd.append(proc)
    proc.wait_http(f"http://127.0.0.1:{status_port}/health/ready")
    metrics = httpx.get(f"http://127.0.0.1:{status_port}/metrics").text
    assert 'netd_daemon_up{daemon="radius"} 1.0' in metrics
    assert 'daemon="api"' not in metrics
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{env['NETD_API_PORT']}/health/live")
    proc.signal(signal.SIGTERM)
    assert proc.wait(15.0) == 0, proc.output()


def test_sighup_reloads_policies_and_keeps_old_on_error(
    store_urls: StoreUrls,
    database: str,
    key_prefix: str,
    tmp_path: Path,
    netd: list[NetdProcess],
) -> None:
    env = external_env(store_urls, database, key_prefix, tmp_path)
    policies = tmp_path / "policies"
    env["NETD_POLICIES_DIR"] = str(policies)
    (policies / "radius").mkdir(parents=True)
    plans = '[plans.basic]\ndownload = "20M"\nupload = "5M"\n'
    (policies / "radius" / "plans.toml").write_text(plans)
    proc = NetdProcess(["api"], netd_env(env), tmp_path)
    netd.append(proc)
    base = f"http://127.0.0.1:{env['NETD_API_PORT']}"
    proc.wait_http(f"{base}/health/ready")

    def metric(name: str) -> float | None:
        for line in httpx.get(f"{base}/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def wait_metric(name: str, value: float) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if metric(name) == value:
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} never reached {value}: {metric(name)}\n{proc.output()}")

    assert metric("netd_policy_generation") == 1.0 and metric("netd_policy_files") == 1.0
    (policies / "snmp").mkdir()
    (policies / "snmp" / "if-mib.toml").write_text("interval = 60\n")
    proc.signal(signal.SIGHUP)
    wait_metric("netd_policy_generation", 2.0)
    assert metric("netd_policy_files") == 2.0
    assert metric('netd_policy_reloads_total{result="ok"}') == 1.0

    (policies / "snmp" / "if-mib.toml").write_text("interval = \n")
    proc.signal(signal.SIGHUP)
    wait_metric('netd_policy_reloads_total{result="error"}', 1.0)
    assert metric("netd_policy_generation") == 2.0  # the old set stays in force
    assert httpx.get(f"{base}/health/ready").status_code == 200
    assert "snmp/if-mib.toml" in proc.output()
    proc.signal(signal.SIGTERM)
    assert proc.wait(15.0) == 0


def test_unreachable_store_is_one_clear_line(tmp_path: Path) -> None:
    dead = f"postgresql://netd@127.0.0.1:{free_port()}/netd"
    env = netd_env(
        {"NETD_DATABASE_URL": dead, "NETD_DATABASE_CONNECT_TIMEOUT": "2", "NETD_LOG_FORMAT": "text"}
    )
    proc = NetdProcess(["up"], env, tmp_path)
    try:
        assert proc.wait(30.0) == 1
        out = proc.output()
        assert "cannot connect to PostgreSQL at " + dead in out
        assert "Traceback" not in out
    finally:
        proc.stop()


# --- drain semantics, in process with a daemon that has work in flight ---


class SlowDaemon(Daemon):
    name: ClassVar[str] = "slow"
    work_seconds: ClassVar[float] = 0.8
    finished: ClassVar[list[bool]] = []

    async def start(self) -> None:
        async def work() -> None:
            await asyncio.sleep(self.work_seconds)
            SlowDaemon.finished.append(True)

        self.inflight = asyncio.get_running_loop().create_task(work())

    async def drain(self) -> None:
        await self.inflight

    async def close(self) -> None:
        self.inflight.cancel()


class StuckDaemon(SlowDaemon):
    name: ClassVar[str] = "stuck"
    work_seconds: ClassVar[float] = 3600


def make_runner(
    store_urls: StoreUrls, database: str, prefix: str, tmp: Path, drain: float, worker: type[Daemon]
) -> tuple[Runner, int]:
    port = free_port()
    cfg = Config(
        database=DatabaseConfig(url=SecretStr(database)),
        redis=RedisConfig(url=SecretStr(store_urls.redis), key_prefix=prefix),
        lifecycle=LifecycleConfig(drain_timeout=drain),
    )

    class Listener(StatusListener):
        def __init__(self, ctx: object) -> None:
            super().__init__(ctx, "127.0.0.1", port)  # type: ignore[arg-type]

    return Runner(Loaded(config=cfg, path=None), [Listener, worker], environ={}), port


async def wait_started(runner: Runner, task: asyncio.Task[int]) -> None:
    for _ in range(200):
        if runner.ctx is not None and runner.ctx.health.started:
            return
        assert not task.done(), task
        await asyncio.sleep(0.05)
    raise AssertionError("runner never started")


async def test_sigterm_finishes_inflight_work_and_goes_unready(
    store_urls: StoreUrls, migrated: str, key_prefix: str, tmp_path: Path
) -> None:
    SlowDaemon.finished.clear()
    runner, port = make_runner(store_urls, migrated, key_prefix, tmp_path, 5.0, SlowDaemon)
    task = asyncio.get_running_loop().create_task(runner.run())
    await wait_started(runner, task)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/health/ready")).status_code == 200
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)
        during = await http.get("/health/ready")
        assert during.status_code == 503 and during.json()["checks"]["draining"] == "yes"
    assert await asyncio.wait_for(task, 10) == 0
    assert SlowDaemon.finished == [True], "in-flight work must finish, not be cancelled"


async def test_drain_deadline_cuts_off_stuck_work(
    store_urls: StoreUrls, migrated: str, key_prefix: str, tmp_path: Path
) -> None:
    runner, _ = make_runner(store_urls, migrated, key_prefix, tmp_path, 0.5, StuckDaemon)
    task = asyncio.get_running_loop().create_task(runner.run())
    await wait_started(runner, task)
    t0 = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 10) == 0
    assert time.monotonic() - t0 < 5.0
    assert runner.registry.get_sample_value("netd_drain_overruns_total") == 1.0
