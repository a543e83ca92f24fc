"""The ``netd`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

import uvloop

from daemons import __version__, backup, checkconfig, files
from daemons.acs import admin as acs_admin
from daemons.acs.service import AcsService
from daemons.api import admin as api_admin
from daemons.api import client as api_client
from daemons.api.service import ApiService
from daemons.core import logging as netd_logging
from daemons.core.config import ConfigError, Loaded, load
from daemons.core.lifecycle import (
    Daemon,
    Runner,
    StartupError,
    close_stores,
    make_sealer,
    open_stores,
)
from daemons.core.status import status_listener_for
from daemons.devices import admin as devices_admin
from daemons.devices.service import DevicesService
from daemons.poller import admin as poller_admin
from daemons.poller.service import PollerService
from daemons.radius import admin as radius_admin
from daemons.radius.service import RadiusService, RadiusWorker, die_with_parent
from daemons.store import migrate
from daemons.voltha import admin as voltha_admin
from daemons.voltha.service import VolthaService

DAEMONS = ("radius", "acs", "voltha", "poller", "devices", "api")


def _daemon_types(names: Sequence[str]) -> list[type[Daemon]]:
    table: dict[str, type[Daemon]] = {
        "api": ApiService,
        "radius": RadiusService,
        "acs": AcsService,
        "voltha": VolthaService,
        "poller": PollerService,
        "devices": DevicesService,
    }
    types = [table[n] for n in names]
    if "api" not in names:  # no API in this process: serve health/metrics on a status port
        types.insert(0, status_listener_for(names[0]))
    return types


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    radius_admin.add_parsers(sub)
    api_admin.add_parsers(sub)
    acs_admin.add_parsers(sub)
    poller_admin.add_parsers(sub)
    voltha_admin.add_parsers(sub)
    devices_admin.add_parsers(sub)
    files.add_parsers(sub)
    backup.add_parsers(sub)
    return parser


async def _migrate(loaded: Loaded, show_status: bool) -> int:
    try:
        stores = await open_stores(loaded.config, with_redis=False, create=not show_status)
    except StartupError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return exc.status
    try:
        if not show_status:
            make_sealer(loaded.config, create=True)  # the key sealed secrets will need
    except ValueError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        await close_stores(stores)
        return 2
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
        print(f"netd: {exc}", file=sys.stderr)
        return 1
    finally:
        await close_stores(stores)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "files":  # needs no config: it writes one out
        return files.run(args)
    try:
        loaded = load(args.config)
    except ConfigError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return 2
    cfg = loaded.config
    level: str = cfg.log.level
    if args.command not in ("up", "radius-worker", *DAEMONS):  # an admin command: quiet
        level = ("warning", "info")[args.verbose] if args.verbose < 2 else "debug"
    netd_logging.setup(level, cfg.log.format)
    if args.command == "check-config":
        return checkconfig.run(loaded)
    if args.command == "migrate":
        return uvloop.run(_migrate(loaded, args.status))
    if args.command in ("backup", "restore"):
        return uvloop.run(backup.run(loaded, args))
    if args.api and args.command in ("nas", "subscriber", "session", "pool", "token", "cpe"):
        return api_client.run(args)
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
    if args.command in ("nas", "subscriber", "session", "pool"):
        return uvloop.run(radius_admin.run(loaded, args))
    if args.command == "radius-worker":
        die_with_parent(args.parent)
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


if __name__ == "__main__":
    sys.exit(main())
