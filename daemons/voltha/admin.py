"""``netd olt ...``, ``netd onu ...`` and ``netd onu-firmware ...``: OLTs (register,
list, actions, delete), ONUs (list, bind to a subscriber, unbind, actions), and ONU
firmware jobs (start, status). Actions go straight to the
stack's VOLTHA core; lists read the inventory the voltha daemon syncs."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from daemons.api import local
from daemons.api.routes_voltha import FirmwareJobCreate, OltCreate, OnuBinding
from daemons.core import output, validate
from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
from daemons.store import voltha as store
from daemons.store.cache import Cache, unpack
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.policy import normalize_serial


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    olt = sub.add_parser("olt", help="VOLTHA OLTs: add, list, enable, disable, reboot, delete")
    os_ = olt.add_subparsers(dest="olt_action", required=True, metavar="ACTION")
    add = os_.add_parser("add", help="register an OLT (CreateDevice, then EnableDevice)")
    add.add_argument("host_and_port", metavar="HOST:PORT")
    add.add_argument("--stack", required=True)
    add.add_argument("--type", default="openolt")
    add.add_argument("--no-enable", action="store_true", help="create only (pre-provision)")
    ls = os_.add_parser("list", help="OLTs as last synced")
    ls.add_argument("--stack")
    show = os_.add_parser("show", help="an OLT and its ports")
    show.add_argument("key", metavar="ID|SERIAL")
    onu = sub.add_parser(
        "onu", help="VOLTHA ONUs: list, bind and unbind (the allow-list), enable, disable, reboot"
    )
    us = onu.add_subparsers(dest="onu_action", required=True, metavar="ACTION")
    uls = us.add_parser("list", help="ONUs as last synced, with their subscriber")
    uls.add_argument("--stack")
    uls.add_argument("--olt", help="an OLT's id")
    bind = us.add_parser("bind", help="allow an ONU serial: bind it to a subscriber")
    bind.add_argument("serial")
    bind.add_argument("--subscriber", required=True)
    bind.add_argument("--s-tag", type=int, required=True)
    bind.add_argument("--c-tag", type=int, required=True)
    bind.add_argument("--tp-id", type=int, default=64)
    bind.add_argument("--uni", type=int, default=1)
    unbind = us.add_parser("unbind", help="remove a binding (the ONU is refused again)")
    unbind.add_argument("serial")
    ushow = us.add_parser("show", help="an ONU, its ports, binding and last optics")
    ushow.add_argument("key", metavar="ID|SERIAL")
    for parent, kind in ((os_, "OLT"), (us, "ONU")):
        for action in ("enable", "disable", "reboot", "delete"):
            if kind == "ONU" and action == "delete":
                continue
            p = parent.add_parser(action, help=f"{action} an {kind} (id or serial)")
            p.add_argument("key", metavar="ID|SERIAL")
    fw = sub.add_parser("onu-firmware", help="VOLTHA ONU firmware jobs: start, status")
    fs = fw.add_subparsers(dest="fw_action", required=True, metavar="ACTION")
    start = fs.add_parser("start", help="download, activate and commit an image on ONUs")
    start.add_argument("--stack", required=True)
    start.add_argument("--version", required=True)
    start.add_argument("--url", required=True)
    start.add_argument("--vendor", default="")
    start.add_argument("--crc32", type=int, default=0)
    start.add_argument("--no-activate", action="store_true")
    start.add_argument("--no-commit", action="store_true")
    start.add_argument("--concurrency", type=int, default=4)
    start.add_argument("onus", nargs="+", metavar="ONU", help="ids or serials")
    st = fs.add_parser("status", help="a job's ONUs, or every job")
    st.add_argument("job", nargs="?", type=int)


def _body(args: argparse.Namespace) -> OltCreate | OnuBinding | FirmwareJobCreate | None:
    """The API's request model of a command that writes (the same rules), else None."""
    action = getattr(args, "olt_action", None) or getattr(args, "onu_action", None)
    if args.command == "olt" and action == "add":
        return OltCreate(
            stack=args.stack,
            host_and_port=args.host_and_port,
            type=args.type,
            enable=not args.no_enable,
        )
    if args.command == "onu" and action == "bind":
        validate.pattern(args.serial, validate.SERIAL, "serial", "4 to 32 of A-Z a-z 0-9")
        return OnuBinding(
            subscriber=args.subscriber,
            s_tag=args.s_tag,
            c_tag=args.c_tag,
            tp_id=args.tp_id,
            uni=args.uni,
        )
    if args.command == "onu-firmware" and args.fw_action == "start":
        return FirmwareJobCreate(
            stack=args.stack,
            version=args.version,
            url=args.url,
            vendor=args.vendor,
            crc32=args.crc32,
            activate=not args.no_activate,
            commit=not args.no_commit,
            concurrency=args.concurrency,
            onus=args.onus,
        )
    if args.command == "onu-firmware" and args.job is not None:
        validate.bounded(args.job, validate.ID, "job id")
    return None


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        body = _body(args)
    except ValueError as exc:  # ValidationError and Invalid are ValueErrors
        found = local.problem(exc)
        return local.fail(*found) if found else local.fail(str(exc), 2)
    try:
        stores = await open_stores(loaded.config, with_redis=args.command == "onu")
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    clients: dict[str, VolthaClient] = {}

    def client(stack: str) -> VolthaClient:
        cfg = loaded.config.voltha.stacks.get(stack)
        if cfg is None:
            raise ValueError(f"no VOLTHA stack {stack} in voltha.stacks")
        if stack not in clients:
            clients[stack] = VolthaClient(stack, cfg)
        return clients[stack]

    try:
        return await _run(stores.pool, args, client, stores.cache, body)
    except VolthaError as exc:
        return local.fail(str(exc), 1)
    except ValueError as exc:
        return local.fail(str(exc), 2)
    finally:
        for c in clients.values():
            await c.close()
        await close_stores(stores)


