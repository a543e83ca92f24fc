"""`netd snmp get|walk` against our own snmpd, and `netd snmp target add|list|remove`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import StoreUrls, fresh_database
from tests.poller.snmpd import AUTH_PASS, COMMUNITY, PRIV_PASS, USER, Snmpd
from tests.support import netd_env


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    snmpd = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield snmpd
    snmpd.stop()


def netd(env: dict[str, str], stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_get_and_walk(agent: Snmpd, tmp_path: Path) -> None:
    env = netd_env({"NETD_STATE_DIR": str(tmp_path)})
    where = ["--address", "127.0.0.1", "--port", str(agent.port)]
    got = netd(env, COMMUNITY + "\n", "snmp", "get", *where, "--secret-stdin", "1.3.6.1.2.1.1.5.0")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"oid": "1.3.6.1.2.1.1.5.0", "value": "netd-test-agent"}
    v3 = netd(
        env,
        f"{AUTH_PASS} {PRIV_PASS}\n",
        "snmp",
        "walk",
        *where,
        "--version",
        "3",
        "--user",
        USER,
        "--auth",
        "sha",
        "--priv",
        "aes",
        "--secret-stdin",
        "1.3.6.1.2.1.1",
    )
    assert v3.returncode == 0, v3.stderr
    assert len(v3.stdout.splitlines()) >= 6
    # An empty subtree: exit 1, and a line that says so (it printed nothing).
    empty = netd(
        env, COMMUNITY + "\n", "snmp", "walk", *where, "--secret-stdin", "1.3.6.1.2.1.1.99"
    )
    assert empty.returncode == 1 and empty.stdout == ""
    assert "no value under 1.3.6.1.2.1.1.99" in empty.stderr
    refused = netd(
        env, COMMUNITY + "\n", "snmp", "get", *where, "--secret-stdin", "--context", "x", "1.3"
    )
    assert refused.returncode == 2 and "a context name is SNMPv3 only" in refused.stderr
    silent = netd(
        env,
        COMMUNITY + "\n",
        "snmp",
        "get",
        "--address",
        "127.0.0.1",
        "--port",
        "9",
        "--secret-stdin",
        "--timeout",
        "0.3",
        "1.3.6.1.2.1.1.5.0",
    )
    assert silent.returncode == 1 and "Traceback" not in silent.stderr


async def test_targets(store_urls: StoreUrls, agent: Snmpd, tmp_path: Path) -> None:
    async with fresh_database(store_urls, "s_", migrated=True) as dsn:
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
                "NETD_STATE_DIR": str(tmp_path),
            }
        )
        add = netd(
            env,
            COMMUNITY + "\n",
            "snmp",
            "target",
            "add",
            "olt-1",
            "--address",
            "127.0.0.1",
            "--port",
            str(agent.port),
            "--secret-stdin",
            "--profile",
            "if-mib",
            "--tag",
            "olt",
        )
        assert add.returncode == 0, add.stderr
        listed = [
            json.loads(x) for x in netd(env, "", "snmp", "target", "list").stdout.splitlines()
        ]
        assert [(t["name"], t["profiles"], t["tags"]) for t in listed] == [
            ("olt-1", ["if-mib"], ["olt"])
        ]
        assert COMMUNITY not in json.dumps(listed)
        assert netd(env, "", "snmp", "target", "remove", "olt-1").returncode == 0
        assert netd(env, "", "snmp", "target", "remove", "olt-1").returncode == 1
        nosecret = netd(env, "", "snmp", "target", "add", "x", "--address", "127.0.0.1")
        assert nosecret.returncode == 2 and "community" in nosecret.stderr
        # SNMPv3 trap users: passphrases from stdin, sealed, never listed.
        user = netd(
            env,
            "trap-auth-pass trap-priv-pass\n",
            "snmp",
            "trap-user",
            "add",
            "noc",
            "--auth",
            "sha256",
            "--priv",
            "aes",
        )
        assert user.returncode == 0, user.stderr
        short = netd(env, "short\n", "snmp", "trap-user", "add", "x", "--auth", "sha")
        assert short.returncode == 2 and "8 characters" in short.stderr
        users = netd(env, "", "snmp", "trap-user", "list").stdout
        assert [json.loads(x) for x in users.splitlines()] == [
            {"user": "noc", "auth": "sha256", "priv": "aes"}
        ]
        pool = await asyncpg.connect(dsn)
        try:
            sealed = await pool.fetchval("SELECT credentials_enc FROM snmp_trap_users")
        finally:
            await pool.close()
        assert b"trap-auth-pass" not in sealed and b"trap-priv-pass" not in sealed
        assert netd(env, "", "snmp", "trap-user", "remove", "noc").returncode == 0
        assert netd(env, "", "snmp", "trap-user", "list").stdout == ""
