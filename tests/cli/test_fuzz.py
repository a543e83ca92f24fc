"""Every ``netd`` command, driven by Hypothesis with generated arguments and stdin, against
real stores holding a small world (a NAS, subscribers, a live session, a pool, an SNMP
target, a device, a token).

The commands are enumerated from the argparse tree (``daemons.cli.build_parser``), so a
new command is covered without touching this file; only the commands that run a daemon
are left out, by name. For each run: no traceback, exit status 0, 1 or 2, and a refused
command says why in exactly one line on stderr. Runs are in-process (``daemons.cli.main``
with the environment, stdin and stdout of a real run); ``test_real_entry_point`` runs
a few through ``python -m daemons.cli`` and the installed ``netd`` script, with arguments
that are not UTF-8, which only a real process can be given.

A failure names the falsifying command line; ``pytest --hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from daemons.cli import DAEMONS, build_parser
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.radius.credentials import credentials
from daemons.store import accounting, pools
from daemons.store import api as api_store
from daemons.store import radius as store
from daemons.store.cache import connect
from daemons.store.pg import create_pool
from tests.cli.runner import Result, run
from tests.conftest import StoreUrls, fresh_database
from tests.support import free_udp_port

# Commands that run daemons (until a signal) are not admin commands: left out, by name.
RUNS_A_DAEMON = {*DAEMONS, "up", "radius-worker"}
EXAMPLES = 12
# A command that waits on the network waits at most this (timeouts are set low below).
SLOW = 15.0


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


PARSER = build_parser()
COMMANDS = {path: p for path, p in _leaves(PARSER) if path[0] not in RUNS_A_DAEMON}

# Values for any argument: good ones (so that commands reach the stores and beyond) and
# bad ones of every kind an operator types or a script passes.
WORDS = [
    "bng1",
    "bng2",
    "alice",
    "bob",
    "nobody",
    "fiber",
    "fiber-100",
    "default",
    "mikrotik",
    "generic",
    "if-mib",
    "system",
    "t1",
    "d1",
    "lab",
    "s-alice-1",
    "a-s-alice-1",
    "ALPH00000001",
    "access-vlan",
    "cisco_ios",
    "netconf",
    "sha",
    "aes",
    "Session-Timeout=600",
    "Reply-Message=hi",
    "vlan=30",
    "nope",
    "no=such",
    "",
    " ",
    "a b",
    "-",
    "--",
    "x" * 300,
    "é",
    "\u202e",
    "line\nbreak",
    "\x1b[31m",
    "'",
    '"',
    "{}",
    "[1]",
    '{"names": ["Device.DeviceInfo.UpTime"]}',
    "*",
    "%s",
    "../..",
    "b\udce9",
]
ADDRESSES = [
    "127.0.0.1",
    "::1",
    "127.0.0.5",
    "192.0.2.1",
    "192.0.2.0/28",
    "100.64.0.7",
    "100.64.1.0/29",
    "2001:db8::5",
    "2001:db8::/120",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "999.1.1.1",
    "zz:zz",
    "aa:bb:cc:dd:ee:ff",
    "AA-BB-CC-00-11-22",
    "127.0.0.1:9191",
    "1.3.6.1.2.1.1.5.0",
    "1.3.6",
    ".1",
]
NUMBERS = [
    "0",
    "1",
    "2",
    "5",
    "9",
    "10",
    "22",
    "64",
    "161",
    "3799",
    "4094",
    "4095",
    "65535",
    "65536",
    "-1",
    "99999999999999999999",
    "0.05",
    "0.1",
    "inf",
    "nan",
    "-inf",
    "1e9",
    "0x10",
    "1_000",
    "٣",
    "²",
]
STDIN = [
    "",
    "\n",
    "secret\n",
    "secret-pass secret-pass\n",
    "44EBBA8D5312B8D611474411F56989AE\n",
    "zz\n",
    "x" * 300 + "\n",
    "pw\r\nmore\n",
    "\x00\n",
]


def _value(action: argparse.Action, paths: list[str]) -> st.SearchStrategy[str]:
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        good = st.sampled_from([str(c) for c in action.choices])
        return st.one_of(good, good, st.sampled_from(["nope", ""]))
    pool = WORDS + ADDRESSES + NUMBERS
    if action.type is not None and action.type.__name__ in ("int", "float"):
        pool = [*NUMBERS, "x", ""]
    elif action.type is not None and action.type.__name__ == "Path":
        pool = paths
    # No NUL: a real argv cannot hold one (C strings); bytes that are not UTF-8 can be there,
    # and Python gives them as lone surrogates (WORDS has one).
    return st.one_of(
        st.sampled_from(pool), st.text(st.characters(exclude_characters="\x00"), max_size=12)
    )


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser, paths: list[str]):  # type: ignore[no-untyped-def]
    """A strategy of argument lists for one command: each positional given (usually),
    each option present or not, with values from the pools above."""

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        argv = list(path)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.option_strings:  # positional
                if action.nargs == "?" and draw(st.booleans()):
                    continue
                count = draw(st.integers(1, 3)) if action.nargs in ("+", "*") else 1
                argv += [draw(_value(action, paths)) for _ in range(count)]
                continue
            # A required option is left out now and then, any other one half the time.
            if draw(st.integers(0, 9) if action.required else st.integers(0, 1)) == 0:
                continue
            flag = draw(st.sampled_from(action.option_strings))
            if action.nargs == 0:
                argv.append(flag)
            else:
                argv += [flag, draw(_value(action, paths))]
        if draw(st.integers(0, 40)) == 0:
            argv.append("--help")
        if draw(st.integers(0, 30)) == 0:
            argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["-x", "--zzz"])))
        return argv

    return build()


async def _seed(env: dict[str, str], coa_port: int) -> None:
    """The world the commands act on."""
    pool = await create_pool(DatabaseConfig(), env["NETD_DATABASE_URL"], "test")
    cache = await connect(
        RedisConfig(key_prefix=env["NETD_REDIS_KEY_PREFIX"]), env["NETD_REDIS_URL"]
    )
    sealer = Sealer(bytes.fromhex(env["NETD_SECRETS_KEY"]))
    try:
        await store.add_nas(
            pool,
            store.NasRow(
                "bng1", "127.0.0.1/32", sealer.seal(b"s", b"nas:bng1"), "mikrotik", True, coa_port
            ),
        )
        for user in ("alice", "bob"):
            row = credentials(store.SubscriberRow(user, plan="fiber-100"), "pw", "none", sealer)
            await store.upsert_subscriber(pool, cache, row)
        await pools.add_pool(pool, "fiber", ["100.64.0.0/29"])
        await api_store.create_token(pool, "noc", "viewer", "test")
        now = time.time()
        rec = AcctRecord(
            nas="bng1",
            status=AcctStatus.START,
            acct_session_id="a-s-alice-1",
            unique_id="s-alice-1",
            idem_key="k-s-alice-1",
            event_time=now,
            username="alice",
            framed_ip="100.64.0.2",
            attributes={"NAS-IP-Address": "127.0.0.1"},
        )
        await accounting.ensure_partitions(pool, now)
        await accounting.append_accounting(pool, [rec])
        await accounting.update_live_sessions(cache, [rec], [])
    finally:
        await pool.close()
        await cache.close()


async def _seed_alice(env: dict[str, str]) -> None:
    pool = await create_pool(DatabaseConfig(), env["NETD_DATABASE_URL"], "test")
    cache = await connect(
        RedisConfig(key_prefix=env["NETD_REDIS_KEY_PREFIX"]), env["NETD_REDIS_URL"]
    )
    try:
        await store.upsert_subscriber(pool, cache, store.SubscriberRow("alice", plan="fiber-100"))
    finally:
        await pool.close()
        await cache.close()


@pytest.fixture(scope="module")
async def world(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], list[str]]:
    tmp = tmp_path_factory.mktemp("cli-fuzz")
    async with fresh_database(store_urls, "c_", migrated=True) as dsn:
        env = {
            "NETD_DATABASE_URL": dsn,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": "c" + os.urandom(5).hex(),
            "NETD_SECRETS_KEY": os.urandom(32).hex(),
            "NETD_STATE_DIR": str(tmp / "state"),
            "NETD_LOG_LEVEL": "warning",
            "NETD_API_GRPC_PORT": "0",
            # Whatever the NAS or device, a command waits little: loopback, closed ports.
            "NETD_API_COA_TIMEOUT": "0.05",
            "NETD_API_COA_RETRIES": "1",
            "NETD_DEVICES_DEVICE_TIMEOUT": "1",
        }
        await _seed(env, free_udp_port())
        (tmp / "fw.bin").write_bytes(b"\x00firmware" * 100)
        (tmp / "secret.txt").write_text("file-secret\n")
        (tmp / "empty.txt").write_text("")
        paths = [str(tmp / n) for n in ("fw.bin", "secret.txt", "empty.txt", "nope")]
        yield env, [*paths, str(tmp), "/dev/null", ""]


def _check(argv: list[str], result: Result, took: float) -> None:
    line = "netd " + " ".join(repr(a) if " " in a or not a else a for a in argv)
    assert "Traceback" not in result.err + result.out, f"{line}\n{result.err}"
    assert result.status in (0, 1, 2), f"{line}: exit {result.status}\n{result.err}"
    if result.status != 0:
        assert result.err.count("\n") == 1 and result.err.endswith("\n"), (
            f"{line}: exit {result.status} without exactly one line on stderr: {result.err!r}"
        )
        assert result.err.startswith(("netd: ", "netd ")), f"{line}: {result.err!r}"
    assert took < SLOW, f"{line}: took {took:.1f} s"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_command(
    command: tuple[str, ...],
    world: tuple[dict[str, str], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, paths = world
    parser = COMMANDS[command]
    monkeypatch.chdir(tmp_path)  # what a command writes to a relative path lands here

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # a failure is shown as generated
        suppress_health_check=list(HealthCheck),
    )
    @given(
        argv=_argv(command, parser, paths),
        stdin=st.sampled_from(STDIN),
        json=st.booleans(),
        tty=st.booleans(),
        via_api=st.integers(0, 4).map(lambda n: n == 0),
    )
    def check(argv: list[str], stdin: str, json: bool, tty: bool, via_api: bool) -> None:
        args = ["--json", *argv] if json else argv
        if via_api:  # the client's checks, then an API that is not there (loopback, closed)
            args = ["--api", "http://127.0.0.1:1", "--token", "x", *args]
        started = time.monotonic()
        try:
            result = run(env, *args, stdin=stdin, tty=tty)
        except BaseException as exc:  # what an operator would see as a traceback
            pytest.fail(f"netd {' '.join(map(repr, args))}: raised {exc!r}")
        _check(args, result, time.monotonic() - started)

    check()


def test_every_command_is_covered() -> None:
    """The tree has the commands this file knows to leave out, and nothing else is left out."""
    names = {path[0] for path, _p in _leaves(PARSER)}
    assert names >= RUNS_A_DAEMON
    assert len(COMMANDS) >= 50, sorted(COMMANDS)
    assert {("session", "clear"), ("nas", "set"), ("pool", "remove")} <= set(COMMANDS)


async def test_real_entry_point(world: tuple[dict[str, str], list[str]], tmp_path: Path) -> None:
    """The same rules through a real process: ``python -m daemons.cli`` and the ``netd``
    script pip installed, including arguments that are not UTF-8."""
    env, _paths = world
    await _seed_alice(env)  # the generated commands may have removed her
    full = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")} | env
    module = [sys.executable.encode(), b"-m", b"daemons.cli"]
    script = [str(Path(sys.executable).with_name("netd")).encode()]
    # Each run starts an interpreter and imports netd (seconds on a loaded machine): few.
    cases: list[tuple[list[bytes], int, bytes]] = [
        ([*module, b"subscriber", b"set", b"alice", b"--plan", b"nope"], 2, b"no plan 'nope'"),
        ([*module, b"session", b"list", b"--ip", b"999.1.1.1"], 2, b"not an IP address"),
        ([*script, b"nas", b"show"], 2, b"invalid choice"),
        ([*script, b"subscriber", b"show", b"a\xff\xfe"], 2, b"'a\\xff\\xfe' is not valid UTF-8"),
        ([*script, b"session", b"show", b"a-s-alice-1"], 0, b""),
    ]
    for argv, status, says in cases:
        done = subprocess.run(
            argv, input=b"", capture_output=True, env=full, cwd=tmp_path, timeout=60, check=False
        )
        shown = b" ".join(argv)
        assert done.returncode == status, (shown, done.stderr)
        assert b"Traceback" not in done.stderr, (shown, done.stderr)
        if status:
            assert done.stderr.count(b"\n") == 1 and says in done.stderr, (shown, done.stderr)
        else:
            assert b'"acct_session_id": "a-s-alice-1"' in done.stdout, done.stdout