async def _device(pool: asyncpg.Pool, key: str, kind: str | None = None) -> dict[str, Any]:
    dev = await store.find_device(pool, key)
    if dev is None or (kind and dev["kind"] != kind):
        raise ValueError(f"no {kind or 'device'} {key} (ids and serials as last synced)")
    return dev


async def _run(
    pool: asyncpg.Pool, args: argparse.Namespace, client: Any, cache: Cache | None, body: Any
) -> int:
    action = getattr(args, "olt_action", None) or getattr(args, "onu_action", None)
    kind = "olt" if args.command == "olt" else "onu"
    if action == "show":
        return await _show(args, pool, args.key, kind, cache)
    if args.command in ("olt", "onu") and action in ("enable", "disable", "reboot", "delete"):
        dev = await _device(pool, args.key, kind)
        c = client(dev["stack"])
        calls = {"enable": c.enable, "disable": c.disable, "reboot": c.reboot, "delete": c.delete}
        await calls[action](dev["id"])
        print(f"{action}: {kind.upper()} {dev['serial'] or dev['id']}")
        return 0
    if action == "list":
        olt = getattr(args, "olt", None)
        found = await store.list_devices(pool, kind, args.stack, olt)
        return output.rows(args, found, f"no {kind.upper()}s")
    if isinstance(body, OltCreate):  # olt add
        c = client(body.stack)
        device = await c.create_olt(body.host_and_port, body.type)
        if body.enable:
            await c.enable(device.id)
        return output.record(args, {"stack": body.stack, "id": device.id, "enabled": body.enable})
    if isinstance(body, OnuBinding):  # onu bind
        b = body
        try:
            created = await store.put_binding(
                pool, store.Binding(args.serial, b.subscriber, b.s_tag, b.c_tag, b.tp_id, b.uni)
            )
        except asyncpg.ForeignKeyViolationError:
            raise ValueError(f"no subscriber {args.subscriber}") from None
        except asyncpg.CheckViolationError as exc:
            raise ValueError(f"binding refused: {exc.constraint_name}") from None
        serial = normalize_serial(args.serial)
        print(f"{'bound' if created else 'rebound'} ONU {serial} to {args.subscriber}")
        return 0
    if action == "unbind":
        if await store.remove_binding(pool, args.serial):
            print(f"unbound ONU {args.serial}")
            return 0
        return local.fail(f"ONU {args.serial} is not bound", 1)
    return await _firmware(pool, args, client, body)


async def _show(
    args: argparse.Namespace, pool: asyncpg.Pool, key: str, kind: str, cache: Cache | None
) -> int:
    dev = await _device(pool, key, kind)
    dev["ports"] = await store.device_ports(pool, dev["stack"], dev["id"])
    if kind == "onu" and dev["serial"]:
        b = await store.binding(pool, dev["serial"])
        dev["binding"] = b.__dict__ if b else None
        raw = None
        if cache is not None:
            raw = await cache.client.get(cache.key("voltha:" + dev["serial"], "optics"))
        dev["optics"] = unpack(raw) if isinstance(raw, bytes) else None
    return output.record(args, dev)


async def _firmware(pool: asyncpg.Pool, args: argparse.Namespace, client: Any, body: Any) -> int:
    if isinstance(body, FirmwareJobCreate):
        client(body.stack)  # the stack must be configured
        devices = []
        for key in dict.fromkeys(body.onus):
            dev = await _device(pool, key, "onu")
            if dev["stack"] != body.stack:
                raise ValueError(f"no ONU {key} in stack {body.stack}")
            devices.append((dev["id"], dev["serial"]))
        job_id = await store.create_job(
            pool,
            body.stack,
            body.version,
            body.url,
            devices,
            vendor=body.vendor,
            crc32=body.crc32,
            activate=body.activate,
            commit=body.commit,
            concurrency=body.concurrency,
            created_by=local.actor(),
        )
        print(f"firmware job {job_id} queued for {len(devices)} ONUs")
        return 0
    if args.job is None:
        return output.rows(args, await store.list_jobs(pool), "no firmware jobs")
    got = await store.get_job(pool, args.job)
    if got is None:
        return local.fail(f"no firmware job {args.job}", 1)
    return output.record(args, got)
