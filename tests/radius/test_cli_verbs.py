"""The operator verbs of issue 19 against a real ``netd radius``, checked with FreeRADIUS's
own clients (radtest, radclient): ``nas set`` rotating a secret and changing the vendor,
``session show|clear`` by Acct-Session-Id (radzap's job), ``pool remove``."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.store import accounting, pools
from daemons.store import radius as store
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.cli.runner import Result, one_line_error, run
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.test_interop_peers import run as run_tool
from tests.radius.test_interop_peers import tool


def cli(radius: RadiusServer, *argv: str, stdin: str = "") -> Result:
    env = {
        "NETD_DATABASE_URL": radius.database,
        "NETD_REDIS_URL": radius.redis_url,
        "NETD_REDIS_KEY_PREFIX": radius.prefix,
        "NETD_SECRETS_KEY": radius.key.hex(),
        "NETD_LOG_LEVEL": "warning",
    }
    return run(env, *argv, stdin=stdin)


def radtest(radius: RadiusServer, user: str, password: str, secret: str) -> str:
    done = run_tool(
        [
            tool("radtest", "freeradius-utils"),
            user,
            password,
            f"127.0.0.1:{radius.port}",
            "0",
            secret,
            "0",
            "127.0.0.1",
        ],
        timeout=60,
    )
    return done.stdout


def accounting_request(radius: RadiusServer, attrs: str) -> str:
    done = run_tool(
        [
            tool("radclient", "freeradius-utils"),
            "-x",
            "-r",
            "3",
            "-t",
            "2",
            f"127.0.0.1:{radius.acct_port}",
            "acct",
            SECRET.decode(),
        ],
        attrs,
    )
    assert "Accounting-Response" in done.stdout, done.stdout + done.stderr
    return done.stdout


def sql(radius: RadiusServer, method: str, query: str, *args: object) -> Any:
    """A query on the daemon's database, from this (synchronous) test."""

    async def go() -> Any:
        conn = await asyncpg.connect(radius.database)
        try:
            return await getattr(conn, method)(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def sync(verb: Callable[..., Awaitable[Any]], radius: RadiusServer, *args: object) -> Any:
    """A store verb on a pool of its own."""

    async def go() -> Any:
        pool = await create_pool(DatabaseConfig(), radius.database, "test")
        try:
            return await verb(pool, *args)
        finally:
            await pool.close()

    return asyncio.run(go())


def redis(radius: RadiusServer, call: Callable[[Cache], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        cache = await connect(RedisConfig(key_prefix=radius.prefix), radius.redis_url)
        try:
            return await call(cache)
        finally:
            await cache.close()

    return asyncio.run(go())


def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("not in time")


def test_nas_set_rotates_the_secret_and_vendor(radius: RadiusServer) -> None:
    assert "Access-Accept" in radtest(radius, "alice", "pw1", SECRET.decode())
    rotated = cli(
        radius,
        "nas",
        "set",
        "lo",
        "--secret-stdin",
        "--vendor",
        "cisco",
        "--coa-port",
        "1700",
        "--description",
        "rotated",
        stdin="n3w-s3cret\n",
    )
    assert rotated.status == 0, rotated
    assert rotated.out == "updated NAS lo (coa_port, description, secret, vendor)\n"
    # The daemons reload on NOTIFY: the new secret works, with Cisco's attributes...
    until(lambda: "Access-Accept" in radtest(radius, "alice", "pw1", "n3w-s3cret"))
    reply = radtest(radius, "alice", "pw1", "n3w-s3cret")
    assert "Cisco-AVPair" in reply and "Mikrotik" not in reply, reply
    # ...and the old one no longer does (a reply radtest cannot verify, or none).
    assert "Received Access-Accept" not in radtest(radius, "alice", "pw1", SECRET.decode())
    row = sync(store.get_nas, radius, "lo")
    assert row is not None and (row.vendor, row.coa_port, row.description) == (
        "cisco",
        1700,
        "rotated",
    )
    assert Sealer(radius.key).open(row.secret_enc, b"nas:lo") == b"n3w-s3cret"
    # Refused as the API refuses, nothing changed.
    for argv, says in (
        (["--vendor", "foo"], "vendor 'foo'"),
        (["--coa-port", "0"], "coa_port must be 1 to 65535"),
        (["--address", "not-a-net"], "network 'not-a-net'"),
        ([], "nothing to change"),
    ):
        bad = cli(radius, "nas", "set", "lo", *argv)
        assert one_line_error(bad) and bad.status == 2 and says in bad.err, (argv, bad)
    missing = cli(radius, "nas", "set", "nope", "--vendor", "cisco")
    assert one_line_error(missing) and missing.status == 1 and "no NAS named nope" in missing.err
    # Back, for the other tests of this module.
    back = cli(
        radius, "nas", "set", "lo", "--secret-stdin", "--vendor", "mikrotik", stdin="s3cret-lo\n"
    )
    assert back.status == 0, back
    until(lambda: "Access-Accept" in radtest(radius, "alice", "pw1", SECRET.decode()))
    audit = sql(
        radius,
        "fetch",
        "SELECT action, actor, status, result FROM audit_log WHERE target = 'lo' ORDER BY id",
    )
    assert [(a["action"], a["status"], a["result"]) for a in audit][:2] == [
        ("nas.update", 200, "ok"),
        ("nas.update", 422, "invalid"),
    ]
    assert all(a["actor"].startswith("cli:") for a in audit)


def test_session_clear_frees_the_login_and_the_address(radius: RadiusServer) -> None:
    """A session whose NAS never sent a Stop holds the subscriber's only login and an
    address of the pool. `netd session clear` (by the NAS's Acct-Session-Id) gives both
    back: radtest is accepted again."""
    made = cli(radius, "pool", "add", "fiber", "100.64.50.0/30")
    assert made.status == 0 and "2 addresses added" in made.out, made
    added = cli(
        radius,
        "subscriber",
        "add",
        "gina",
        "--password-stdin",
        "--plan",
        "fiber-100",
        stdin="pw-gina\n",
    )
    assert added.status == 0, added
    first = ""

    def accepted() -> bool:
        nonlocal first
        first = radtest(radius, "gina", "pw-gina", SECRET.decode())
        return "Framed-IP-Address = 100.64.50." in first

    until(accepted)  # the daemon has read the new pool
    address = re.search(r"Framed-IP-Address = (\S+)", first)
    assert address is not None
    ip = address.group(1)
    accounting_request(
        radius,
        f'Acct-Status-Type = Start, Acct-Session-Id = "gina-1", User-Name = "gina", '
        f"Framed-IP-Address = {ip}, NAS-IP-Address = 127.0.0.1, NAS-Port = 7\n",
    )
    until(lambda: "Access-Reject" in radtest(radius, "gina", "pw-gina", SECRET.decode()))
    # Shown by the NAS's Acct-Session-Id as well as by netd's id.
    shown = run_json(cli(radius, "session", "show", "gina-1", "--json"))
    assert (shown["username"], shown["acct_session_id"], shown["framed_ip"]) == (
        "gina",
        "gina-1",
        ip,
    )
    assert shown["stopped_at"] is None
    uid = shown["unique_id"]
    assert run_json(cli(radius, "session", "show", uid, "--json"))["unique_id"] == uid
    # The pool is in use by a plan: not removed.
    busy = cli(radius, "pool", "remove", "fiber")
    assert one_line_error(busy) and busy.status == 1 and "framed_pool of plan" in busy.err
    cleared = cli(radius, "session", "clear", "gina-1")
    assert cleared.status == 0 and f"cleared session {uid} of gina on lo" in cleared.out, cleared
    # The ledger has its Stop (Admin-Reset), the session is closed, Redis forgot it, the
    # address is free, and the clear is audited.
    stop = sql(
        radius,
        "fetchrow",
        "SELECT status_type, terminate_cause, idem_key, host(framed_ip) AS ip, attributes "
        "FROM accounting_events WHERE unique_id = $1 AND status_type = 2",
        uid,
    )
    assert stop is not None and (stop["terminate_cause"], stop["idem_key"], stop["ip"]) == (
        accounting.ADMIN_RESET,
        f"clear:{uid}",
        ip,
    )
    closed = sql(
        radius,
        "fetchrow",
        "SELECT stopped_at, close_reason FROM radius_sessions WHERE unique_id = $1",
        uid,
    )
    assert closed["stopped_at"] is not None and closed["close_reason"] == "cleared"
    assert redis(radius, lambda c: c.client.smembers(store.sessions_key(c, "gina"))) == set()
    assert redis(radius, lambda c: c.client.zscore(accounting.live_index_key(c), uid)) is None
    lease = sql(
        radius,
        "fetchval",
        "SELECT expires_at <= now() FROM ip_pool_addresses WHERE address = $1::inet",
        ip,
    )
    assert lease is True
    audit = sql(
        radius,
        "fetchrow",
        "SELECT actor, status, result FROM audit_log WHERE action = 'sessions.clear'",
    )
    assert audit is not None and audit["actor"].startswith("cli:") and audit["result"] == "ok"
    # The subscriber logs in again, and gets an address of the pool.
    again = radtest(radius, "gina", "pw-gina", SECRET.decode())
    assert "Access-Accept" in again and "Framed-IP-Address = 100.64.50." in again, again
    twice = cli(radius, "session", "clear", "gina-1")
    assert one_line_error(twice) and twice.status == 1 and "is closed (cleared)" in twice.err
    # The NAS's own Stop, arriving after all, is acknowledged and changes nothing closed.
    accounting_request(
        radius,
        f'Acct-Status-Type = Stop, Acct-Session-Id = "gina-1", User-Name = "gina", '
        f"Framed-IP-Address = {ip}, NAS-IP-Address = 127.0.0.1, NAS-Port = 7, "
        "Acct-Session-Time = 60, Acct-Terminate-Cause = User-Request\n",
    )
    after = sql(
        radius,
        "fetchrow",
        "SELECT close_reason, terminate_cause FROM radius_sessions WHERE unique_id = $1",
        uid,
    )
    assert (after["close_reason"], after["terminate_cause"]) == ("cleared", accounting.ADMIN_RESET)


def test_pool_remove(radius: RadiusServer) -> None:
    assert cli(radius, "pool", "add", "spare", "100.64.60.0/30", "--lease", "600").status == 0
    assert sync(pools.allocate, radius, "spare", "someone", "lo") is not None
    listed = cli(radius, "pool", "list", "--json").out
    assert '"name": "spare", "lease_time": 600, "size": 2, "leased": 1' in listed, listed
    held = cli(radius, "pool", "remove", "spare")
    assert one_line_error(held) and held.status == 1 and "1 addresses leased" in held.err
    gone = cli(radius, "pool", "remove", "spare", "--force")
    assert gone.status == 0 and gone.out == "removed pool spare (2 addresses, 1 were leased)\n"
    left = sql(radius, "fetchval", "SELECT count(*) FROM ip_pool_addresses WHERE pool = 'spare'")
    assert left == 0
    missing = cli(radius, "pool", "remove", "spare")
    assert one_line_error(missing) and missing.status == 1 and "no pool spare" in missing.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["pool", "add", "p6", "2001:db8::/120"], "is IPv6"),
        (["pool", "add", "big", "10.0.0.0/8"], "at most 262144"),
        (["pool", "add", "p0", "100.64.70.0/30", "--lease", "0"], "lease_time must be"),
        (["pool", "add", "bad name", "100.64.70.0/30"], "pool 'bad name'"),
    ],
)
def test_pool_add_is_checked(radius: RadiusServer, argv: list[str], says: str) -> None:
    bad = cli(radius, *argv)
    assert one_line_error(bad) and bad.status == 2 and says in bad.err, bad


def run_json(result: Result) -> dict[str, object]:
    assert result.status == 0, result
    value = json.loads(result.out)
    assert isinstance(value, dict)
    return value
