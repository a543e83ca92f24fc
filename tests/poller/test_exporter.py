"""A real `netd poller` against snmpsim serving devices of the test's own and net-snmp's
snmpd: what /snmp/metrics, snmp_exporter's /snmp scrape, Redis and PostgreSQL show for
- a NUL byte in an interface name (every sample of the device was lost: PostgreSQL
  refuses NUL in jsonb);
- a Counter64 past 2^53 (it came out rounded: 18446744073709551000 as ...616);
- a device without ifXTable (no traffic at all: no 32-bit fallback, no ifSpeed);
- a device that stops answering (its last values stayed on /snmp/metrics; a closed port
  read as "timeout");
- a target removed (its series stayed on /metrics).
Each of these failed on main."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.poller.client import Credentials
from daemons.store import snmp as store
from daemons.store.cache import connect, unpack
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.poller.devices import BIG, device
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.poller.snmpsim import Snmpsim
from tests.support import NetdProcess, free_port, netd_env

CISCO = "network/switch/cisco-c3750.snmprec.bz2"


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


async def test_poller_exposition_of_odd_and_dead_devices(
    store_urls: StoreUrls, tmp_path: Path
) -> None:
    sim = Snmpsim(
        tmp_path / "sim",
        [CISCO],
        CISCO,
        [],
        records={
            "netd-nul": device("nul", True, {1: b"Gi0/1\x00", 2: b"Gi0\x00/2"}),
            "netd-noifx": device("noifx", False),
        },
    )
    snmpd = Snmpd(tmp_path / "snmpd") if (tmp_path / "snmpd").mkdir() is None else None
    assert snmpd is not None
    key = os.urandom(32)
    sealer = Sealer(key)
    prefix = "p" + os.urandom(5).hex()
    async with fresh_database(store_urls, "p_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        profiles = ("system", "if-mib")
        for name, port, community in [
            ("nul", sim.port, "netd-nul"),
            ("noifx", sim.port, "netd-noifx"),
            ("removed", sim.port, "netd-noifx"),
            ("dead", snmpd.port, COMMUNITY),
        ]:
            await store.put_target(
                pool,
                sealer,
                store.Target(name, "127.0.0.1", port, Credentials("2c", community), profiles, 10),
            )
        exporter, status = free_port(), free_port()
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_POLLER_EXPORTER_PORT": str(exporter),
                "NETD_POLLER_STATUS_PORT": str(status),
                "NETD_POLLER_TRAP_PORT": "0",
                "NETD_POLLER_TIMEOUT": "0.5",
                "NETD_POLLER_RETRIES": "0",
                "NETD_POLICIES_DIR": str(resources.path("policies")),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
            }
        )
        proc = NetdProcess(["poller"], env, tmp_path)
        metrics = f"http://127.0.0.1:{exporter}/snmp/metrics"
        try:
            proc.wait_http(f"http://127.0.0.1:{status}/health/ready")

            async def status_of(name: str) -> dict[str, object] | None:
                raw = await cache.client.get(cache.key("snmp:" + name, "status"))
                return unpack(raw) if isinstance(raw, bytes) else None

            async def all_up() -> bool:
                got = [await status_of(n) for n in ("nul", "noifx", "removed", "dead")]
                return all(s is not None and s["state"] == "up" for s in got)

            await _until(all_up, 20, "every target polled")
            text = httpx.get(metrics).text
            # NUL: the trailing one of a C string dropped, one inside replaced; stored.
            assert 'ifName="Gi0/1",target="nul"' in text
            assert 'ifName="Gi0\ufffd/2",target="nul"' in text
            rows = await pool.fetchval("SELECT count(*) FROM snmp_samples WHERE target = 'nul'")
            assert rows > 0
            # Counter64 past 2^53: exact on /snmp/metrics and in Redis.
            assert f'ifIndex="1",ifName="Gi0/1",target="nul"}} {BIG}\n' in text
            _ts, latest = store.read_latest(
                await cache.client.get(cache.key("snmp:nul", "latest"))  # type: ignore[arg-type]
            )
            assert [
                v for m, lb, v, _k in latest if m == "ifHCInOctets" and lb["ifIndex"] == "1"
            ] == [BIG]
            # No ifXTable: the 32-bit counters, ifSpeed, and their rates after two polls.
            assert 'ifInOctets{ifDescr="port 1",ifIndex="1",target="noifx"} 4000000001' in text
            assert 'ifSpeed{ifDescr="port 1",ifIndex="1",target="noifx"} 100000000' in text
            assert (
                'ifType_info{ifDescr="port 1",ifIndex="1",ifType="ethernetCsmacd",target="noifx"} 1'
                in text
            )
            assert (
                'ifPhysAddress{ifDescr="port 1",ifIndex="1",'
                'ifPhysAddress="00:1A:2B:3C:4D:01",target="noifx"} 1' in text
            )

            async def rated() -> bool:
                return 'ifInOctets_rate{ifDescr="port 2",ifIndex="2",target="noifx"}' in (
                    httpx.get(metrics).text
                )

            await _until(rated, 25, "a 32-bit rate")
            # snmp_exporter's scrape, by name and by address.
            scrape = httpx.get(
                f"http://127.0.0.1:{exporter}/snmp",
                params={"target": f"127.0.0.1:{snmpd.port}", "module": "if_mib", "auth": "x"},
            )
            assert scrape.status_code == 200, scrape.text
            assert "ifHCInOctets{" in scrape.text and "target=" not in scrape.text
            # A removed target leaves /metrics and /snmp/metrics.
            own = f"http://127.0.0.1:{status}/metrics"
            assert 'target="removed"' in httpx.get(own).text
            await store.remove_target(pool, "removed")

            async def forgotten() -> bool:
                return 'target="removed"' not in httpx.get(own).text + httpx.get(metrics).text

            await _until(forgotten, 10, "the removed target's series gone")
            # The agent stops: refused, its series leave /snmp/metrics, its scrape fails.
            assert 'target="dead"' in httpx.get(metrics).text
            snmpd.stop()

            async def down() -> bool:
                s = await status_of("dead")
                return s is not None and s["state"] == "down"

            await _until(down, 25, "the stopped agent down")
            assert (await status_of("dead") or {})["reason"] == "refused"
            assert 'target="dead"' not in httpx.get(metrics).text
            failed = httpx.get(
                f"http://127.0.0.1:{exporter}/snmp", params={"target": "dead", "module": "if_mib"}
            )
            assert failed.status_code == 500 and "refused" in failed.text
            unknown = httpx.get(f"http://127.0.0.1:{exporter}/snmp", params={"target": "nope"})
            assert unknown.status_code == 404
            bad = httpx.get(
                f"http://127.0.0.1:{exporter}/snmp", params={"target": "nul", "module": "x"}
            )
            assert bad.status_code == 400 and "Unknown module 'x'" in bad.text
        finally:
            proc.stop()
            sim.stop()
            snmpd.stop()
            await pool.close()
            await cache.close()
        out = proc.output()
        assert "Traceback" not in out and "UntranslatableCharacter" not in out
