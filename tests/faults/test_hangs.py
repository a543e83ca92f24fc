"""Peers that hang rather than refuse: a VOLTHA core, ONOS, CPEs. Each deadline fires, is
counted, and nothing else stalls. (The SNMP agent that hangs is test_snmp_hang.py.)

The hanging peers run in the test's event loop:

- ``Mute``: a TCP listener that accepts and never says a word (a gRPC core that never
  speaks HTTP/2; a CPE connection-request listener that never answers);
- ``Drip``: accepts, reads the request, then sends an HTTP answer a byte at a time;
- the fake VOLTHA core (tests/voltha) with ``hang`` set: takes every call, never answers;
- ``HangingOnos``: answers 503 at once, then (``mode``) never answers, then drips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig, VolthaStack
from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import acs as acs_store
from daemons.store import api as api_store
from daemons.store import radius as radius_store
from daemons.store import voltha as voltha_store
from daemons.store.cache import connect
from daemons.store.pg import create_pool
from daemons.voltha.client import VolthaClient
from tests.acs.sim import ConnectionRequests, Cpe, Http, load_model, model_files, run_session
from tests.conftest import StoreUrls, fresh_database
from tests.faults.conftest import LeakWatch
from tests.support import NetdProcess, free_port, free_udp_port, netd_env
from tests.voltha.fake_core import FakeVoltha

REPO = Path(__file__).resolve().parents[2]
OPER_ACTIVE = 4  # common_pb2.OperStatus.ACTIVE


# --- hanging peers ---------------------------------------------------------------------------


class Mute:
    """Accepts TCP connections and reads whatever comes; never writes. ``listen()`` turns a
    refusing port (bound, not listening) into a mute one."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.open = 0
        self.server: asyncio.Server | None = None

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, sock=self.sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            for _ in range(100_000):
                if not await reader.read(65536):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        self.sock.close()


async def _drip(writer: asyncio.StreamWriter, data: bytes, every: float, seconds: float) -> None:
    """Send ``data`` a byte every ``every`` s, for at most ``seconds``."""
    end = time.monotonic() + seconds
    for byte in data:
        if time.monotonic() > end:
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(every)


class HangingHttp:
    """An HTTP server in three moods (``mode``): ``refuse`` answers 503 at once, ``silent``
    reads the request and never answers, ``drip`` sends a 200 a byte every 0.2 s."""

    def __init__(self, mode: str = "refuse") -> None:
        self.mode = mode
        self.requests: dict[str, int] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):
                await reader.readuntil(b"\r\n\r\n")
                mode = self.mode
                self.requests[mode] = self.requests.get(mode, 0) + 1
                if mode == "refuse":
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                elif mode == "silent":
                    await reader.read()  # until the client gives up
                    return
                else:
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + b"x" * 64
                    await _drip(writer, answer, 0.2, 60.0)
                    return
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


# --- helpers -----------------------------------------------------------------------------------


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


async def _until(
    check: Callable[[], Awaitable[Any] | Any], seconds: float, what: str, proc: NetdProcess
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what}\n{proc.output()[-4000:]}")
        await asyncio.sleep(0.05)


class _Live:
    """Polls ``url`` every 0.2 s in the background; the answers' latencies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as c:
            for _ in range(1000):
                t = time.monotonic()
                try:
                    r = await c.get(self.url)
                    if r.status_code == 200:
                        self.latencies.append(time.monotonic() - t)
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                await asyncio.sleep(0.2)

    def __enter__(self) -> _Live:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


# --- VOLTHA and ONOS ---------------------------------------------------------------------------

DEADLINE = 1.0  # voltha.stacks.*.deadline: every gRPC call and every ONOS call
SYNC = 0.5  # voltha.sync_interval


async def _olt(core: FakeVoltha, host: str) -> str:
    """An OLT created and enabled through the core's northbound, once it is active."""
    client = VolthaClient("setup", VolthaStack(address=core.address, deadline=5.0))
    try:
        olt = await client.create_olt(host)
        await client.enable(olt.id)
    finally:
        await client.close()
    await core.wait_for(lambda: core.device(olt.id).oper_status == OPER_ACTIVE, 10)
    return str(olt.id)


