"""The ``netd`` command."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import asyncpg
import uvloop
from redis.exceptions import RedisError

from daemons import __version__, backup, checkconfig, files
from daemons.acs import admin as acs_admin
from daemons.api import admin as api_admin
from daemons.api import client as api_client
from daemons.core import logging as netd_logging
from daemons.core import output, rotate
from daemons.core.config import ConfigError, Loaded, load
from daemons.core.lifecycle import (
    Daemon,
    Runner,
    StartupError,
    close_stores,
    make_sealer,
    open_stores,
)
from daemons.core.output import fail, one_line
from daemons.core.status import status_listener_for
from daemons.devices import admin as devices_admin
from daemons.poller import admin as poller_admin
from daemons.radius import admin as radius_admin
from daemons.store import migrate
from daemons.voltha import admin as voltha_admin

DAEMONS = ("radius", "acs", "voltha", "poller", "devices", "api")
# The admin commands: they act on the stores (or, some, through the API with --api).
ADMIN = (
    "nas",
    "subscriber",
    "session",
    "pool",
    "auth-log",
    "token",
    "cpe",
    "snmp",
    "olt",
    "onu",
    "onu-firmware",
    "device",
    "config-job",
    "realm",
)


# Imported only by the commands that run them: an admin command need not load every daemon.
_SERVICES = {
    "api": "daemons.api.service:ApiService",
    "radius": "daemons.radius.service:RadiusService",
    "acs": "daemons.acs.service:AcsService",
    "voltha": "daemons.voltha.service:VolthaService",
    "poller": "daemons.poller.service:PollerService",
    "devices": "daemons.devices.service:DevicesService",
}


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _daemon_types(names: Sequence[str]) -> list[type[Daemon]]:
    types: list[type[Daemon]] = [_load(_SERVICES[n]) for n in names]
    if "api" not in names:  # no API in this process: serve health/metrics on a status port
        types.insert(0, status_listener_for(names[0]))
    return types


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line on stderr (exit 2), as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="netd",
        description="dotmac-netd: RADIUS, TR-069 ACS, VOLTHA, SNMP and device config daemons.",
        epilog="Config is read from --config, $NETD_CONFIG, ~/.config/netd/netd.toml (not for "
        "root) or /etc/netd/netd.toml; NETD_<SECTION>_<KEY> environment variables override "
        "it. With no database.url or redis.url, embedded PostgreSQL and Redis start under "
        "state_dir (/var/lib/netd for root, else ~/.local/state/netd). `netd check-config` "
        "says which file, state directory and stores are in use.",
    )
    parser.add_argument("--config", metavar="PATH", help="the TOML config file")
    parser.add_argument("--version", action="version", version=f"netd {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="commands other than the daemons log only warnings; -v adds info, -vv debug",
    )
    api_client.add_arguments(parser)
    # Every sub-command's parser is a Parser too (argparse makes them of the parent's class).
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    up = sub.add_parser("up", help="run every daemon in one process")
    up.add_argument(
        "--take-terminal",
        action="store_true",
        help="become the terminal's foreground process group, so Ctrl-C reaches netd alone "
        "and the command that started it (make run) exits with netd's status",
    )
    for name in DAEMONS:
        sub.add_parser(name, help=f"run the {name} daemon alone")
    mig = sub.add_parser("migrate", help="apply pending database migrations")
    mig.add_argument("--status", action="store_true", help="list migrations, apply nothing")
    sub.add_parser(
        "check-config",
        help="validate the config, dictionaries and every policy file; say which are used",
    )
    worker = sub.add_parser("radius-worker")  # `netd radius` starts it; not for people
    worker.add_argument("--parent", type=int, required=True)
    worker.add_argument("--ready-fd", type=int, default=None)  # written once bound
    radius_admin.add_parsers(sub)
    api_admin.add_parsers(sub)
    acs_admin.add_parsers(sub)
    poller_admin.add_parsers(sub)
    voltha_admin.add_parsers(sub)
    devices_admin.add_parsers(sub)
    files.add_parsers(sub)
    backup.add_parsers(sub)
    rotate.add_parsers(sub)
    output.add_flag(parser)
    for leaf in _leaves(parser):
        if leaf.prog.split()[1:2] and leaf.prog.split()[1] in ADMIN:
            output.add_flag(leaf, default=argparse.SUPPRESS)
    return parser


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once a process: 91 argparse parsers take ~100 ms to build, which
    ``main`` called many times in one process (the tests) would pay each time."""
    return build_parser()


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every command (those with no sub-commands of their own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    out: list[argparse.ArgumentParser] = []
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
            out += _leaves(child)
    return out


async def _migrate(loaded: Loaded, show_status: bool) -> int:
    try:
        stores = await open_stores(loaded.config, with_redis=False, create=not show_status)
    except StartupError as exc:
        return fail(str(exc), exc.status)
    try:
        if not show_status:
            make_sealer(loaded.config, create=True)  # the key sealed secrets will need
    except ValueError as exc:
        await close_stores(stores)
        return fail(str(exc), 2)
    try:
        migrations = migrate.available()
        async with stores.pool.acquire() as conn:
            if show_status:
                states = await migrate.status(conn, migrations)
                for st in states:
                    when = st.applied_at.isoformat() if st.applied_at else "pending"
                    print(f"{st.migration.filename:40} {when}")
                pending = sum(1 for st in states if st.applied_at is None)
                print(f"{len(states)} migrations, {pending} pending")
            else:
                done = await migrate.apply(conn, migrations)
                for mig in done:
                    print(f"applied {mig.filename}")
                print(
                    f"{len(done)} applied, schema at version "
                    f"{migrations[-1].version if migrations else 0:04d}"
                )
    except migrate.MigrationError as exc:
        return fail(str(exc), 1)
    finally:
        await close_stores(stores)
    return 0


def _undecodable(argv: Sequence[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python holds its bytes as surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    bad = _undecodable(given)
    if bad is not None:
        try:  # the bytes as given, where Python could not decode them
            shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            shown = bad.encode("utf-8", "backslashreplace").decode("utf-8")
        return fail(f"argument '{shown}' is not valid UTF-8", 2)
    args = _parser().parse_args(given)
    if args.command == "files":  # needs no config: it writes one out
        return files.run(args)
    try:
        loaded = load(args.config)
    except ConfigError as exc:
        return fail(str(exc), 2)
    cfg = loaded.config
    level: str = cfg.log.level
    if args.command not in ("up", "radius-worker", *DAEMONS):  # an admin command: quiet
        level = ("warning", "info")[args.verbose] if args.verbose < 2 else "debug"
    netd_logging.setup(level, cfg.log.format)
    if args.command == "check-config":
        return checkconfig.run(loaded)
    if args.api and args.command not in ADMIN:
        return fail(f"--api applies to the admin commands, not to {args.command}", 2)
    if args.command in ADMIN:
        return _admin(loaded, args)
    if args.command == "migrate":
        return uvloop.run(_migrate(loaded, args.status))
    if args.command in ("backup", "restore"):
        return uvloop.run(backup.run(loaded, args))
    if args.command == "secrets":
        return uvloop.run(rotate.run(loaded, args))
    if args.command == "radius-worker":
        from daemons.radius.service import RadiusWorker, die_with_parent  # noqa: PLC0415

        die_with_parent(args.parent)
        RadiusWorker.ready_fd = args.ready_fd
        return uvloop.run(Runner(loaded, [RadiusWorker]).run())
    names = [n for n in DAEMONS if n != "api"] if args.command == "up" else [args.command]
    if args.command == "up":
        names = ["api", *names]
    runner = Runner(loaded, _daemon_types(names))
    give_back = _take_terminal() if getattr(args, "take_terminal", False) else None
    try:
        return uvloop.run(runner.run())
    except KeyboardInterrupt:  # a signal before the loop installed its handlers
        return 130
    finally:
        if give_back is not None:
            give_back()


def _take_terminal() -> Callable[[], None] | None:
    """Move this process into a process group of its own and make it the terminal's
    foreground group (as a shell does for a job), so a Ctrl-C is delivered to netd only:
    netd drains and exits 0, and ``make`` above it, no longer interrupted, exits with
    netd's status. Returns what gives the terminal back, or None without a terminal."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        before = os.tcgetpgrp(tty)
        os.setpgid(0, 0)
        # A background group may not set the foreground one unless it ignores SIGTTOU.
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.tcsetpgrp(tty, os.getpgrp())
    except OSError:
        os.close(tty)
        return None

    def give_back() -> None:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, before)
        signal.signal(signal.SIGTTOU, old)
        os.close(tty)

    return give_back


# What a store can raise when it fails under a command (it was reachable at the start).
STORE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    RedisError,
    TimeoutError,
)


def _admin(loaded: Loaded, args: argparse.Namespace) -> int:
    """Run an admin command: through the API with --api, else on the stores. A store that
    fails half-way is one line and exit 1, like every other failure."""
    try:
        if args.api:
            return api_client.run(args)
        return _local(loaded, args)
    except STORE_ERRORS as exc:
        return fail(f"a store failed: {type(exc).__name__}: {' '.join(str(exc).split())}", 1)
    except KeyboardInterrupt:
        return 130


def _local(loaded: Loaded, args: argparse.Namespace) -> int:
    if args.command == "token":
        return uvloop.run(api_admin.run(loaded, args))
    if args.command == "snmp":
        return uvloop.run(poller_admin.run(loaded, args))
    if args.command in ("device", "config-job"):
        return uvloop.run(devices_admin.run(loaded, args))
    if args.command in ("olt", "onu", "onu-firmware"):
        return uvloop.run(voltha_admin.run(loaded, args))
    if args.command == "cpe":
        return uvloop.run(acs_admin.run(loaded, args))
    return uvloop.run(radius_admin.run(loaded, args))


if __name__ == "__main__":
    sys.exit(main())
