"""`netd nas` and `netd subscriber` as an operator runs them (real PostgreSQL and Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.conftest import StoreUrls
from tests.support import netd_env


def netd(
    env: dict[str, str], cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_nas_and_subscriber_commands(
    database: str, store_urls: StoreUrls, key_prefix: str, tmp_path: Path
) -> None:
    env = netd_env(
        {
            "NETD_DATABASE_URL": database,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": key_prefix,
            "NETD_SECRETS_KEY": "ab" * 32,
            "NETD_LOG_LEVEL": "warning",
        }
    )
    ok = netd(
        env,
        tmp_path,
        "nas",
        "add",
        "bng1",
        "--address",
        "192.0.2.0/28",
        "--vendor",
        "mikrotik",
        "--secret-stdin",
        stdin="very-secret\n",
    )
    assert ok.returncode == 0, ok.stderr
    dup = netd(
        env,
        tmp_path,
        "nas",
        "add",
        "bng1",
        "--address",
        "192.0.2.99",
        "--secret-stdin",
        stdin="x\n",
    )
    assert dup.returncode == 1 and "exists" in dup.stderr
    listed = [
        json.loads(line) for line in netd(env, tmp_path, "nas", "list").stdout.split("\n") if line
    ]
    assert listed == [
        {
            "name": "bng1",
            "network": "192.0.2.0/28",
            "vendor": "mikrotik",
            "require_message_authenticator": True,
            "coa_port": 3799,
            "description": "",
        }
    ]
    assert (
        netd(
            env,
            tmp_path,
            "subscriber",
            "add",
            "ann",
            "--password-stdin",
            "--plan",
            "fiber-100",
            "--mac",
            "AA-BB-CC-00-11-22",
            stdin="pw\n",
        ).returncode
        == 0
    )
    assert (
        netd(
            env,
            tmp_path,
            "subscriber",
            "add",
            "ben",
            "--password-stdin",
            "--hash",
            "bcrypt",
            stdin="pw\n",
        ).returncode
        == 0
    )
    assert (
        netd(
            env,
            tmp_path,
            "subscriber",
            "add",
            "cat",
            "--nt-hash-stdin",
            stdin="44EBBA8D5312B8D611474411F56989AE\n",
        ).returncode
        == 0
    )
    assert (
        netd(
            env, tmp_path, "subscriber", "set", "ann", "--state", "suspended", "--ip", "100.64.1.1"
        ).returncode
        == 0
    )
    shown = json.loads(netd(env, tmp_path, "subscriber", "show", "ann").stdout)
    assert shown == {
        "username": "ann",
        "plan": "fiber-100",
        "state": "suspended",
        "mac": "aa:bb:cc:00:11:22",
        "framed_ip": "100.64.1.1",
        "credentials": ["cleartext", "nt-hash"],
    }
    rows = [
        json.loads(x) for x in netd(env, tmp_path, "subscriber", "list").stdout.split("\n") if x
    ]
    assert [(r["username"], r["credentials"]) for r in rows] == [
        ("ann", ["cleartext", "nt-hash"]),
        ("ben", ["hash"]),
        ("cat", ["nt-hash"]),
    ]
    bad = netd(env, tmp_path, "subscriber", "set", "ann", "--ip", "not-an-ip")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    conn = await asyncpg.connect(database)
    try:
        stored = await conn.fetchrow("SELECT secret_enc FROM nas_clients")
        pw = await conn.fetchrow(
            "SELECT password_enc, password_hash FROM subscribers WHERE username = 'ben'"
        )
    finally:
        await conn.close()
    assert b"very-secret" not in stored["secret_enc"]  # sealed at rest
    assert pw["password_enc"] is None and pw["password_hash"].startswith("$2b$")
    assert netd(env, tmp_path, "subscriber", "remove", "ann").returncode == 0
    assert netd(env, tmp_path, "subscriber", "show", "ann").returncode == 1
    assert netd(env, tmp_path, "nas", "remove", "bng1").returncode == 0
