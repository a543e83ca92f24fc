"""``netd device ...`` and ``netd config-job ...``: devices (passwords from stdin, sealed),
host keys, backups and diffs, and configuration jobs. ``netd device backup`` runs the backup
in this process (its events recorded as the daemon's are); jobs are queued for the devices
daemon, which also ends them when cancelled. Every verb goes through the API's own
functions (routes_devices), so both accept and refuse the same."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import asyncpg

from daemons.api import local
from daemons.api.errors import ApiError
from daemons.api.routes_devices import DevicePut, JobCreate, cancel, queue_job, queue_rollback
from daemons.api.routes_devices import put as put_device
from daemons.core import output, validate
from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
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
    add.add_argument("--platform", required=True, help="one of: " + ", ".join(platforms.names()))
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
    cancel_p = js.add_parser(
        "cancel",
        help="cancel a job: a pending one at once; a running one stops between two steps "
        "(a device being changed finishes its change)",
    )
    cancel_p.add_argument("job", type=int)
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


def _vars(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--var {validate.show(item)} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _put(args: argparse.Namespace) -> DevicePut:
    """``netd device add`` as the API's PUT body (the same model, the same rules)."""
    validate.name(args.name, "device name")
    secret = sys.stdin.readline().split()
    if not secret:
        raise validate.Invalid("give 'password [enable-secret]' on stdin")
    return DevicePut(
        address=args.address,
        port=args.port,
        platform=args.platform,
        username=args.user,
        password=secret[0],
        secret=secret[1] if len(secret) > 1 else "",
        tags=args.tag,
        vars=_vars(args.var),
        snmp_target=args.snmp_target,
    )


def _create(args: argparse.Namespace) -> JobCreate:
    return JobCreate(
        template=args.template,
        variables=_vars(args.var),
        mode="apply" if args.apply else "dry-run",
        devices=args.device,
        tags=args.tag,
        stop_on_failure=args.stop_on_failure,
        concurrency=args.concurrency,
    )


def _job_id(value: int | None) -> int | None:
    return None if value is None else validate.bounded(value, validate.ID, "job id")


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        body: DevicePut | JobCreate | None = None
        if args.command == "device" and args.device_action == "add":
            body = _put(args)
        elif args.command == "config-job" and args.job_action == "create":
            body = _create(args)
        else:
            _job_id(getattr(args, "job", None))
            for key in ("old", "new"):
                validate.bounded(getattr(args, key, 1), validate.ID, "backup id")
    except ValueError as exc:  # ValidationError and Invalid are ValueErrors
        found = local.problem(exc)
        return local.fail(*found) if found else local.fail(str(exc), 2)
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    try:
        st = local.LocalState(loaded.config, stores.pool)
        if isinstance(body, DevicePut):
            created = await put_device(st, args.name, body)
            print(f"{'added' if created else 'updated'} device {args.name}")
            return 0
        if isinstance(body, JobCreate):
            job_id, names = await queue_job(st, body, local.actor())
            print(f"config job {job_id} queued for {len(names)} devices")
            return 0
        if args.command == "device":
            return await _device(loaded, st, args)
        return await _job(st, args)
    except (ValueError, ApiError, asyncpg.DataError) as exc:
        found = local.problem(exc)
        return local.fail(*found) if found else local.fail(str(exc), 2)
    finally:
        await close_stores(stores)


async def _device(loaded: Loaded, st: local.LocalState, args: argparse.Namespace) -> int:
    pool, sealer = st.pool, st.sealer
    action = args.device_action
    if action == "list":
        found = [
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
            for d in await store.list_devices(pool, sealer, (), args.tag)
        ]
        return output.rows(args, found, "no devices")
    device = await store.get_device(pool, sealer, args.name)
    if device is None:
        return local.fail(f"no device {args.name}", 1)
    if action == "remove":
        await store.remove_device(pool, args.name)
        print(f"removed device {args.name}")
        return 0
    if action == "accept-key":
        key = await store.accept_host_key(pool, args.name)
        if key is None:
            return local.fail(f"device {args.name} offered no new host key", 1)
        print(f"accepted {key.split()[0]} for {args.name}")
        return 0
    if action == "backups":
        return output.rows(args, await store.list_backups(pool, args.name), "no backups")
    if action == "diff":
        old = await store.get_backup(pool, sealer, args.old)
        new = await store.get_backup(pool, sealer, args.new)
        if not old or not new or old["device"] != args.name or new["device"] != args.name:
            return local.fail(f"no such backups of {args.name}", 1)
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
        return local.fail(f"backup of {args.name} failed [{exc.reason}]: {exc}", 1)
    finally:
        runner.close()
    print(f"backup {backup_id} of {args.name}: {'changed' if changed else 'unchanged'}")
    return 0


async def _job(st: local.LocalState, args: argparse.Namespace) -> int:
    pool = st.pool
    if args.job_action == "status" and args.job is None:
        return output.rows(args, await store.list_jobs(pool), "no config jobs")
    got = await store.get_job(pool, args.job)
    if got is None:
        return local.fail(f"no config job {args.job}", 1)
    if args.job_action == "status":
        return output.record(args, got)
    if args.job_action == "cancel":
        state = await cancel(st, args.job, local.actor())
        print(
            f"config job {args.job} cancelled"
            if state == "cancelled"
            else f"config job {args.job} is stopping (running: it ends after its current step)"
        )
        return 0
    new_id, devices = await queue_rollback(st, args.job, args.force, local.actor())
    print(f"rollback job {new_id} queued for {len(devices)} devices")
    return 0
