"""What a NOC looks at, over a real stack: one `netd up` (every daemon in one process, as
`make run` runs them) on a fresh database and the test Redis, with its peers on loopback:
a net-snmp agent (tests/poller/snmpd.py) polled by the poller, the fake VOLTHA core and
ONOS of tests/voltha behind one stack, and a NAS (radclient) for RADIUS. Shared by the
package's modules (the browser tests and the Prometheus tests).

Tokens of each role, subscribers alice, bob and carol, NAS bng1 (127.0.0.1, no
Message-Authenticator required: radclient sends none unless told to).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import api as api_store
from daemons.store import radius as radius_store
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.support import NetdProcess, free_port, free_udp_port, netd_env, tool
from tests.voltha.fake_core import FakeVoltha
from tests.voltha.fake_onos import FakeOnos

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "var" / "test-artefacts" / "noc"  # screenshots: kept, not committed
NAS_SECRET = "noc-nas-secret"
ROLES = ("viewer", "operator", "admin")


@dataclass
class Noc:
    url: str
    metrics_port: int
    exporter_port: int
    auth_port: int
    acct_port: int
    acs_port: int
    trap_port: int
    tokens: dict[str, str]
    pool: asyncpg.Pool
    cache: Cache
    proc: NetdProcess
    voltha: FakeVoltha
    snmpd: Snmpd
    tmp: Path
    shared: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str = "admin") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=15.0,
        )

    def radclient(self, kind: str, attributes: dict[str, str | int]) -> str:
        """One request with Debian's radclient (``kind`` auth or acct); its output. Fails
        unless it got an answer."""
        port = self.auth_port if kind == "auth" else self.acct_port
        text = "\n".join(f"{k} = {_quote(v)}" for k, v in attributes.items()) + "\n"
        done = subprocess.run(
            [
                tool("radclient", "freeradius-utils"),
                "-x",
                "-r",
                "2",
                "-t",
                "2",
                f"127.0.0.1:{port}",
                kind,
                NAS_SECRET,
            ],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Received" in done.stdout, done.stdout + done.stderr
        return done.stdout


def _quote(value: str | int) -> str:
    return str(value) if isinstance(value, int) else '"' + value.replace('"', '\\"') + '"'


async def until(check: Callable[[], Any], seconds: float = 20.0, what: str = "") -> Any:
    """Await ``check()`` (sync or async) until it is truthy, bounded in time."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what or check}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="package")
async def noc(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Noc]:
    tmp = tmp_path_factory.mktemp("noc")
    voltha = FakeVoltha(step_seconds=0.05)
    await voltha.start()
    sadis_port = free_port()
    onos = FakeOnos(f"http://127.0.0.1:{sadis_port}", voltha=voltha)
    await onos.start()
    (tmp / "snmpd").mkdir()
    snmpd = Snmpd(tmp / "snmpd")
    key = os.urandom(32)
    sealer = Sealer(key)
    prefix = "n" + uuid.uuid4().hex[:10]
    ports = {name: free_port() for name in ("api", "acs", "exporter", "s1", "s2", "s3", "s4", "s5")}
    auth_port, acct_port, trap_port = free_udp_port(), free_udp_port(), free_udp_port()
    config = tmp / "netd.toml"
    config.write_text(
        f"""
[radius]
listen = ["127.0.0.1"]
auth_port = {auth_port}
acct_port = {acct_port}
status_port = {ports["s1"]}

[acs]
port = {ports["acs"]}
status_port = {ports["s2"]}
rate_limit = 0
session_timeout = 5

[poller]
exporter_port = {ports["exporter"]}
status_port = {ports["s3"]}
trap_port = {trap_port}

[devices]
status_port = {ports["s4"]}

[voltha]
status_port = {ports["s5"]}
sync_interval = 0.5
optics_interval = 0.5
sadis_port = {sadis_port}

[voltha.stacks.lab]
address = "{voltha.address}"
deadline = 1.0
onos_url = "{onos.base_url}"

[lifecycle]
heartbeat_interval = 1.0
"""
    )
    policies = tmp / "policies"
    shutil.copytree(resources.path("policies"), policies)
    async with fresh_database(store_urls, "n_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        await radius_store.add_nas(
            pool,
            radius_store.NasRow(
                "bng1",
                "127.0.0.1/32",
                sealer.seal(NAS_SECRET.encode(), b"nas:bng1"),
                "mikrotik",
                False,
                3799,
            ),
        )
        for user, plan in (("alice", "fiber-100"), ("bob", "default"), ("carol", "fiber-1000")):
            row = credentials(
                radius_store.SubscriberRow(user, plan=plan), "pw-" + user, "none", sealer
            )
            await radius_store.upsert_subscriber(pool, cache, row)
        tokens = {}
        for role in ROLES:
            _row, secret = await api_store.create_token(pool, f"noc-{role}", role, "test")
            tokens[role] = secret
        env = netd_env(
            {
                "NETD_CONFIG": str(config),
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_API_PORT": str(ports["api"]),
                "NETD_API_RATE_LIMIT": "100000",
                "NETD_API_RATE_BURST": "100000",
                "NETD_API_SSE_KEEPALIVE": "1",
                "NETD_POLICIES_DIR": str(policies),
                "NETD_STATE_DIR": str(tmp / "state"),
                "NETD_LOG_FORMAT": "json",
            }
        )
        proc = NetdProcess(["up"], env, tmp)
        url = f"http://127.0.0.1:{ports['api']}"
        try:
            await asyncio.to_thread(proc.wait_http, f"{url}/health/ready", 200, 60.0)
            noc = Noc(
                url,
                ports["api"],
                ports["exporter"],
                auth_port,
                acct_port,
                ports["acs"],
                trap_port,
                tokens,
                pool,
                cache,
                proc,
                voltha,
                snmpd,
                tmp,
            )
            async with noc.client() as c:
                put = await c.put(
                    "/api/v1/snmp/targets/core-sw1",
                    json={
                        "address": "127.0.0.1",
                        "port": snmpd.port,
                        "community": COMMUNITY,
                        "interval": 10,
                    },
                )
                assert put.status_code in (200, 201), put.text
            yield noc
        finally:
            await asyncio.to_thread(proc.stop)
            snmpd.stop()
            await onos.stop()
            await voltha.stop()
            await pool.close()
            keys = [k async for k in cache.client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await cache.client.delete(*keys)
            await cache.close()
        out = proc.output()
        assert "Traceback" not in out, out[-5000:]
        for secret in (*tokens.values(), NAS_SECRET, key.hex(), "pw-alice"):
            assert secret not in out, "a secret is in the log"


CPE_MODEL = "device-00259E-EG8145V5-48575443A94196A5-2023-03-28T154335106Z.csv"
CPE_ADDRESS = "127.0.0.2"  # the CPE's source address: alice's session has it (her CPE)


async def cpe_session(noc: Noc, cpe: Any) -> list[int]:
    """One CWMP session of the simulated CPE from CPE_ADDRESS (its WAN address)."""
    from tests.acs import sim  # noqa: PLC0415 - the CPE simulator and its models

    async def from_wan(cls: Any, host: str, port: int) -> Any:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(CPE_ADDRESS, 0))
        return cls(reader, writer)

    opened = sim.Http.open
    sim.Http.open = classmethod(from_wan)  # type: ignore[method-assign,assignment]
    try:
        return await sim.run_session(cpe, "127.0.0.1", noc.acs_port)
    finally:
        sim.Http.open = opened  # type: ignore[method-assign]


