"""``netd snmp ...``: polling targets, SNMPv3 trap users, and ad-hoc GET and walk for
checking a device.

Communities and v3 keys are read from stdin (never the command line, where ``ps`` shows
them) and sealed before they reach PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from daemons.api import local
from daemons.api.errors import ApiError
from daemons.api.routes_snmp import SnmpTargetPut, target_from
from daemons.core import output, validate
from daemons.core.config import Loaded
from daemons.core.lifecycle import (
    StartupError,
    close_stores,
    ensure_schema,
    make_sealer,
    open_stores,
)
from daemons.core.policies import PolicyError
from daemons.poller.client import AUTH, PRIV, Credentials, PollError, read
from daemons.store import snmp as store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    snmp = sub.add_parser("snmp", help="SNMP: polling targets; ad-hoc get and walk")
    ss = snmp.add_subparsers(dest="action", required=True, metavar="ACTION")
    tgt = ss.add_parser("target", help="polling targets: add, list, remove")
    ts = tgt.add_subparsers(dest="target_action", required=True, metavar="ACTION")
    add = ts.add_parser("add", help="add or replace a target (secrets from stdin)")
    add.add_argument("name")
    _device_args(add)
    add.add_argument("--profile", action="append", default=[], help="a policies/snmp profile")
    add.add_argument("--interval", type=int, help="seconds (default: the profiles')")
    add.add_argument("--tag", action="append", default=[])
    add.add_argument("--disabled", action="store_true")
    ts.add_parser("list", help="list targets (secrets are not shown)")
    rm = ts.add_parser("remove", help="remove a target")
    rm.add_argument("name")
    tu = ss.add_parser("trap-user", help="SNMPv3 users traps and informs are accepted from")
    tus = tu.add_subparsers(dest="trap_user_action", required=True, metavar="ACTION")
    tadd = tus.add_parser("add", help="add or replace a user ('authpass privpass' on stdin)")
    tadd.add_argument("user")
    tadd.add_argument("--auth", choices=sorted(AUTH), required=True)
    tadd.add_argument("--priv", choices=sorted(PRIV), default="")
    tus.add_parser("list", help="list users (protocols only)")
    trm = tus.add_parser("remove", help="remove a user")
    trm.add_argument("user")
    for action in ("get", "walk"):
        p = ss.add_parser(action, help=f"{action} OIDs now (numeric), from any device")
        _device_args(p)
        p.add_argument("oids", nargs="+", metavar="OID")
        p.add_argument("--timeout", type=float, default=2.0)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=161)
    p.add_argument("--version", choices=["1", "2c", "3"], default="2c")
    p.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the community (v1/v2c) or 'authkey privkey' (v3) from stdin",
    )
    p.add_argument("--user", default="", help="v3 user")
    p.add_argument("--auth", choices=sorted(AUTH), default="")
    p.add_argument("--priv", choices=sorted(PRIV), default="")
    p.add_argument(
        "--context", default="", help="v3 context name (a Cisco per-VRF or per-VLAN instance)"
    )


def _credentials(args: argparse.Namespace) -> Credentials:
    secret = sys.stdin.readline().strip() if args.secret_stdin else ""
    if args.context and args.version != "3":
        raise ValueError("a context name is SNMPv3 only")
    if len(args.context) > 32:
        raise ValueError("--context is at most 32 characters")
    if args.version != "3":
        if not secret:
            raise ValueError("give the community on stdin with --secret-stdin")
        return Credentials(args.version, community=secret)
    if not args.user:
        raise ValueError("SNMPv3 needs --user")
    if args.priv and not args.auth:
        raise ValueError("SNMPv3 privacy needs authentication (--auth)")
    keys = secret.split()
    auth_key = keys[0] if keys and args.auth else ""
    priv_key = keys[1] if len(keys) > 1 and args.priv else ""
    if (args.auth and not auth_key) or (args.priv and not priv_key):
        raise ValueError("give 'authkey privkey' on stdin with --secret-stdin")
    return Credentials("3", "", args.user, args.auth, auth_key, args.priv, priv_key, args.context)


def target_body(args: argparse.Namespace, creds: Credentials) -> SnmpTargetPut:
    """``netd snmp target add`` as the API's PUT body (the same model, the same rules)."""
    return SnmpTargetPut(
        address=args.address,
        port=args.port,
        version=creds.version,
        community=creds.community,
        user=creds.user,
        auth=creds.auth,
        auth_key=creds.auth_key,
        priv=creds.priv,
        priv_key=creds.priv_key,
        context=creds.context,
        profiles=args.profile or ["system", "if-mib"],
        interval=args.interval,
        tags=args.tag,
        enabled=not args.disabled,
    )


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "0x" + value.hex()
    return value


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        if args.action in ("get", "walk"):
            return await _read(args)
        if args.action == "trap-user":
            return await _trap_users(loaded, args)
        return await _targets(loaded, args)
    except (ValueError, ApiError) as exc:  # pydantic's ValidationError is a ValueError
        found = local.problem(exc)
        return local.fail(*found) if found else local.fail(str(exc), 2)
    except PolicyError as exc:
        return local.fail(str(exc), 2)


