"""A real `netd poller` against our own snmpd: targets from PostgreSQL, samples in Redis,
PostgreSQL and /snmp/metrics, an unreachable target reported once as an event, agents
that answer badly (garbage, tooBig, noSuchName) each with a clear status while the poller
runs on, and traps and informs in v1, v2c and v3."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
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
from tests.poller.rogue import RogueAgent
from tests.poller.snmpd import COMMUNITY, Snmpd
from tests.support import NetdProcess, free_port, free_udp_port, netd_env

REPO = Path(__file__).resolve().parents[2]
V3_USER = Credentials(
    "3",
    user="noc-traps",
    auth="sha",
    auth_key="trap-auth-secret",
    priv="aes",
    priv_key="trap-priv-secret",
)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    snmpd = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield snmpd
    snmpd.stop()


async def _until(check: object, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_poller_end_to_end(store_urls: StoreUrls, agent: Snmpd, tmp_path: Path) -> None:
    key = os.urandom(32)
    sealer = Sealer(key)
    prefix = "p" + os.urandom(5).hex()
    async with fresh_database(store_urls, "p_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        v2c = Credentials("2c", community=COMMUNITY)
        await store.put_target(
            pool,
            sealer,
            store.Target("agent", "127.0.0.1", agent.port, v2c, ("system", "if-mib"), 10),
        )
        await store.put_target(
            pool, sealer, store.Target("silent", "127.0.0.1", 9, v2c, ("system",), 10)
        )
        rogues = {}
        for mode in ("garbage", "toobig", "strict-v1"):
            rogue, port = await RogueAgent.start(mode)
            rogues[mode] = rogue
            await store.put_target(
                pool,
                sealer,
                store.Target(mode, "127.0.0.1", port, Credentials("1", "x"), ("system",), 10),
            )
        await store.put_target(
            pool,
            sealer,
            store.Target(
                "wrongcomm", "127.0.0.1", agent.port, Credentials("2c", "nope"), ("system",), 10
            ),
        )
        await store.put_trap_user(pool, sealer, V3_USER)
        sealed = await pool.fetchval("SELECT credentials_enc FROM snmp_targets LIMIT 1")
        assert COMMUNITY.encode() not in sealed  # encrypted at rest
        exporter, status, trap_port = free_port(), free_port(), free_udp_port()
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_POLLER_EXPORTER_PORT": str(exporter),
                "NETD_POLLER_STATUS_PORT": str(status),
                "NETD_POLLER_TRAP_PORT": str(trap_port),
                "NETD_POLLER_TRAP_COMMUNITIES": "trapcomm",
                "NETD_POLLER_TIMEOUT": "0.3",
                "NETD_POLLER_RETRIES": "0",
                "NETD_POLICIES_DIR": str(resources.path("policies")),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
            }
        )
        proc = NetdProcess(["poller"], env, tmp_path)
        try:
            proc.wait_http(f"http://127.0.0.1:{status}/health/ready")

            async def polled() -> bool:
                return bool(await cache.client.exists(cache.key("snmp:agent", "latest")))

            await _until(polled, 15)
            _ts, latest = store.read_latest(
                await cache.client.get(cache.key("snmp:agent", "latest"))
            )
            metrics = {m for m, _labels, _v, _k in latest}
            assert {"sysUpTime", "ifOperStatus", "ifHCInOctets"} <= metrics
            text = httpx.get(f"http://127.0.0.1:{exporter}/snmp/metrics").text
            assert "# TYPE ifHCInOctets counter" in text and 'ifName="lo"' in text
            rows = await pool.fetchval(
                "SELECT count(*) FROM snmp_samples WHERE target = 'agent' AND metric = 'sysUpTime'"
            )
            assert rows >= 1

            async def reported() -> bool:
                return bool(
                    await pool.fetchval(
                        "SELECT count(*) FROM events "
                        "WHERE kind = 'snmp.unreachable' AND subject = 'silent'"
                    )
                )

            await _until(reported, 15)

            async def statuses() -> dict[str, dict[str, object]]:
                out = {}
                for name in ("agent", "silent", "garbage", "toobig", "strict-v1", "wrongcomm"):
                    raw = await cache.client.get(cache.key("snmp:" + name, "status"))
                    if raw:
                        out[name] = unpack(raw)
                return out

            async def all_polled() -> bool:
                return len(await statuses()) == 6

            await _until(all_polled, 15)
            got = await statuses()
            assert {n: (s["state"], s["reason"]) for n, s in got.items()} == {
                "agent": ("up", "ok"),
                "silent": ("down", "refused"),  # nothing listens on port 9
                "garbage": ("down", "malformed"),
                "toobig": ("down", "tooBig"),
                "strict-v1": ("up", "ok"),  # noSuchName for sysLocation: asked one by one
                "wrongcomm": ("down", "timeout"),
            }
            assert "wrong community" in str(got["wrongcomm"]["message"])
            assert got["agent"]["varbinds"] and got["agent"]["duration"] > 0
            errors = await pool.fetch(
                "SELECT subject, data FROM events WHERE kind = 'snmp.error' ORDER BY subject"
            )
            assert [(r["subject"], json.loads(r["data"])["reason"]) for r in errors] == [
                ("garbage", "malformed"),
                ("toobig", "tooBig"),
            ]
            # Traps and an inform from net-snmp's own tools become events.
            send = {
                "PATH": os.environ["PATH"],
                "MIBS": "",
                "HOME": str(tmp_path),
                "SNMP_PERSISTENT_DIR": str(tmp_path / "snmp"),
            }
            to = f"127.0.0.1:{trap_port}"
            subprocess.run(
                [
                    "snmptrap",
                    "-v2c",
                    "-c",
                    "trapcomm",
                    to,
                    "",
                    "1.3.6.1.6.3.1.1.5.3",
                    "1.3.6.1.2.1.2.2.1.1.5",
                    "i",
                    "5",
                ],
                env=send,
                check=True,
                timeout=10,
            )
            subprocess.run(
                ["snmptrap", "-v2c", "-c", "wrong", to, "", "1.3.6.1.6.3.1.1.5.4"],
                env=send,
                check=True,
                timeout=10,
            )
            v3 = [
                "-v3",
                "-l",
                "authPriv",
                "-u",
                V3_USER.user,
                "-a",
                "SHA",
                "-A",
                V3_USER.auth_key,
                "-x",
                "AES",
                "-X",
                V3_USER.priv_key,
            ]
            subprocess.run(
                ["snmptrap", *v3, "-e", "0x80001f8880aabbccdd", to, "", "1.3.6.1.6.3.1.1.5.5"],
                env=send,
                check=True,
                timeout=10,
            )
            subprocess.run(
                ["snmptrap", "-v1", "-c", "trapcomm", to, "1.3.6.1.4.1.5875", "", "6", "17", ""],
                env=send,
                check=True,
                timeout=10,
            )
            v3_inform = subprocess.run(
                ["snmpinform", *v3, "-t", "3", "-r", "0", to, "", "1.3.6.1.6.3.1.1.5.2"],
                env=send,
                timeout=10,
                check=False,
            )
            assert v3_inform.returncode == 0, v3_inform.stdout
            informed = subprocess.run(
                [
                    "snmpinform",
                    "-v2c",
                    "-c",
                    "trapcomm",
                    "-t",
                    "3",
                    "-r",
                    "0",
                    to,
                    "",
                    "1.3.6.1.6.3.1.1.5.1",
                ],
                env=send,
                timeout=10,
                check=False,
            )
            assert informed.returncode == 0  # the inform was acknowledged

            async def trapped() -> bool:
                n = await pool.fetchval("SELECT count(*) FROM events WHERE kind = 'snmp.trap'")
                return bool(n >= 5)

            await _until(trapped, 10)
            rows = await pool.fetch("SELECT data FROM events WHERE kind = 'snmp.trap' ORDER BY id")
            names = [
                (json.loads(r["data"])["trap"], json.loads(r["data"])["version"]) for r in rows
            ]
            assert names == [  # the wrong community was dropped
                ("linkDown", "2c"),
                ("authenticationFailure", "3"),
                ("1.3.6.1.4.1.5875.0.17", "1"),  # a vendor trap, by OID
                ("warmStart", "3"),
                ("coldStart", "2c"),
            ]
            assert json.loads(rows[0]["data"])["varbinds"] == {"1.3.6.1.2.1.2.2.1.1.5": 5}
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
                junk.sendto(b"\x30\x03\x02\x01\x05garbage", ("127.0.0.1", trap_port))
            await asyncio.sleep(0.3)
            own = httpx.get(f"http://127.0.0.1:{status}/metrics").text
            assert 'netd_snmp_traps_total{result="community"} 1.0' in own
            assert 'netd_snmp_traps_total{result="malformed"} 1.0' in own
            assert 'netd_snmp_polls_total{result="refused",target="silent"}' in own
            assert 'netd_snmp_poll_lateness_seconds{target="agent"}' in own
        finally:
            proc.stop()
            await pool.close()
            await cache.close()
            for rogue in rogues.values():
                rogue.close()
        out = proc.output()
        assert "Traceback" not in out and COMMUNITY not in out
        assert V3_USER.auth_key not in out and V3_USER.priv_key not in out
