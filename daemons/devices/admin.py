"""``netd device ...`` and ``netd config-job ...``: devices (passwords from stdin, sealed),
host keys, backups and diffs, and configuration jobs. ``netd device backup`` runs the backup
in this process (its events recorded as the daemon's are); jobs are queued for the devices
daemon, which also ends them when cancelled."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import asyncpg

from daemons.core.config import Loaded
from daemons.core.lifecycle import (
    StartupError,
    close_stores,
    ensure_schema,
    make_sealer,
    open_stores,
)
from daemons.devices import cliconf, platforms
from daemons.devices.errors import DeviceError
from daemons.devices.jobs import Runner, text_diff
from daemons.store import devices as store
from daemons.store.events import append_event


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("device", help="devices configured over SSH CLI or NETCONF")
    ds = dev.add_subparsers(dest="device_action", required=True, metavar="ACTION")
    add = ds.add_parser("add", help="add or replace a device ('password [enable]' on stdin)")
    add.add_argument("name")
    add.add_argument("--address", required=True)
    add.add_argument("--port", type=int, default=22)
    add.add_argument(
        "--platform",
        required=True,
        choices=platforms.names(),
        help="a platform of the table (netconf, or a netmiko device_type)",
    )
    add.add_argument("--user", required=True)
    add.add_argument("--tag", action="append", default=[])
    add.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    add.add_argument("--snmp-target")
    ls = ds.add_parser("list", help="devices (never their passwords)")
    ls.add_argument("--tag", action="append", default=[])
    for action, text in (
        ("remove", "remove a device and its backups"),
        ("accept-key", "accept the SSH host key the device now offers"),
        ("backup", "back the device up now (in this process)"),
        ("backups", "the device's stored backups"),
    ):
        p = ds.add_parser(action, help=text)
        p.add_argument("name")
    diff = ds.add_parser("diff", help="diff two backups")
    diff.add_argument("name")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int)
    job = sub.add_parser("config-job", help="configuration jobs: create, status, cancel, rollback")
    js = job.add_subparsers(dest="job_action", required=True, metavar="ACTION")
    create = js.add_parser("create", help="a dry-run (default) or --apply job")
    create.add_argument("template", help="policies/config/TEMPLATE.{cli,netconf}.j2")
    create.add_argument("--device", action="append", default=[])
    create.add_argument("--tag", action="append", default=[])
    create.add_argument("--var", action="append", default=[], metavar="KEY=JSON")
    create.add_argument("--apply", action="store_true")
    create.add_argument("--stop-on-failure", action="store_true")
    create.add_argument("--concurrency", type=int, default=8)
    st = js.add_parser("status", help="a job with each device's result and diff, or all jobs")
    st.add_argument("job", nargs="?", type=int)
    cancel = js.add_parser(
        "cancel",
        help="cancel a job: a pending one at once; a running one stops between two steps "
        "(a device being changed finishes its change)",
    )
    cancel.add_argument("job", type=int)
    rb = js.add_parser(
        "rollback",
        help="undo what an apply job changed (only that); refused where a device changed "
        "those parts since, unless --force",
    )
    rb.add_argument("job", type=int)
    rb.add_argument(
        "--force",
        action="store_true",
        help="put the job's parts back even over later changes to them (the drift)",
    )


def _print(row: Any) -> None:
    print(json.dumps(row, default=str))


def _vars(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--var {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    secret = None
    if args.command == "device" and args.device_action == "add":
        secret = sys.stdin.readline().split()
        if not secret:
            print("netd: give 'password [enable-secret]' on stdin", file=sys.stderr)
            return 2
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return exc.status
    try:
        if args.command == "device":
            return await _device(loaded, stores.pool, args, secret)
        return await _job(loaded, stores.pool, args)
    except (ValueError, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_stores(stores)


async def _device(
    loaded: Loaded, pool: asyncpg.Pool, args: argparse.Namespace, secret: list[str] | None
) -> int:
    sealer = make_sealer(loaded.config)
    action = args.device_action
    if action == "add":
        assert secret
        d = store.Device(
            args.name,
            args.address,
            args.port,
            args.platform,
            args.user,
            secret[0],
            secret[1] if len(secret) > 1 else "",
            tags=tuple(args.tag),
            vars=_vars(args.var),
            snmp_target=args.snmp_target,
        )
        created = await store.put_device(pool, sealer, d)
        print(f"{'added' if created else 'updated'} device {args.name}")
        return 0
    if action == "list":
        for d in await store.list_devices(pool, sealer, (), args.tag):
            _print(
                {
                    "name": d.name,
                    "address": d.address,
                    "port": d.port,
                    "platform": d.platform,
                    "user": d.username,
                    "tags": list(d.tags),
                    "host_keys": list(d.host_keys),
                    "offered_host_key": d.offered_host_key,
                }
            )
        return 0
    device = await store.get_device(pool, sealer, args.name)
    if device is None:
        print(f"netd: no device {args.name}", file=sys.stderr)
        return 1
    if action == "remove":
        await store.remove_device(pool, args.name)
        print(f"removed device {args.name}")
        return 0
    if action == "accept-key":
        key = await store.accept_host_key(pool, args.name)
        if key is None:
            print(f"netd: device {args.name} offered no new host key", file=sys.stderr)
            return 1
        print(f"accepted {key.split()[0]} for {args.name}")
        return 0
    if action == "backups":
        for b in await store.list_backups(pool, args.name):
            _print(b)
        return 0
    if action == "diff":
        old = await store.get_backup(pool, sealer, args.old)
        new = await store.get_backup(pool, sealer, args.new)
        if not old or not new or old["device"] != args.name or new["device"] != args.name:
            print(f"netd: no such backups of {args.name}", file=sys.stderr)
            return 1
        if device.platform == "netconf":
            print(text_diff(old["config"], new["config"], args.name), end="")
        else:
            print(
                cliconf.diff(cliconf.parse(old["config"]), cliconf.parse(new["config"]), args.name),
                end="",
            )
        return 0
    cfg = loaded.config.devices

    async def note(kind: str, subject: str, data: dict[str, Any], severity: str) -> None:
        await append_event(pool, "devices", kind, subject=subject, data=data, severity=severity)  # type: ignore[arg-type]

    runner = Runner(
        pool,
        sealer,
        loaded.config.policies.root / "config",
        1,
        cfg.device_timeout,
        cfg.confirm_timeout,
        note,
        cfg.lock_wait,
    )
    try:
        backup_id, changed = await runner.backup(device)
    except DeviceError as exc:
        await note(
            "device.backup_failed", args.name, {"reason": exc.reason, "error": str(exc)}, "warning"
        )
        print(f"netd: backup of {args.name} failed [{exc.reason}]: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    print(f"backup {backup_id} of {args.name}: {'changed' if changed else 'unchanged'}")
    return 0


async def _job(loaded: Loaded, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    sealer = make_sealer(loaded.config)
    if args.job_action == "create":
        names = set(args.device)
        if args.tag:
            names |= {d.name for d in await store.list_devices(pool, sealer, (), args.tag)}
        found = await store.list_devices(pool, sealer, sorted(names))
        known = {d.name for d in found}
        if not names or names - known:
            raise ValueError(f"no such devices: {', '.join(sorted(names - known)) or '(none)'}")
        mode = "apply" if args.apply else "dry-run"
        problems = platforms.refusals(
            loaded.config.policies.root / "config",
            args.template,
            mode,
            [(d.name, d.platform) for d in found],
        )
        if problems:
            raise ValueError("; ".join(problems))
        job_id = await store.create_job(
            pool,
            args.template,
            _vars(args.var),
            "apply" if args.apply else "dry-run",
            sorted(names),
            stop_on_failure=args.stop_on_failure,
            concurrency=args.concurrency,
            created_by="cli",
            lifetime=loaded.config.devices.job_timeout,
        )
        print(f"config job {job_id} queued for {len(names)} devices")
        return 0
    if args.job_action == "status" and args.job is None:
        for j in await store.list_jobs(pool):
            _print(j)
        return 0
    got = await store.get_job(pool, args.job)
    if got is None:
        print(f"netd: no config job {args.job}", file=sys.stderr)
        return 1
    if args.job_action == "status":
        _print(got)
        return 0
    if args.job_action == "cancel":
        state = await store.cancel_job(pool, args.job, "cli")
        if state in ("done", "failed"):
            print(f"netd: job {args.job} has ended ({state}): nothing to cancel", file=sys.stderr)
            return 1
        print(
            f"config job {args.job} cancelled"
            if state == "cancelled"
            else f"config job {args.job} is stopping (running: it ends after its current step)"
        )
        return 0
    devices = [d["device"] for d in got["devices"] if d["backup_before"] is not None]
    if got["mode"] != "apply" or not devices:
        print(f"netd: job {args.job} changed no device: nothing to roll back", file=sys.stderr)
        return 1
    new_id = await store.create_job(
        pool,
        got["template"],
        {},
        "rollback",
        devices,
        rollback_of=args.job,
        created_by="cli",
        force=args.force,
        lifetime=loaded.config.devices.job_timeout,
    )
    print(f"rollback job {new_id} queued for {len(devices)} devices")
    return 0
