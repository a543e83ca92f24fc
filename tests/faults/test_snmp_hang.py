"""A device that hangs (takes SNMP requests and never answers) delays no other target:
its polls time out on their own deadline while the healthy target keeps its schedule."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import httpx

from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.poller.client import Credentials
from daemons.store import snmp as store
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.faults.conftest import LeakWatch
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.support import NetdProcess, free_port, netd_env

REPO = Path(__file__).resolve().parents[2]


def _metric(text: str, name: str, target: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and f'target="{target}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_hanging_agent_does_not_stall_the_others(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    (tmp_path / "agent").mkdir()
    agent = Snmpd(tmp_path / "agent")
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives, never answers
    hole.bind(("127.0.0.1", 0))
    key = os.urandom(32)
    leak_watch.add(key, COMMUNITY)
    try:
        async with fresh_database(store_urls, "h_", migrated=True) as dsn:
            pool = await create_pool(DatabaseConfig(), dsn, "test")
            creds = Credentials("2c", community=COMMUNITY)
            sealer = Sealer(key)
            await store.put_target(
                pool, sealer, store.Target("good", "127.0.0.1", agent.port, creds, ("system",), 10)
            )
            # Several hanging devices: each poll waits out timeout x (retries + 1).
            for i in range(6):
                await store.put_target(
                    pool,
                    sealer,
                    store.Target(
                        f"hang{i}",
                        "127.0.0.1",
                        hole.getsockname()[1],
                        creds,
                        ("system", "if-mib"),
                        10,
                    ),
                )
            status = free_port()
            env = netd_env(
                {
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": store_urls.redis,
                    "NETD_REDIS_KEY_PREFIX": "h" + os.urandom(5).hex(),
                    "NETD_SECRETS_KEY": key.hex(),
                    "NETD_POLLER_EXPORTER_PORT": "0",
                    "NETD_POLLER_TRAP_PORT": "0",
                    "NETD_POLLER_STATUS_PORT": str(status),
                    "NETD_POLLER_TIMEOUT": "2",
                    "NETD_POLLER_RETRIES": "1",
                    "NETD_POLLER_CONCURRENCY": "8",
                    "NETD_POLICIES_DIR": str(resources.path("policies")),
                    "NETD_STATE_DIR": str(tmp_path / "state"),
                }
            )
            proc = NetdProcess(["poller"], env, tmp_path)
            try:
                proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
                url = f"http://127.0.0.1:{status}/metrics"
                text = ""
                for _ in range(300):  # up to 30 s: the good target polls at 10 s intervals
                    text = httpx.get(url, timeout=5).text
                    if _metric(text, 'netd_snmp_polls_total{result="ok"', "good") >= 2:
                        break
                    await asyncio.sleep(0.1)
                ok = _metric(text, 'netd_snmp_polls_total{result="ok"', "good")
                assert ok >= 2, text
                # Each healthy poll started on time although every hanging poll takes 4 s.
                assert _metric(text, "netd_snmp_poll_lateness_seconds", "good") < 1.0
                hung = sum(
                    _metric(text, 'netd_snmp_polls_total{result="timeout"', f"hang{i}")
                    for i in range(6)
                )
                assert hung >= 3  # their first polls fall across the interval
                ready = httpx.get(f"http://127.0.0.1:{status}/health/ready", timeout=5)
                assert ready.status_code == 200
                took = _metric(text, "netd_snmp_poll_duration_seconds", "hang0")
                assert 0 < took < 10  # bounded by the deadline
            finally:
                proc.stop()
                await pool.close()
            assert "Traceback" not in proc.output()
    finally:
        hole.close()
        agent.stop()