@pytest.fixture(scope="package")
async def stocked(noc: Noc) -> Noc:
    """The stack with something to show: an OLT with alice's ONU (optics read), a CPE
    that informed from alice's address and answered a task with a fault, and the SNMP
    target polled."""
    if noc.shared:
        return noc
    from tests.acs import sim  # noqa: PLC0415

    async with noc.client() as c:
        made = await c.post(
            "/api/v1/voltha/olts", json={"stack": "lab", "host_and_port": "127.0.0.1:9191"}
        )
        assert made.status_code == 201, made.text
        olt = made.json()["id"]
        bound = await c.put(
            "/api/v1/voltha/onus/BRCM00000001/binding",
            json={"subscriber": "alice", "s_tag": 100, "c_tag": 201},
        )
        assert bound.status_code == 201, bound.text

        async def olt_active() -> bool:
            r = await c.get(f"/api/v1/voltha/olts/{olt}")
            return r.status_code == 200 and r.json()["oper_status"] == "ACTIVE"

        await until(olt_active, what="the OLT active in the inventory")
        onu = noc.voltha.discover_onu(olt, 0, "BRCM00000001")
        noc.voltha.set_onu_optics(onu, rx_dbm=-21.5, tx_dbm=2.25, temperature_c=45.0)
        noc.voltha.set_olt_rx_power(olt, "BRCM00000001", -22.75)
        noc.voltha.set_pon_stats(olt, 0, rx_bytes=123456, tx_bytes=654321)
        noc.voltha.set_onu_pon_counters(onu, bip_errors=3)

        async def optics() -> bool:
            r = await c.get("/api/v1/voltha/onus/BRCM00000001/optics")
            return r.status_code == 200 and "rx_dbm" in r.json().get("values", {})

        await until(optics, 30, what="alice's ONU optics read")
        cpe = sim.Cpe(sim.load_model(sim.MODELS / CPE_MODEL))
        assert 200 in await cpe_session(noc, cpe)
        task = await c.post(
            f"/api/v1/cpes/{cpe.device_id}/tasks",
            json={
                "kind": "getParameterValues",
                "args": {"names": [cpe.root + "DeviceInfo.NoSuchParameter"]},
                "connection_request": False,
            },
        )
        assert task.status_code == 201, task.text
        await cpe_session(noc, cpe)

        async def polled() -> bool:
            r = await c.get("/api/v1/snmp/targets/core-sw1")
            status = r.json().get("status") if r.status_code == 200 else None
            return bool(status) and status["state"] == "up"

        await until(polled, 30, what="core-sw1 polled")
    noc.shared.update(olt=olt, onu=onu, cpe=cpe.device_id, cpe_sim=cpe)
    return noc
