"""``netd cpe ...``: TR-069 devices, parameters, tasks, faults and presets on the stores.

The same commands run through the API with ``netd --api URL --token-file F cpe ...``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from daemons.acs import presets
from daemons.acs import tasks as acs_tasks
from daemons.acs.engine import TASK_KINDS
from daemons.api import local
from daemons.core import output, validate
from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
from daemons.core.policies import PolicyError, load_policies
from daemons.store import acs as store
from daemons.store import cpe_bulk


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cpe = sub.add_parser("cpe", help="TR-069 CPEs: list, show, parameters, tasks, faults")
    cs = cpe.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = cs.add_parser("list", help="list CPEs")
    lst.add_argument("--q", help="part of the id (OUI-ProductClass-SerialNumber)")
    lst.add_argument("--tag")
    lst.add_argument("--limit", type=int, default=100)
    show = cs.add_parser("show", help="one CPE")
    show.add_argument("device_id")
    params = cs.add_parser("params", help="a CPE's stored parameters")
    params.add_argument("device_id")
    params.add_argument("--prefix", default="", help="e.g. Device.WiFi.")
    task = cs.add_parser(
        "task", help="queue a task for the CPE's next session (and poke it to call in)"
    )
    task.add_argument("device_id")
    task.add_argument("kind", choices=TASK_KINDS)
    task.add_argument(
        "--args",
        default="{}",
        metavar="JSON",
        help='the task\'s arguments, e.g. \'{"names": ["Device.DeviceInfo.UpTime"]}\'',
    )
    task.add_argument("--no-poke", action="store_true", help="send no connection request")
    tl = cs.add_parser("tasks", help="list tasks")
    tl.add_argument("--device")
    tl.add_argument(
        "--status", choices=["queued", "running", "done", "fault", "cancelled", "expired"]
    )
    tl.add_argument("--limit", type=int, default=100)
    cancel = cs.add_parser(
        "cancel",
        help="cancel a queued or running task (the ACS sends it no more; says what the CPE "
        "may still do)",
    )
    cancel.add_argument("task_id", type=int)
    _bulk_parsers(cs)
    poke = cs.add_parser("connreq", help="send a connection request now")
    poke.add_argument("device_id")
    faults = cs.add_parser("faults", help="faults CPEs answered with, newest first")
    faults.add_argument("--device")
    faults.add_argument("--limit", type=int, default=100)
    cs.add_parser("presets", help="the presets of policies/cwmp in force")
    fl = cs.add_parser("files", help="the ACS file store: list")
    fl.add_argument("--limit", type=int, default=1000)
    fp = cs.add_parser("file-put", help="add or replace a firmware or config file")
    fp.add_argument("name", help="its name in /files/<name>")
    fp.add_argument("path", type=Path, help="the file to upload")
    fp.add_argument("--type", default="1 Firmware Upgrade Image", help="TR-069 FileType")
    fp.add_argument("--version", default="", help="the SoftwareVersion it installs")
    fp.add_argument("--oui", default="")
    fp.add_argument("--product-class", default="")
    fr = cs.add_parser("file-remove", help="remove a file from the store")
    fr.add_argument("name")


def task_args(text: str) -> dict[str, Any]:
    return validate.json_object(text, "--args")


def _bulk_parsers(cs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bulk = cs.add_parser(
        "bulk",
        help="queue a task (or runPreset) for every CPE a filter matches, connection "
        "requests paced by the ACS",
    )
    bulk.add_argument("kind", choices=TASK_KINDS)
    bulk.add_argument("--args", default="{}", metavar="JSON", help="the task's arguments")
    bulk.add_argument("--tag", action="append", default=[], help="all of these tags (repeat)")
    bulk.add_argument("--oui")
    bulk.add_argument("--product-class")
    bulk.add_argument("--software-version")
    bulk.add_argument("--param", metavar="NAME=VALUE", help="a stored parameter's value")
    bulk.add_argument(
        "--rate", type=float, help="connection requests a second (acs.connection_request_rate)"
    )
    bs = cs.add_parser("bulk-show", help="a bulk run's progress (--tasks: per-device results)")
    bs.add_argument("bulk_id", type=int)
    bs.add_argument("--tasks", action="store_true", help="also each device's task")
    bc = cs.add_parser("bulk-cancel", help="cancel a bulk run's queued and running tasks")
    bc.add_argument("bulk_id", type=int)


def bulk_filter(args: argparse.Namespace) -> dict[str, Any]:
    """The device filter of ``netd cpe bulk``'s options (checked by acs.tasks.check_filter,
    as the API's are)."""
    f: dict[str, Any] = {"tags": list(args.tag)}
    for key in ("oui", "product_class", "software_version"):
        if getattr(args, key):
            f[key] = getattr(args, key)
    if args.param:
        name, sep, value = args.param.partition("=")
        if not sep:
            raise validate.Invalid("--param is NAME=VALUE")
        f["parameter"] = {"name": name, "value": value}
    return f


