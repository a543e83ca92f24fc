"""`netd nas` and `netd subscriber` as an operator runs them (real PostgreSQL and Redis)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from tests.conftest import StoreUrls
from tests.support import netd_env
from tests.support import run_netd as netd


async def test_nas_and_subscriber_commands(
    migrated: str, store_urls: StoreUrls, key_prefix: str, tmp_path: Path
) -> None:
    database = migrated
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
        "--tls-identity",
        "BNG1.Example.Net",
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
            "tls_identity": "bng1.example.net",  # RadSec: its certificate's name, lowercase
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
        "framed_ipv6_address": None,  # issue 21: the IPv6 fields, unset
        "framed_ipv6_prefix": None,
        "delegated_ipv6_prefix": None,
        "framed_ipv6_pool": None,
        "delegated_ipv6_pool": None,
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


async def test_admin_commands_never_create_a_store(
    database: str, store_urls: StoreUrls, key_prefix: str, tmp_path: Path
) -> None:
    """Run from another directory, or with the wrong config, an admin command used to start
    a new empty database (and secrets key) and answer from it: an empty list, exit 0. It
    refuses now, with one line naming what it looked at."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    embedded = netd_env({"NETD_STATE_DIR": str(state), "NETD_REDIS_URL": store_urls.redis})
    for args in (
        ["nas", "list"],
        ["subscriber", "list"],
        ["token", "list"],
        ["snmp", "target", "list"],
    ):
        proc = netd(embedded, elsewhere, *args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stdout == ""
        assert f"no database in state directory {state}" in proc.stderr
    assert not (state / "postgres").exists() and not (state / "secrets.key").exists()
    # an external database with no netd schema is refused too, not given one
    external = netd_env(
        {
            "NETD_DATABASE_URL": database,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": key_prefix,
            "NETD_STATE_DIR": str(state),
        }
    )
    proc = netd(external, elsewhere, "nas", "list")
    assert proc.returncode == 1 and "no netd schema" in proc.stderr, proc.stderr
    conn = await asyncpg.connect(database)
    try:
        assert not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    finally:
        await conn.close()
    # `netd migrate` creates the schema and the secrets key; then the command works
    migrated = netd(external, elsewhere, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert (state / "secrets.key").exists()
    proc = netd(external, elsewhere, "nas", "list")
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