async def test_a_hanging_voltha_core_and_onos_stall_nothing_else(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    key = os.urandom(32)
    sub_password = "sub-" + os.urandom(8).hex()
    onos_password = "onos-" + os.urandom(8).hex()
    leak_watch.add(key, sub_password, onos_password)
    good = FakeVoltha(step_seconds=0.05)  # healthy all along
    hung = FakeVoltha(step_seconds=0.05)  # takes calls, then never answers
    near = FakeVoltha(step_seconds=0.05)  # healthy, beside an ONOS that hangs
    mute = Mute()  # refuses, then accepts and never speaks HTTP/2
    onos = HangingHttp("refuse")
    for core in (good, hung, near):
        await core.start()
    onos_url = await onos.start()
    (tmp_path / "onos-password").write_text(onos_password)
    prefix = "hv" + uuid.uuid4().hex[:10]
    status_port = free_port()
    status = f"http://127.0.0.1:{status_port}"
    try:
        good_olt = await _olt(good, "10.91.0.1:9191")
        near_olt = await _olt(near, "10.92.0.1:9191")
        async with fresh_database(store_urls, "hv_", migrated=True) as dsn:
            pool = await create_pool(DatabaseConfig(), dsn, "test")
            cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
            sealer = Sealer(key)
            serials = [f"NEAR0000000{i}" for i in range(1, 4)]
            for i, serial in enumerate(serials):
                row = credentials(
                    radius_store.SubscriberRow(f"sub{i}", plan="fiber-100"),
                    sub_password,
                    "none",
                    sealer,
                )
                await radius_store.upsert_subscriber(pool, cache, row)
                await voltha_store.put_binding(
                    pool, voltha_store.Binding(serial, f"sub{i}", 100, 300 + i)
                )
            for i, serial in enumerate(serials):
                near.discover_onu(near_olt, i, serial)
            config = tmp_path / "netd.toml"
            stacks = {
                "good": good.address,
                "hung": hung.address,
                "mute": f"127.0.0.1:{mute.port}",
                "near": near.address,
            }
            text = f"[voltha]\nsync_interval = {SYNC}\noptics_interval = 0.5\nsadis_port = 0\n"
            for name, address in stacks.items():
                text += f'\n[voltha.stacks.{name}]\naddress = "{address}"\ndeadline = {DEADLINE}\n'
                if name == "near":
                    text += f'onos_url = "{onos_url}"\n'
                    text += f'onos_password_file = "{tmp_path / "onos-password"}"\n'
            config.write_text(text)
            policies = tmp_path / "policies"
            shutil.copytree(resources.path("policies"), policies)
            env = netd_env(
                {
                    "NETD_CONFIG": str(config),
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": store_urls.redis,
                    "NETD_REDIS_KEY_PREFIX": prefix,
                    "NETD_SECRETS_KEY": key.hex(),
                    "NETD_VOLTHA_STATUS_PORT": str(status_port),
                    "NETD_POLICIES_DIR": str(policies),
                    "NETD_STATE_DIR": str(tmp_path / "state"),
                    "NETD_LOG_FORMAT": "json",
                }
            )
            proc = NetdProcess(["voltha"], env, tmp_path)
            http = httpx.AsyncClient(timeout=5.0)
            try:
                await asyncio.to_thread(proc.wait_http, f"{status}/health/ready")

                async def metrics() -> str:
                    return (await http.get(f"{status}/metrics")).text

                async def events(kind: str, subject: str) -> int:
                    return int(
                        await pool.fetchval(
                            "SELECT count(*) FROM events WHERE source = 'voltha' AND kind = $1 "
                            "AND subject = $2",
                            kind,
                            subject,
                        )
                    )

                async def refused(serial: str) -> float:
                    """The time from an unbound ONU's discovery on the good core until netd
                    disabled its serial there (inventory sync + allow-list at work)."""
                    t = time.monotonic()
                    good.discover_onu(good_olt, 0, serial)
                    await _until(
                        lambda: serial in good.disabled_serials(good_olt),
                        10,
                        f"{serial} refused on the good stack",
                        proc,
                    )
                    return time.monotonic() - t

                # Before the hang: ONOS refuses (503) the three services at once.
                await _until(
                    lambda: _has(metrics, "netd_voltha_onos_calls_total", 3, result="error"),
                    15,
                    "ONOS's 503s",
                    proc,
                )
                before = [await refused(f"GOOD0000000{i}") for i in (1, 2)]

                # The hang: a core that takes calls and never answers, a port that accepts
                # and never speaks HTTP/2, an ONOS that reads requests and never answers.
                with _Live(f"{status}/health/live") as live:
                    m0 = await metrics()
                    hung.hang = True
                    await mute.listen()
                    onos.mode = "silent"
                    hung_calls0 = len(hung.calls)
                    t_hang = time.monotonic()
                    for name in ("hung", "mute"):
                        await _until(
                            lambda name=name: events("voltha.unreachable", name),
                            10,
                            f"{name} reported unreachable",
                            proc,
                        )
                    await asyncio.sleep(0.5)
                    during = [await refused(f"GOOD0000000{i}") for i in (3, 4)]
                    near_onu = await refused_near(near, near_olt, proc)
                    await _until(
                        lambda: _has(
                            metrics, "netd_voltha_onos_calls_total", 2, result="unavailable"
                        ),
                        10,
                        "ONOS timeouts counted",
                        proc,
                    )
                    m1 = await metrics()
                    # ONOS now answers its headers and sends the body a byte at a time.
                    onos.mode = "drip"
                    await asyncio.sleep(2.5)
                    # Two of the near stack's syncs end while ONOS drips: on a loaded machine
                    # that may take longer than the 2.5 s above, so wait for them (bounded).
                    near_m1 = _samples(m1, "netd_voltha_sync_seconds_count", stack="near")
                    await _until(
                        lambda: _has(
                            metrics, "netd_voltha_sync_seconds_count", near_m1 + 2, stack="near"
                        ),
                        10,
                        "two near syncs while ONOS drips",
                        proc,
                    )
                    m2 = await metrics()
                    t_end = time.monotonic()
                    hang_s = t_end - t_hang
                    # Recovery: the hung core answers again.
                    hung.hang = False
                    await _until(lambda: events("voltha.reachable", "hung"), 10, "hung back", proc)
                    recovery = time.monotonic() - t_end
                    m3 = await metrics()

                def delta(a: str, b: str, name: str, **labels: str) -> float:
                    return _samples(b, name, **labels) - _samples(a, name, **labels)

                sync_n = "netd_voltha_syncs_total"
                secs = "netd_voltha_sync_seconds"
                report: dict[str, Any] = {
                    "deadline_s": DEADLINE,
                    "good_refusal_s_before": [round(x, 3) for x in before],
                    "good_refusal_s_during": [round(x, 3) for x in during],
                    "near_refusal_s_during_onos_hang": round(near_onu, 3),
                    "hang_s": round(hang_s, 1),
                    "recovery_s": round(recovery, 2),
                    "live_p50_ms": round(1000 * statistics.median(live.latencies), 1),
                    "live_max_ms": round(1000 * max(live.latencies), 1),
                    "live_failures": live.failures,
                }
                for name in stacks:
                    n = delta(m0, m2, secs + "_count", stack=name)
                    s = delta(m0, m2, secs + "_sum", stack=name)
                    report[f"{name}_syncs"] = int(n)
                    report[f"{name}_sync_mean_s"] = round(s / n, 3) if n else None
                for label, (a, b) in {"silent": (m0, m1), "drip": (m1, m2)}.items():
                    n = delta(a, b, secs + "_count", stack="near")
                    report[f"near_sync_mean_s_onos_{label}"] = round(
                        delta(a, b, secs + "_sum", stack="near") / n, 3
                    )
                    report[f"onos_unavailable_{label}"] = int(
                        delta(a, b, "netd_voltha_onos_calls_total", result="unavailable")
                    )
                report["hung_core_calls"] = len(hung.calls) - hung_calls0
                report["mute_connections"] = mute.accepted
                report["open_fds"] = [_samples(m, "process_open_fds") for m in (m0, m1, m2, m3)]
                print("hangs/voltha:", json.dumps(report))

                # The hung and mute cores: every sync fails within the deadline, counted,
                # reported once. The hung core's calls end on the deadline, one at a time (no
                # pile-up). The mute port's HTTP/2 handshake is given up sooner (grpc's connect
                # timeout, voltha/client.py's min_reconnect_backoff: 0.5 s, growing), so its
                # calls fail UNAVAILABLE; the reconnections back off.
                for name in ("hung", "mute"):
                    assert delta(m0, m2, sync_n, stack=name, result="unavailable") >= 2, report
                    assert delta(m0, m2, sync_n, stack=name, result="ok") == 0, report
                    assert await events("voltha.unreachable", name) == 1
                    assert _samples(m2, "netd_voltha_up", stack=name) == 0
                assert DEADLINE * 0.9 <= report["hung_sync_mean_s"] <= DEADLINE + 0.5, report
                assert report["mute_sync_mean_s"] <= DEADLINE + 0.5, report
                assert report["hung_core_calls"] <= hang_s / DEADLINE + 2, report
                assert 1 <= mute.accepted <= 8, report
                codes = {
                    d["stack"]: d["code"]
                    for d in _json_lines(proc.output())
                    if d.get("msg") == "VOLTHA core unreachable"
                }
                assert codes == {"hung": "DEADLINE_EXCEEDED", "mute": "UNAVAILABLE"}, codes
                # The healthy stacks keep their pace: syncs every interval, and an ONU is
                # refused as fast as before the hang.
                for name in ("good", "near"):
                    assert delta(m0, m2, sync_n, stack=name, result="unavailable") == 0, report
                assert report["good_syncs"] >= hang_s / (SYNC + 0.3), report
                assert report["good_sync_mean_s"] < 0.3, report
                assert max(during) < max(before) + 1.0 and max(during) < 2.5, report
                # ONOS silent, then dripping: each call ends on the deadline and the rest of
                # the pass waits for the next sync, so the near stack's syncs stay bounded.
                for label in ("silent", "drip"):
                    assert report[f"onos_unavailable_{label}"] >= 1, report
                    assert report[f"near_sync_mean_s_onos_{label}"] <= DEADLINE + 0.6, report
                assert near_onu < DEADLINE + 3 * SYNC + 2.0, report
                assert onos.requests.get("drip", 0) >= 1, onos.requests
                assert delta(m1, m2, secs + "_count", stack="near") >= 2, report
                # The process answered throughout, and holds no more descriptors than before.
                assert live.failures == 0 and max(live.latencies) < 1.0, report
                assert report["open_fds"][3] <= report["open_fds"][0] + 10, report
                assert recovery < 5.0, report
            finally:
                await http.aclose()
                await asyncio.to_thread(proc.stop)
                await pool.close()
                keys = [k async for k in cache.client.scan_iter(match=f"{prefix}:*")]
                if keys:
                    await cache.client.delete(*keys)
                await cache.close()
            assert "Traceback" not in proc.output()
    finally:
        hung.hang = False
        for core in (good, hung, near):
            await core.stop()
        await mute.close()
        await onos.close()


def _json_lines(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                out.append(doc)
    return out


async def _has(
    metrics: Callable[[], Awaitable[str]], name: str, at_least: float, **labels: str
) -> bool:
    return _samples(await metrics(), name, **labels) >= at_least


async def refused_near(near: FakeVoltha, olt: str, proc: NetdProcess) -> float:
    """The same allow-list work on the stack whose ONOS hangs: its inventory is not held up
    by more than one ONOS deadline per sync."""
    t = time.monotonic()
    near.discover_onu(olt, 3, "NEAR00000009")
    await _until(lambda: "NEAR00000009" in near.disabled_serials(olt), 15, "refused on near", proc)
    return time.monotonic() - t


# --- CPEs ----------------------------------------------------------------------------------------

SESSION_TIMEOUT = 2.0  # acs.session_timeout: an idle session, a request's headers, its body
CR_TIMEOUT = 1.5  # acs.connection_request_timeout
# the smallest data model (764 parameters, TR-098): the CPEs' first sessions discover it
CPE_MODEL = next(p for p in model_files() if "W5-2100G" in p.name)
GPV = {"names": ["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}


class _Sessions:
    """Healthy CPEs calling in one after another, each with a task queued; the latencies of
    their whole sessions (Inform to the ACS's empty answer)."""

    def __init__(self, cpes: list[Cpe], port: int, pool: Any) -> None:
        self.cpes, self.port, self.pool = cpes, port, pool
        self.latencies: list[float] = []
        self.tasks: list[int] = []

    async def run(self, seconds: float, at_most: int = 200, pace: float = 0.0) -> list[float]:
        """Sessions one after another (one started every ``pace`` s at most) for ``seconds``."""
        out: list[float] = []
        end = time.monotonic() + seconds
        for i in range(at_most):
            if time.monotonic() > end:
                break
            if i and pace:
                await asyncio.sleep(max(0.0, pace - out[-1]))
            cpe = self.cpes[i % len(self.cpes)]
            self.tasks.append(
                await acs_store.queue_task(
                    self.pool, cpe.device_id, "getParameterValues", GPV, "test"
                )
            )
            t = time.monotonic()
            statuses = await run_session(cpe, "127.0.0.1", self.port)
            out.append(time.monotonic() - t)
            assert statuses[-1] == 204, statuses
        self.latencies += out
        return out


async def _post_slowly(
    port: int, head: bytes, body: bytes, every: float, seconds: float
) -> tuple[float, bytes]:
    """Send ``head`` at once, then ``body`` a byte every ``every`` s; how long until the
    server answered or cut the connection, and what it said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t = time.monotonic()
    try:
        writer.write(head)
        sender = asyncio.get_running_loop().create_task(_drip(writer, body, every, seconds))
        try:
            got = await asyncio.wait_for(reader.read(65536), seconds)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return time.monotonic() - t, got
    finally:
        writer.close()


async def _task_status(pool: Any, task_id: int) -> tuple[str, int]:
    row = await pool.fetchrow("SELECT status, attempts FROM cpe_tasks WHERE id = $1", task_id)
    return str(row["status"]), int(row["attempts"])


async def test_hanging_cpes_are_dropped_and_stall_no_other_session(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    key = os.urandom(32)
    cr_password = "cr-" + os.urandom(8).hex()
    prefix = "ha" + uuid.uuid4().hex[:10]
    api_port, acs_port = free_port(), free_port()
    mute = Mute()  # a connection-request URL that accepts and never answers
    await mute.listen()
    drip = HangingHttp("drip")  # one that answers a byte every 0.2 s
    drip_url = await drip.start()
    listener = ConnectionRequests("cr-user", cr_password)  # a CPE that answers at once
    cr_ok = await listener.start()
    async with fresh_database(store_urls, "ha_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        _row, token = await api_store.create_token(pool, "hangs-operator", "operator", "test")
        leak_watch.add(key, cr_password, token)
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_POLICIES_DIR": str(resources.path("policies")),
                "NETD_LOG_FORMAT": "json",
                "NETD_API_PORT": str(api_port),
                "NETD_API_RATE_LIMIT": "100000",
                "NETD_API_RATE_BURST": "100000",
                "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
                "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
                "NETD_ACS_PORT": str(acs_port),
                "NETD_POLLER_EXPORTER_PORT": str(free_port()),
                "NETD_POLLER_TRAP_PORT": "0",
                "NETD_VOLTHA_SADIS_PORT": "0",
                "NETD_ACS_SESSION_TIMEOUT": str(SESSION_TIMEOUT),
                "NETD_ACS_CONNECTION_REQUEST_TIMEOUT": str(CR_TIMEOUT),
                "NETD_ACS_CONNECTION_REQUEST_USERNAME": "cr-user",
                "NETD_ACS_CONNECTION_REQUEST_PASSWORD": cr_password,
                "NETD_ACS_TASK_BACKOFF": "0.2",
                "NETD_ACS_RATE_LIMIT": "0",
            }
        )
        # `netd up`: the API's connection requests share the event loop with the ACS.
        proc = NetdProcess(["up"], env, tmp_path)
        base = f"http://127.0.0.1:{api_port}"
        api = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )
        try:
            await asyncio.to_thread(proc.wait_http, f"{base}/health/ready", 200, 60.0)

            def cpe(suffix: str, cr_url: str = "") -> Cpe:
                c = Cpe(load_model(CPE_MODEL), serial_suffix=suffix)
                c.tree[c.root + "ManagementServer.ConnectionRequestURL"].value = cr_url
                return c

            healthy = [cpe("-ok0", cr_ok), *(cpe(f"-ok{i}") for i in (1, 2))]
            hanger, slow = cpe("-hang"), cpe("-slow")
            cr_mute, cr_drip = (
                cpe("-crmute", f"http://127.0.0.1:{mute.port}/"),
                cpe("-crdrip", drip_url + "/"),
            )
            for c in [*healthy, hanger, slow, cr_mute, cr_drip]:  # registered, discovered
                assert (await run_session(c, "127.0.0.1", acs_port))[-1] == 204
            sessions = _Sessions(healthy, acs_port, pool)

            async def poke(c: Cpe) -> tuple[float, str, int]:
                """A task queued through the API, which pokes the CPE: how long the API
                took, the connection request's outcome, the task."""
                t = time.monotonic()
                r = await api.post(
                    f"/api/v1/cpes/{c.device_id}/tasks",
                    json={"kind": "getParameterValues", "args": GPV},
                )
                assert r.status_code == 201, r.text
                body = r.json()
                return time.monotonic() - t, body["connection_request"], body["task"]["id"]

            poke_ok_before = await poke(healthy[0])  # its task runs in the next session
            await sessions.run(0, 2)  # warm
            before = await sessions.run(1.5, 12)

            async def metrics() -> str:
                return (await api.get("/metrics")).text

            m0 = await metrics()
            hang_task = await acs_store.queue_task(
                pool, hanger.device_id, "getParameterValues", GPV, "test"
            )
            slow_task = await acs_store.queue_task(
                pool, slow.device_id, "getParameterValues", GPV, "test"
            )

            # 1. A CPE that sends its Inform and then nothing more (the TCP stays open).
            hung_conn = await Http.open("127.0.0.1", acs_port)
            status, _h, _d = await hung_conn.post("/", hanger.inform(), {})
            assert status == 200
            t_hang = time.monotonic()
            assert await _task_status(pool, hang_task) == ("running", 1)
            requeue = asyncio.get_running_loop().create_task(
                _until(lambda: _requeued(pool, hang_task), 8, "the hung task requeued", proc)
            )

            # 2. A CPE whose answer to the ACS's RPC comes a byte every 0.25 s.
            slow_conn = await Http.open("127.0.0.1", acs_port)
            status, got, _d = await slow_conn.post("/", slow.inform(), {})
            cookie = {"Cookie": got["set-cookie"].split(";", 1)[0]}
            status, _h, rpc = await slow_conn.post("/", b"", cookie)
            assert status == 200 and b"GetParameterValues" in rpc
            answer = slow.answer(rpc)
            head = (
                f"POST / HTTP/1.1\r\nHost: acs\r\nContent-Length: {len(answer)}\r\n"
                f"Content-Type: text/xml\r\nCookie: {cookie['Cookie']}\r\n\r\n"
            ).encode()
            slow_body = asyncio.get_running_loop().create_task(
                _slow_on(slow_conn, head, answer, 0.25, SESSION_TIMEOUT + 4)
            )
            # 3. A client that sends its request line and headers a byte every 0.25 s.
            slow_head = asyncio.get_running_loop().create_task(
                _post_slowly(
                    acs_port,
                    b"",
                    b"POST / HTTP/1.1\r\nHost: acs\r\nContent-Type: text/xml\r\n" * 10,
                    0.25,
                    SESSION_TIMEOUT + 4,
                )
            )

            # 4. Connection requests to a CPE that never answers and to one that drips,
            # through the API (queued tasks poke the CPE); one to a CPE that answers.
            pokes = [asyncio.get_running_loop().create_task(poke(c)) for c in (cr_mute, cr_drip)]
            await asyncio.sleep(0.3)
            poke_ok_during = await poke(healthy[0])

            async def api_reads() -> list[float]:
                out = []
                for _ in range(20):
                    t = time.monotonic()
                    r = await api.get(f"/api/v1/cpes/{healthy[0].device_id}")
                    assert r.status_code == 200
                    out.append(time.monotonic() - t)
                    await asyncio.sleep(0.1)
                return out

            reads = asyncio.get_running_loop().create_task(api_reads())
            during = await sessions.run(SESSION_TIMEOUT + 1.0, 60, pace=0.1)
            poked = [await p for p in pokes]
            api_latency = await reads
            body_s, body_answer = await slow_body
            head_s, head_answer = await slow_head

            # The hung session was dropped by the sweep and its task queued again.
            hang_requeued_s = await requeue - t_hang
            assert await _task_status(pool, slow_task) == ("queued", 1)
            m1 = await metrics()
            await hung_conn.close()
            await slow_conn.close()

            # Both CPEs call in again: their tasks run now.
            await asyncio.sleep(0.3)  # the requeue's backoff (acs.task_backoff 0.2 s)
            for c, task_id in ((hanger, hang_task), (slow, slow_task)):
                c.seen.clear()
                assert (await run_session(c, "127.0.0.1", acs_port))[-1] == 204
                assert c.seen == ["GetParameterValues"], c.seen
                assert await _task_status(pool, task_id) == ("done", 2)
            after = await sessions.run(1.0, 8)
            m2 = await metrics()

            def delta(name: str, **labels: str) -> float:
                return _samples(m1, name, **labels) - _samples(m0, name, **labels)

            report = {
                "session_timeout_s": SESSION_TIMEOUT,
                "connection_request_timeout_s": CR_TIMEOUT,
                "hung_session_requeued_s": round(hang_requeued_s, 2),
                "slow_body_cut_s": round(body_s, 2),
                "slow_headers_cut_s": round(head_s, 2),
                "connreq_mute": (round(poked[0][0], 2), poked[0][1]),
                "connreq_drip": (round(poked[1][0], 2), poked[1][1]),
                "connreq_ok": [(round(x[0], 3), x[1]) for x in (poke_ok_before, poke_ok_during)],
                "healthy_sessions": [len(before), len(during), len(after)],
                "healthy_p50_ms": [
                    round(1000 * statistics.median(x), 1) for x in (before, during, after)
                ],
                "healthy_max_ms": [round(1000 * max(x), 1) for x in (before, during, after)],
                "api_read_p50_ms": round(1000 * statistics.median(api_latency), 1),
                "api_read_max_ms": round(1000 * max(api_latency), 1),
                "timeouts": delta("netd_acs_sessions_total", outcome="timeout"),
                "read_timeouts": delta("netd_acs_sessions_total", outcome="read-timeout"),
                "rejects": {
                    r: delta("netd_acs_rejects_total", reason=r)
                    for r in ("body-timeout", "headers-timeout")
                },
            }
            print("hangs/cpe:", json.dumps(report))
            # The deadlines fired, each about when configured, and were counted.
            assert SESSION_TIMEOUT - 0.1 <= hang_requeued_s <= SESSION_TIMEOUT + 1.5, report
            assert b" 408 " in body_answer.split(b"\r\n", 1)[0], body_answer[:200]
            assert SESSION_TIMEOUT - 0.1 <= body_s <= SESSION_TIMEOUT + 1.0, report
            assert head_answer == b"", head_answer[:200]  # closed without a word
            assert SESSION_TIMEOUT - 0.1 <= head_s <= SESSION_TIMEOUT + 1.0, report
            assert report["timeouts"] == 1 and report["read_timeouts"] == 1, report
            assert report["rejects"] == {"body-timeout": 1.0, "headers-timeout": 1.0}, report
            for took, outcome, _task in poked:
                assert outcome == "unreachable", report
                assert CR_TIMEOUT - 0.1 <= took <= CR_TIMEOUT + 1.0, report
            assert mute.accepted >= 1 and drip.requests.get("drip", 0) >= 1
            # A CPE that answers is poked as fast during the hang as before it.
            assert poke_ok_before[1] == poke_ok_during[1] == "ok", report
            assert poke_ok_during[0] < 1.0, report
            assert listener.accepted == 2
            # Meanwhile every other CPE's session completed, with its usual latency.
            assert len(during) >= 5, report
            assert statistics.median(during) <= 2 * statistics.median(before) + 0.1, report
            assert max(during) <= max(before) + 1.0, report
            assert max(api_latency) < 1.0, report
            for task_id in sessions.tasks:
                assert (await _task_status(pool, task_id))[0] == "done"
            assert _samples(m2, "netd_acs_sessions_live") == 0
        finally:
            await api.aclose()
            await asyncio.to_thread(proc.stop)
            await pool.close()
            await mute.close()
            await drip.close()
            await listener.close()
        out = proc.output()
        assert "Traceback" not in out, out[-3000:]


async def _slow_on(
    conn: Http, head: bytes, body: bytes, every: float, seconds: float
) -> tuple[float, bytes]:
    """``_post_slowly`` on a connection already open (the CPE's session)."""
    t = time.monotonic()
    conn.writer.write(head)
    sender = asyncio.get_running_loop().create_task(_drip(conn.writer, body, every, seconds))
    try:
        got = await asyncio.wait_for(conn.reader.read(65536), seconds)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    return time.monotonic() - t, got


async def _requeued(pool: Any, task_id: int) -> float:
    """When the task was seen queued again after its first attempt (0: not yet)."""
    return time.monotonic() if (await _task_status(pool, task_id)) == ("queued", 1) else 0.0
