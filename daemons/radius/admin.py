"""``netd nas ...`` and ``netd subscriber ...``: manage NAS clients and subscribers.

Secrets are read from stdin or a file, never from the command line (where ``ps`` shows
them), and are sealed before they reach PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg

from daemons.core.config import Loaded
from daemons.core.lifecycle import (
    StartupError,
    close_stores,
    ensure_schema,
    make_sealer,
    open_stores,
)
from daemons.core.policies import PolicyError, load_policies
from daemons.core.secrets import Sealer
from daemons.radius import hashes, mschap
from daemons.radius.auth import normalize_mac
from daemons.radius.dictionary import Dictionary, DictionaryError, ReplyAttr
from daemons.radius.policy import load_policy
from daemons.radius.sessions import CoaError, act, plan_change
from daemons.store import accounting, pools
from daemons.store import radius as store
from daemons.store.cache import Cache


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nas = sub.add_parser("nas", help="manage RADIUS NAS clients")
    nas_sub = nas.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = nas_sub.add_parser("add", help="add a NAS client (secret from stdin or a file)")
    add.add_argument("name")
    add.add_argument("--address", required=True, help="source address or prefix (CIDR)")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the shared secret from the first line of stdin",
    )
    src.add_argument("--secret-file", type=Path, help="read the shared secret from a file")
    add.add_argument(
        "--vendor",
        default="generic",
        help="reply dialect: a [vendors.*] table in policies/radius "
        "(mikrotik, cisco, juniper, huawei, nokia, ericsson, wispr, generic)",
    )
    add.add_argument(
        "--no-require-message-authenticator",
        action="store_true",
        help="accept Access-Requests without Message-Authenticator (unsafe: "
        "BlastRADIUS, CVE-2024-3596)",
    )
    add.add_argument("--coa-port", type=int, default=3799)
    add.add_argument("--description", default="")
    nas_sub.add_parser("list", help="list NAS clients (secrets are not shown)")
    rm = nas_sub.add_parser("remove", help="remove a NAS client")
    rm.add_argument("name")

    subs = sub.add_parser("subscriber", help="manage RADIUS subscribers")
    s_sub = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("add", "set"):
        p = s_sub.add_parser(action, help=f"{action} a subscriber")
        p.add_argument("username")
        pw = p.add_mutually_exclusive_group()
        pw.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin",
        )
        pw.add_argument("--password-file", type=Path)
        pw.add_argument(
            "--nt-hash-stdin",
            action="store_true",
            help="read an NT hash (32 hex digits) from stdin instead of a password: "
            "enough for MS-CHAP, not for PAP, CHAP or EAP-MD5",
        )
        p.add_argument(
            "--hash",
            choices=["none", *hashes.SCHEMES],
            default="none",
            help="store a one-way hash instead of the sealed cleartext "
            "(PAP only: CHAP, MS-CHAP and EAP-MD5 need the cleartext)",
        )
        p.add_argument("--plan")
        p.add_argument("--state", choices=["active", "suspended", "disabled"])
        p.add_argument("--mac", help="bind to this Calling-Station-Id ('' to unbind)")
        p.add_argument("--ip", help="static Framed-IP-Address ('' to clear)")
    _add_session_parsers(sub)
    pl = sub.add_parser("pool", help="IP pools allocated by netd at Access-Accept")
    pls = pl.add_subparsers(dest="action", required=True, metavar="ACTION")
    pa = pls.add_parser("add", help="create a pool, or add addresses to it")
    pa.add_argument("name")
    pa.add_argument("ranges", nargs="+", metavar="CIDR")
    pa.add_argument("--lease", type=int, default=900, help="lease time in seconds")
    pls.add_parser("list", help="pools with their size and addresses leased")
    lst = s_sub.add_parser("list", help="list subscribers")
    lst.add_argument("--plan")
    lst.add_argument("--after", default="", help="start after this username (paging)")
    lst.add_argument("--limit", type=int, default=100)
    for action in ("show", "remove"):
        p = s_sub.add_parser(action, help=f"{action} one subscriber")
        p.add_argument("username")


def _add_session_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sess = sub.add_parser("session", help="live RADIUS sessions: list, show, disconnect, CoA")
    ss = sess.add_subparsers(dest="action", required=True, metavar="ACTION")
    sl = ss.add_parser("list", help="open sessions (with --closed, closed ones too)")
    sl.add_argument("--user")
    sl.add_argument("--nas")
    sl.add_argument("--ip")
    sl.add_argument("--closed", action="store_true")
    sl.add_argument("--limit", type=int, default=100)
    sh = ss.add_parser("show", help="one session")
    sh.add_argument("session_id")
    for action in ("disconnect", "coa"):
        p = ss.add_parser(
            action,
            help=f"send a {'Disconnect' if action == 'disconnect' else 'CoA'}"
            "-Request to the session's NAS (RFC 5176)",
        )
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("session_id", nargs="?")
        target.add_argument("--user", help="every open session of this user")
        p.add_argument("--retries", type=int, default=3)
        if action == "coa":
            p.add_argument("--plan", help="move the session to this plan's attributes")
            p.add_argument(
                "--attr",
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="an attribute to send, by dictionary name (repeatable)",
            )


def _read_secret(from_stdin: bool, path: Path | None, what: str) -> str | None:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
    elif path is not None:
        line = path.read_text(encoding="utf-8").rstrip("\r\n")
    else:
        return None
    if not line:
        raise ValueError(f"the {what} is empty")
    return line


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        stores = await open_stores(loaded.config)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return exc.status
    try:
        sealer = make_sealer(loaded.config)
        if args.command == "nas":
            return await _nas(stores.pool, sealer, args)
        if args.command == "session":
            return await _session(loaded, stores.pool, sealer, args)
        if args.command == "pool":
            if args.action == "add":
                added = await pools.add_pool(stores.pool, args.name, args.ranges, args.lease)
                print(f"pool {args.name}: {added} addresses added")
            else:
                for row in await pools.usage(stores.pool):
                    print(_json(row))
            return 0
        return await _subscriber(stores.pool, stores.redis, sealer, args)
    except (ValueError, OSError, CoaError, DictionaryError, PolicyError) as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return 2
    except asyncpg.UniqueViolationError as exc:
        print(f"netd: already exists: {exc.detail or exc}", file=sys.stderr)
        return 1
    finally:
        await close_stores(stores)


async def _nas(pool: asyncpg.Pool, sealer: Sealer, args: argparse.Namespace) -> int:
    if args.action == "add":
        secret = _read_secret(args.secret_stdin, args.secret_file, "shared secret")
        assert secret is not None
        network = ipaddress.ip_network(args.address, strict=False)
        if not 1 <= args.coa_port <= 65535:
            raise ValueError("--coa-port must be 1..65535")
        await store.add_nas(
            pool,
            store.NasRow(
                args.name,
                str(network),
                sealer.seal(secret.encode(), f"nas:{args.name}".encode()),
                args.vendor,
                not args.no_require_message_authenticator,
                args.coa_port,
                args.description,
            ),
        )
        print(f"added NAS {args.name} ({network}, vendor {args.vendor})")
        return 0
    if args.action == "list":
        for row in await store.list_nas(pool):
            print(
                json.dumps(
                    {
                        "name": row.name,
                        "network": row.network,
                        "vendor": row.vendor,
                        "require_message_authenticator": row.require_message_authenticator,
                        "coa_port": row.coa_port,
                        "description": row.description,
                    }
                )
            )
        return 0
    if await store.remove_nas(pool, args.name):
        print(f"removed NAS {args.name}")
        return 0
    print(f"netd: no NAS named {args.name}", file=sys.stderr)
    return 1


async def _subscriber(
    pool: asyncpg.Pool, cache: Cache, sealer: Sealer, args: argparse.Namespace
) -> int:
    if args.action == "list":
        for row in await store.list_subscribers(pool, args.after, args.limit, args.plan):
            print(json.dumps(store.public_view(row)))
        return 0
    if args.action in ("show", "remove"):
        if args.action == "remove":
            if await store.remove_subscriber(pool, cache, args.username):
                print(f"removed subscriber {args.username}")
                return 0
        else:
            found = await store.fetch_subscriber_db(pool, args.username)
            if found is not None:
                print(json.dumps(store.public_view(found), indent=2))
                return 0
        print(f"netd: no subscriber {args.username}", file=sys.stderr)
        return 1
    existing = await store.fetch_subscriber_db(pool, args.username)
    if args.action == "add" and existing is not None:
        print(f"netd: subscriber {args.username} already exists", file=sys.stderr)
        return 1
    if args.action == "set" and existing is None:
        print(f"netd: no subscriber {args.username}", file=sys.stderr)
        return 1
    row = existing or store.SubscriberRow(args.username)
    password = _read_secret(args.password_stdin, args.password_file, "password")
    if password is not None:
        row = credentials(row, password, args.hash, sealer)
    nt_hex = _read_secret(args.nt_hash_stdin, None, "NT hash")
    if nt_hex is not None:
        nt = bytes.fromhex(nt_hex.strip())
        if len(nt) != 16:
            raise ValueError("an NT hash is 16 octets (32 hex digits)")
        row = replace(
            row,
            password_hash=None,
            password_enc=None,
            nt_hash_enc=sealer.seal(nt, f"sub:{row.username}:nt".encode()),
        )
    if args.plan is not None:
        row = replace(row, plan=args.plan)
    if args.state is not None:
        row = replace(row, state=args.state)
    if args.mac is not None:
        row = replace(row, mac=normalize_mac(args.mac) if args.mac else None)
    if args.ip is not None:
        row = replace(row, framed_ip=str(ipaddress.ip_address(args.ip)) if args.ip else None)
    await store.upsert_subscriber(pool, cache, row)
    print(f"{'added' if args.action == 'add' else 'updated'} subscriber {args.username}")
    return 0


def credentials(
    row: store.SubscriberRow, password: str, scheme: str, sealer: Sealer
) -> store.SubscriberRow:
    """The row with new credentials: a one-way hash, or the sealed cleartext and NT hash."""
    if len(password.encode()) > 128:
        raise ValueError("RADIUS passwords are at most 128 octets (RFC 2865 §5.2)")
    ctx = f"sub:{row.username}:".encode()
    if scheme != "none":
        return replace(
            row,
            password_hash=hashes.make_hash(password, scheme),
            password_enc=None,
            nt_hash_enc=None,
        )
    return replace(
        row,
        password_hash=None,
        password_enc=sealer.seal(password.encode(), ctx + b"pw"),
        nt_hash_enc=sealer.seal(mschap.nt_password_hash(password), ctx + b"nt"),
    )


def _json(row: dict[str, object]) -> str:
    return json.dumps(row, default=str)


async def _session(
    loaded: Loaded, pool: asyncpg.Pool, sealer: Sealer, args: argparse.Namespace
) -> int:
    if args.action == "list":
        for row in await accounting.find_sessions(
            pool,
            username=args.user,
            nas=args.nas,
            ip=args.ip,
            include_closed=args.closed,
            limit=args.limit,
        ):
            print(_json(row))
        return 0
    if args.action == "show":
        found = await accounting.find_sessions(
            pool, unique_id=args.session_id, include_closed=True, limit=1
        )
        if not found:
            print(f"netd: no session {args.session_id}", file=sys.stderr)
            return 1
        print(json.dumps(found[0], default=str, indent=2))
        return 0
    targets = await accounting.find_sessions(pool, unique_id=args.session_id, username=args.user)
    if not targets:
        print("netd: no open session matches", file=sys.stderr)
        return 1
    config = loaded.config
    dictionary = Dictionary(config.radius.dictionaries)
    policy = load_policy(load_policies(config.policies.root, 1), dictionary)
    worst = 0
    for session in targets:
        extra: list[ReplyAttr] = []
        if args.action == "coa":
            nas = await store.get_nas(pool, str(session["nas"]))
            if args.plan:
                extra += plan_change(policy, args.plan, nas.vendor if nas else "generic")
            for item in args.attr:
                name, _, value = item.partition("=")
                if name not in dictionary:
                    raise ValueError(f"no attribute {name!r} in the dictionaries")
                extra.append(ReplyAttr(name, value))
        outcome = await act(
            pool,
            sealer,
            dictionary,
            policy,
            session,
            args.action,
            extra,
            actor=f"cli:{getpass.getuser()}",
            retries=args.retries,
        )
        print(
            _json(
                {
                    "session": session["unique_id"],
                    "user": session["username"],
                    "nas": session["nas"],
                    "result": outcome.result,
                    "error_cause": outcome.error_cause,
                    "attempts": outcome.attempts,
                }
            )
        )
        worst = max(worst, 0 if outcome.result == "ack" else 1)
    return worst
