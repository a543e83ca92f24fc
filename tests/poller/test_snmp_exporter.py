"""netd against Prometheus's snmp_exporter (Debian prometheus-snmp-exporter 0.21), both
reading the same agents: snmpsim serving two real dumps (a Juniper MX960 router and a
Cisco 3750 switch) and two devices of the test's own (one without ifXTable, one with a
Counter64 past 2^53), and net-snmp's snmpd. snmp_exporter runs the if_mib module written in
tests/poller/snmp_exporter.py; netd's poller answers the same URL (/snmp?target=&module=)
from its last poll. Every series is compared: names, types, label sets and values.

Values differ in one documented way: snmp_exporter wraps a Counter64 at 2^53
(--snmp.wrap-large-counters, on by default) where netd keeps the exact integer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.poller.client import Credentials
from daemons.store import snmp as store
from daemons.store.cache import connect, unpack
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.poller.devices import device
from tests.poller.snmp_exporter import SnmpExporter, parse
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.poller.snmpsim import Snmpsim, community
from tests.support import NetdProcess, free_port, netd_env

JUNIPER = "network/router/juniper-mx960-13-3r9-13.snmprec.bz2"
CISCO = "network/switch/cisco-c3750.snmprec.bz2"
WRAP = 2**53
# snmp_exporter's own gauges about the scrape; netd gives the first three
SCRAPE = {
    "snmp_scrape_duration_seconds",
    "snmp_scrape_walk_duration_seconds",
    "snmp_scrape_pdus_returned",
    "snmp_scrape_packets_sent",
    "snmp_scrape_packets_retried",
}
# what a live agent (snmpd) changes between two reads: compared by series, not value
MOVING = {"sysUpTime", "ifLastChange"}


@pytest.fixture(scope="module")
def sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Snmpsim]:
    cache = getattr(request.config, "cache", None)
    agent = Snmpsim(
        tmp_path_factory.mktemp("snmpsim"),
        [JUNIPER, CISCO],
        CISCO,
        [],
        cache=cache.mkdir("snmpsim-exporter") if cache is not None else None,
        records={"netd-noifx": device("noifx", False), "netd-big": device("big", True)},
    )
    yield agent
    agent.stop()


def _same_value(netd: str, theirs: str, kind: str) -> bool:
    if float(netd) == float(theirs):
        return True
    # snmp_exporter wraps 64-bit counters at 2^53; netd gives the exact integer
    return kind == "counter" and int(netd) >= WRAP and int(netd) % WRAP == int(float(theirs))


async def test_every_series_as_snmp_exporter_gives_it(
    store_urls: StoreUrls, sim: Snmpsim, tmp_path: Path
) -> None:
    (tmp_path / "snmpd").mkdir()
    snmpd = Snmpd(tmp_path / "snmpd")
    devices = {  # target name -> (port, community, live)
        "juniper": (sim.port, community(JUNIPER), False),
        "cisco": (sim.port, community(CISCO), False),
        "noifx": (sim.port, "netd-noifx", False),
        "big": (sim.port, "netd-big", False),
        "snmpd": (snmpd.port, COMMUNITY, True),
    }
    exporter = SnmpExporter(
        tmp_path, [(f"if_mib_{n}", c) for n, (_p, c, _l) in devices.items()], free_port()
    )
    key = os.urandom(32)
    prefix = "x" + os.urandom(5).hex()
    async with fresh_database(store_urls, "x_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        for name, (port, comm, _live) in devices.items():
            await store.put_target(
                pool,
                Sealer(key),
                store.Target(name, "127.0.0.1", port, Credentials("2c", comm), ("if-mib",), 10),
            )
        http, status = free_port(), free_port()
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_POLLER_EXPORTER_PORT": str(http),
                "NETD_POLLER_STATUS_PORT": str(status),
                "NETD_POLLER_TRAP_PORT": "0",
                "NETD_POLLER_TIMEOUT": "5",
                "NETD_POLICIES_DIR": str(resources.path("policies")),
                "NETD_STATE_DIR": str(tmp_path / "state"),
            }
        )
        proc = NetdProcess(["poller"], env, tmp_path)
        report = []
        try:
            proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
            for _ in range(300):
                raws = [await cache.client.get(cache.key("snmp:" + n, "status")) for n in devices]
                if all(isinstance(r, bytes) and unpack(r)["state"] == "up" for r in raws):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"not every target polled: {raws}\n{proc.output()}")
            for name, (port, _comm, live) in devices.items():
                theirs = exporter.scrape(f"127.0.0.1:{port}", f"if_mib_{name}")
                ours = httpx.get(
                    f"http://127.0.0.1:{http}/snmp",
                    # snmpsim serves several devices on one port: those by target name
                    params={
                        "target": f"127.0.0.1:{port}" if live else name,
                        "module": "if_mib",
                        "auth": "public_v2",
                    },
                    timeout=10,
                )
                assert theirs.status_code == 200, theirs.text
                assert ours.status_code == 200, ours.text
                t_types, t_series = parse(theirs.text)
                n_types, n_series = parse(ours.text)
                assert set(n_types) & SCRAPE <= set(t_types) & SCRAPE
                t_types = {k: v for k, v in t_types.items() if k not in SCRAPE}
                n_types = {k: v for k, v in n_types.items() if k not in SCRAPE}
                assert n_types == t_types, (name, set(n_types) ^ set(t_types))
                t_series = {k: v for k, v in t_series.items() if k[0] not in SCRAPE}
                n_series = {k: v for k, v in n_series.items() if k[0] not in SCRAPE}
                missing, extra = set(t_series) - set(n_series), set(n_series) - set(t_series)
                assert not missing and not extra, (name, sorted(missing)[:5], sorted(extra)[:5])
                differ = [
                    (s, n_series[s], v)
                    for s, v in t_series.items()
                    if not (live and (t_types[s[0]] == "counter" or s[0] in MOVING))
                    and not _same_value(n_series[s], v, t_types[s[0]])
                ]
                assert not differ, (name, differ[:5])
                wrapped = sum(1 for s, v in t_series.items() if int(float(n_series[s])) >= WRAP)
                report.append((name, len(t_types), len(t_series), len(differ), wrapped))
        finally:
            proc.stop()
            exporter.stop()
            snmpd.stop()
            await pool.close()
            await cache.close()
        print("\ndevice, metric names, series, values differing, Counter64 past 2^53")
        for row in report:
            print(*row)
        assert {r[0] for r in report} == set(devices)
        assert max(r[1] for r in report) == 40  # every name of snmp_exporter's if_mib
        assert [r[4] for r in report if r[0] == "big"] == [1]