async def _read(args: argparse.Namespace) -> int:
    address = validate.ip_address(args.address)
    port = validate.port(args.port)
    wait = validate.seconds(args.timeout, validate.SNMP_TIMEOUT, "--timeout")
    oids = [validate.oid(o) for o in args.oids]
    creds = _credentials(args)
    gets = oids if args.action == "get" else []
    walks = oids if args.action == "walk" else []
    try:
        got = await read(address, port, creds, gets, walks, wait, 1)
    except PollError as exc:
        return local.fail(f"{exc} [{exc.reason}]", 1)
    if not got:
        return local.fail(f"{address} answered, with no value under {', '.join(oids)}", 1)
    return output.rows(args, [{"oid": o, "value": _value(v)} for o, v in got.items()], "")


async def _trap_users(loaded: Loaded, args: argparse.Namespace) -> int:
    creds = None
    if args.trap_user_action == "add":
        validate.trap_user(args.user)
        keys = sys.stdin.readline().split()
        if len(keys) < (2 if args.priv else 1):
            raise ValueError("give 'authpass privpass' (or 'authpass') on stdin")
        if any(len(k) < 8 for k in keys):
            raise ValueError("SNMPv3 passphrases are at least 8 characters (RFC 3414)")
        for k in keys:
            validate.secret(k, "passphrase")
        creds = Credentials(
            "3", "", args.user, args.auth, keys[0], args.priv, keys[1] if args.priv else ""
        )
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    try:
        sealer = make_sealer(loaded.config)
        if creds is not None:
            created = await store.put_trap_user(stores.pool, sealer, creds)
            print(f"{'added' if created else 'updated'} SNMPv3 trap user {creds.user}")
            return 0
        if args.trap_user_action == "list":
            users = await store.list_trap_users(stores.pool, sealer)
            found = [{"user": u.user, "auth": u.auth, "priv": u.priv} for u in users]
            return output.rows(args, found, "no SNMPv3 trap users")
        if await store.remove_trap_user(stores.pool, args.user):
            print(f"removed SNMPv3 trap user {args.user}")
            return 0
        return local.fail(f"no SNMPv3 trap user {args.user}", 1)
    finally:
        await close_stores(stores)


async def _targets(loaded: Loaded, args: argparse.Namespace) -> int:
    body = None
    if args.target_action == "add":
        validate.name(args.name, "target name")
        body = target_body(args, _credentials(args))
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    try:
        sealer = make_sealer(loaded.config)
        pool = stores.pool
        if body is not None:
            policies = local.LocalState(loaded.config, pool).policies
            target = target_from(args.name, body, policies)
            created = await store.put_target(pool, sealer, target)
            print(f"{'added' if created else 'updated'} SNMP target {args.name}")
            return 0
        if args.target_action == "list":
            found = [
                {
                    "name": t.name,
                    "address": t.address,
                    "port": t.port,
                    "version": t.credentials.version,
                    "profiles": list(t.profiles),
                    "interval": t.interval,
                    "tags": list(t.tags),
                    "enabled": t.enabled,
                }
                for t in await store.list_targets(pool, sealer)
            ]
            return output.rows(args, found, "no SNMP targets")
        if await store.remove_target(pool, args.name):
            print(f"removed SNMP target {args.name}")
            return 0
        return local.fail(f"no SNMP target {args.name}", 1)
    finally:
        await close_stores(stores)