def _limit(args: argparse.Namespace) -> int:
    return validate.bounded(args.limit, validate.LIMIT, "--limit")


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    if args.action == "presets":
        try:
            found = presets.load_presets(load_policies(loaded.config.policies.root, 1))
        except PolicyError as exc:
            return local.fail(str(exc), 2)
        rows = [{"name": p.name, "source": p.source, "spec": p.spec()} for p in found]
        return output.rows(args, rows, "no presets")
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    try:
        return await _run(loaded, stores.pool, args)
    except acs_tasks.TaskError as exc:  # as the API answers: 404 for no device, else 422
        return local.fail(str(exc), 1 if str(exc).startswith("no device") else 2)
    except (ValueError, OSError) as exc:
        return local.fail(str(exc), 2)
    finally:
        await close_stores(stores)


async def _run(loaded: Loaded, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    a = args.action
    if a == "list":
        found = await store.list_devices(pool, after="", limit=_limit(args), q=args.q, tag=args.tag)
        return output.rows(args, found, "no CPEs")
    if a in ("show", "connreq"):
        device = await store.get_device(pool, args.device_id)
        if device is None:
            return local.fail(f"no CPE {args.device_id}", 1)
        if a == "show":
            return output.record(args, device)
        outcome = await acs_tasks.poke_device(pool, loaded.config.acs, device)
        output.record(args, {"device_id": args.device_id, "outcome": outcome})
        if outcome in ("ok", "udp-sent", "udp-queued"):
            return 0
        return local.fail(f"connection request: {outcome}", 1)
    if a == "params":
        params = (await store.device_params(pool, args.device_id, args.prefix)).values()
        return output.rows(args, params, "no parameters")
    if a == "task":
        task_id, outcome = await acs_tasks.queue(
            pool,
            loaded.config.acs,
            args.device_id,
            args.kind,
            task_args(args.args),
            local.actor(),
            poke=not args.no_poke,
        )
        return output.record(args, {"task": task_id, "connection_request": outcome})
    if a == "tasks":
        found = await store.list_tasks(
            pool, device_id=args.device, status=args.status, after=None, limit=_limit(args)
        )
        return output.rows(args, found, "no tasks")
    if a == "cancel":
        validate.bounded(args.task_id, validate.ID, "task id")
        try:
            was, note = await acs_tasks.cancel(pool, args.task_id)
        except acs_tasks.TaskError as exc:  # no such task, or it has ended: the API's 404/409
            return local.fail(str(exc), 1)
        print(f"cancelled task {args.task_id} (was {was['status']}): {note}")
        return 0
    if a in ("files", "file-put", "file-remove"):
        return await _files(loaded, pool, args)
    if a in ("bulk", "bulk-show", "bulk-cancel"):
        return await _bulk(loaded, pool, args)
    found = await store.list_faults(pool, device_id=args.device, before=None, limit=_limit(args))
    return output.rows(args, found, "no faults")


async def _bulk(loaded: Loaded, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    if args.action == "bulk":
        bulk_id = await acs_tasks.queue_bulk(
            pool,
            loaded.config.acs,
            bulk_filter(args),
            args.kind,
            task_args(args.args),
            local.actor(),
            args.rate,
        )
        return output.record(args, await cpe_bulk.get_bulk(pool, bulk_id) or {})
    validate.bounded(args.bulk_id, validate.ID, "bulk run id")
    if args.action == "bulk-cancel":
        count = await cpe_bulk.cancel_bulk(pool, args.bulk_id)
        if count is None:
            return local.fail(f"no bulk run {args.bulk_id}", 1)
        print(f"cancelled bulk run {args.bulk_id}: {count} tasks")
        return 0
    found = await cpe_bulk.get_bulk(pool, args.bulk_id)
    if found is None:
        return local.fail(f"no bulk run {args.bulk_id}", 1)
    if not args.tasks:
        return output.record(args, found)
    tasks: list[dict[str, Any]] = []
    while True:
        page = await store.list_tasks(
            pool,
            device_id=None,
            status=None,
            after=tasks[-1]["id"] if tasks else None,
            limit=1000,
            bulk_id=args.bulk_id,
        )
        tasks += page
        if len(page) < 1000:
            break
    output.record(args, found)
    return output.rows(args, tasks, "no tasks")


async def _files(loaded: Loaded, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from daemons.acs.service import file_store  # noqa: PLC0415 - the daemon module is heavy

    fs = file_store(loaded.config)
    if args.action == "files":
        found = [info.as_dict() for info in await fs.list(pool, "", _limit(args))]
        return output.rows(args, found, "no files")
    if args.action == "file-remove":
        if await fs.delete(pool, args.name):
            print(f"removed file {args.name}")
            return 0
        return local.fail(f"no file {args.name}", 1)
    info = await fs.put(
        pool,
        args.name,
        await asyncio.to_thread(args.path.read_bytes),
        file_type=args.type,
        oui=args.oui,
        product_class=args.product_class,
        version=args.version,
        created_by=local.actor(),
    )
    return output.record(args, info.as_dict())


__all__ = ["add_parsers", "bulk_filter", "run", "task_args"]
