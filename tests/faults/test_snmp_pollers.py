"""Three `netd poller` processes share 300 targets through PostgreSQL (leases,
daemons/poller/sharing.py): two start, a third joins (a rebalance), one is killed with
SIGKILL. Every poll of every target is in snmp_samples (its time): no target goes more than
two intervals without a poll, none is polled twice within one interval, the joining poller
takes its share without a burst of polls, and at the end each target has one owner, a
live poller."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

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

TARGETS, INTERVAL = 300, 10.0


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.timeout(300)
async def test_three_pollers_300_targets_one_killed(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    (tmp_path / "agent").mkdir()
    agent = Snmpd(tmp_path / "agent")
    key = os.urandom(32)
    leak_watch.add(key, COMMUNITY)
    procs: dict[str, NetdProcess] = {}
    status: dict[str, int] = {}
    async with fresh_database(store_urls, "m_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        try:
            creds = Credentials("2c", community=COMMUNITY)
            sealer = Sealer(key)
            for i in range(TARGETS):
                await store.put_target(
                    pool,
                    sealer,
                    store.Target(f"t{i:03d}", "127.0.0.1", agent.port, creds, ("system",), 10),
                )

            def start(name: str) -> None:
                status[name] = free_port()
                env = netd_env(
                    {
                        "NETD_DATABASE_URL": dsn,
                        "NETD_REDIS_URL": store_urls.redis,
                        "NETD_REDIS_KEY_PREFIX": "m" + key.hex()[:8],
                        "NETD_SECRETS_KEY": key.hex(),
                        "NETD_INSTANCE_NAME": name,
                        "NETD_POLLER_EXPORTER_PORT": str(free_port()),
                        "NETD_POLLER_STATUS_PORT": str(status[name]),
                        "NETD_POLLER_TRAP_PORT": "0",
                        "NETD_POLLER_TIMEOUT": "1",
                        "NETD_POLLER_RETRIES": "1",
                        "NETD_POLLER_LEASE_TTL": "4",
                        "NETD_POLLER_SYNC_INTERVAL": "1",
                        "NETD_POLICIES_DIR": str(resources.path("policies")),
                        "NETD_STATE_DIR": str(tmp_path / f"state-{name}"),
                    }
                )
                (tmp_path / name).mkdir()
                procs[name] = NetdProcess(["poller"], env, tmp_path / name)
                procs[name].wait_http(f"http://127.0.0.1:{status[name]}/health/ready", timeout=30)

            async def polls() -> dict[str, list[float]]:
                rows = await pool.fetch(
                    "SELECT DISTINCT target, extract(epoch FROM ts)::float8 AS at "
                    "FROM snmp_samples ORDER BY 1, 2"
                )
                out: dict[str, list[float]] = {}
                for r in rows:
                    out.setdefault(r["target"], []).append(r["at"])
                return out

            start("p1")
            start("p2")
            for _ in range(300):
                got = await polls()
                if len(got) == TARGETS:
                    break
                await asyncio.sleep(0.2)
            assert len(got) == TARGETS, f"{len(got)} targets polled"
            since = max(at[0] for at in got.values())  # every target had its first poll
            joined = time.time()
            start("p3")  # a rebalance: p3 takes about a third, target by target
            await asyncio.sleep(2 * INTERVAL)
            shares = {
                n: _metric(
                    httpx.get(f"http://127.0.0.1:{status[n]}/metrics").text, "netd_snmp_targets"
                )
                for n in procs
            }
            procs["p2"].proc.send_signal(signal.SIGKILL)
            procs["p2"].proc.wait(10)
            killed = time.time()
            await asyncio.sleep(2.5 * INTERVAL)
            until = (await pool.fetchval("SELECT extract(epoch FROM now())::float8")) - INTERVAL
            got = await polls()
            owners = await pool.fetch("SELECT target, owner FROM snmp_leases")
            after = {
                n: _metric(
                    httpx.get(f"http://127.0.0.1:{status[n]}/metrics").text, "netd_snmp_targets"
                )
                for n in ("p1", "p3")
            }
        finally:
            for p in procs.values():
                p.stop()
            agent.stop()
            await pool.close()
    gaps, doubles = [], []
    for name, times in got.items():
        window = [t for t in times if since <= t <= until]
        for a, b in itertools.pairwise(window):
            gaps.append((b - a, name))
            if b - a < INTERVAL / 2:
                doubles.append((name, a, b))
        assert window and until - window[-1] <= 2 * INTERVAL + 1, (
            name,
            until - window[-1],
            [o["owner"] for o in owners if o["target"] == name],
            [t - since for t in times],
            {n: p.output()[-3000:] for n, p in procs.items()},
        )
    longest = max(gaps)
    per_second = Counter(int(t) for times in got.values() for t in times if since <= t <= until)
    print(
        f"\nshares before the kill {shares}, after {after}; polls {len(gaps)}; "
        f"longest gap {longest[0]:.1f} s ({longest[1]}); most polls in a second "
        f"{max(per_second.values())} (mean {TARGETS / INTERVAL:.0f}); "
        f"p3 joined at +{joined - since:.0f} s, p2 killed at +{killed - since:.0f} s"
    )
    assert not doubles, doubles[:5]
    assert longest[0] <= 2 * INTERVAL + 1, longest
    assert max(per_second.values()) <= 2 * TARGETS / INTERVAL, per_second.most_common(3)
    assert sum(shares.values()) == TARGETS and min(shares.values()) >= TARGETS / 6, shares
    assert sum(after.values()) == TARGETS, after
    assert len(owners) == TARGETS and {o["owner"].split(":")[0] for o in owners} == {"p1", "p3"}
    for p in ("p1", "p3"):
        out = procs[p].output()
        assert "Traceback" not in out, out[-2000:]
