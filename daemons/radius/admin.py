"""``netd nas|subscriber|session|pool ...``: NAS clients, subscribers, sessions and IP pools
on the stores.

Each command builds the request model of the HTTP API and calls the same operation in
``daemons/api/ops.py`` (through ``daemons/api/local.py``), so it accepts and refuses what
the API does, with the same message, and writes the same audit row (actor ``cli:<user>``).
Secrets are read from stdin or a file, never from the command line (where ``ps`` shows
them), and are sealed before they reach PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemons.api import local, ops
from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.core import output, validate
from daemons.core.config import Loaded
from daemons.core.lifecycle import (
    StartupError,
    close_stores,
    ensure_schema,
    open_stores,
)
from daemons.core.policies import PolicyError
from daemons.radius import admin_realms, hashes
from daemons.radius.credentials import credentials, nt_hash
from daemons.radius.dictionary import DictionaryError
from daemons.store import accounting
from daemons.store import radius as store

__all__ = ["add_parsers", "credentials", "run"]

# The commands that change something, by the API operation they are (their audit action).
AUDITED = {
    **admin_realms.AUDITED,
    ("nas", "add"): "nas.create",
    ("nas", "set"): "nas.update",
    ("nas", "remove"): "nas.delete",
    ("subscriber", "add"): "subscribers.create",
    ("subscriber", "set"): "subscribers.update",
    ("subscriber", "remove"): "subscribers.delete",
    ("session", "disconnect"): "sessions.disconnect",
    ("session", "coa"): "sessions.coa",
    ("session", "clear"): "sessions.clear",
    ("pool", "add"): "pools.add",
    ("pool", "remove"): "pools.delete",
}
SESSION_HELP = "netd's session id (Acct-Unique-Session-Id) or the NAS's Acct-Session-Id"


def _secret_args(p: argparse.ArgumentParser, required: bool) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the shared secret from the first line of stdin",
    )
    src.add_argument("--secret-file", type=Path, help="read the shared secret from a file")


def _nas_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nas = sub.add_parser("nas", help="manage RADIUS NAS clients")
    nas_sub = nas.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = nas_sub.add_parser("add", help="add a NAS client (secret from stdin or a file)")
    add.add_argument("name")
    add.add_argument("--address", required=True, help="source address or prefix (CIDR)")
    _secret_args(add, required=True)
    vendor_help = (
        "reply dialect: a [vendors.*] table in policies/radius "
        "(mikrotik, cisco, juniper, huawei, nokia, ericsson, wispr, generic)"
    )
    add.add_argument("--vendor", default="generic", help=vendor_help)
    add.add_argument(
        "--no-require-message-authenticator",
        action="store_true",
        help="accept Access-Requests without Message-Authenticator (unsafe: "
        "BlastRADIUS, CVE-2024-3596)",
    )
    add.add_argument("--coa-port", type=int, default=3799, help="default 3799")
    add.add_argument("--description", default="")
    add.add_argument(
        "--tls-identity",
        default="",
        help="RadSec: the NAS's client certificate (sha256:<hex>, SAN DNS name or CN)",
    )
    st = nas_sub.add_parser(
        "set", help="change a NAS client: rotate its secret, vendor, address, CoA port..."
    )
    st.add_argument("name")
    st.add_argument("--address", help="source address or prefix (CIDR)")
    _secret_args(st, required=False)
    st.add_argument("--vendor", help=vendor_help)
    ma = st.add_mutually_exclusive_group()
    ma.add_argument(
        "--require-message-authenticator",
        dest="require_ma",
        action="store_const",
        const=True,
        help="refuse Access-Requests without Message-Authenticator (the default for a new NAS)",
    )
    ma.add_argument(
        "--no-require-message-authenticator",
        dest="require_ma",
        action="store_const",
        const=False,
        help="accept them (unsafe: BlastRADIUS, CVE-2024-3596)",
    )
    st.add_argument("--coa-port", type=int)
    st.add_argument("--description")
    st.add_argument("--tls-identity", help='RadSec client certificate; "" stops RadSec')
    nas_sub.add_parser("list", help="list NAS clients (secrets are not shown)")
    rm = nas_sub.add_parser("remove", help="remove a NAS client")
    rm.add_argument("name")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _nas_parsers(sub)
    admin_realms.add_parsers(sub)
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
        p.add_argument("--plan", help="a plan of policies/radius or of the API")
        p.add_argument("--state", choices=["active", "suspended", "disabled"])
        p.add_argument("--mac", help="bind to this Calling-Station-Id ('' to unbind)")
        p.add_argument("--ip", help="static Framed-IP-Address, IPv4 ('' to clear)")
        p.add_argument("--ipv6", help="static Framed-IPv6-Address (RFC 6911; '' to clear)")
        p.add_argument(
            "--ipv6-prefix", help="static Framed-IPv6-Prefix, the WAN prefix (RFC 3162; '' clears)"
        )
        p.add_argument(
            "--delegated-prefix", help="static Delegated-IPv6-Prefix (RFC 4818; '' to clear)"
        )
        p.add_argument("--ipv6-pool", help="Framed-IPv6-Pool, a pool on the NAS ('' to clear)")
        p.add_argument(
            "--delegated-pool", help="Delegated-IPv6-Prefix-Pool, a pool on the NAS ('' clears)"
        )
    lst = s_sub.add_parser("list", help="list subscribers")
    lst.add_argument("--plan")
    lst.add_argument("--state", choices=["active", "suspended", "disabled"])
    lst.add_argument("--after", default="", help="start after this username (paging)")
    lst.add_argument("--limit", type=int, default=100)
    for action in ("show", "remove"):
        p = s_sub.add_parser(action, help=f"{action} one subscriber")
        p.add_argument("username")
    _session_parsers(sub)
    _auth_log_parser(sub)
    pl = sub.add_parser("pool", help="IP pools allocated by netd at Access-Accept")
    pls = pl.add_subparsers(dest="action", required=True, metavar="ACTION")
    pa = pls.add_parser("add", help="create a pool, or add addresses to it")
    pa.add_argument("name")
    pa.add_argument("ranges", nargs="+", metavar="CIDR", help="IPv4 addresses or prefixes")
    pa.add_argument("--lease", type=int, default=900, help="lease time in seconds")
    pls.add_parser("list", help="pools with their size and addresses leased")
    p6 = pls.add_parser(
        "add6", help="create an IPv6 pool: per-subscriber prefixes leased at Access-Accept"
    )
    p6.add_argument("name")
    p6.add_argument("prefix", help="the pool's prefix, e.g. 2001:db8::/40")
    p6.add_argument("--length", type=int, required=True, help="each subscriber's: 56, 60, 64")
    p6.add_argument("--lease", type=int, default=900, help="lease time in seconds")
    pls.add_parser("list6", help="IPv6 pools with their capacity and prefixes leased")
    pr = pls.add_parser("remove", help="remove a pool and its addresses")
    pr.add_argument("name")
    pr.add_argument("--force", action="store_true", help="even while addresses are leased")


def _auth_log_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    al = sub.add_parser(
        "auth-log",
        help="the authentication history: every Accept and Reject, newest first",
        description="Every Access-Accept and Access-Reject netd answered (radius.auth_log), "
        "newest first, with the reason of a reject and the session a login started.",
    )
    al.set_defaults(action="list")
    al.add_argument("user", nargs="?", help="only this User-Name")
    al.add_argument("--nas", help="only this NAS client")
    al.add_argument("--since", help="from this time (ISO 8601, e.g. 2026-12-07T09:00Z)")
    al.add_argument("--until", help="before this time (ISO 8601)")
    al.add_argument("--result", choices=["accept", "reject"])
    al.add_argument("--before", type=int, help="older than this record id (paging)")
    al.add_argument("--limit", type=int, default=100)


def _session_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sess = sub.add_parser("session", help="RADIUS sessions: list, show, disconnect, CoA, clear")
    ss = sess.add_subparsers(dest="action", required=True, metavar="ACTION")
    sl = ss.add_parser("list", help="open sessions (with --closed, closed ones too)")
    sl.add_argument("--user")
    sl.add_argument("--nas")
    sl.add_argument("--ip")
    sl.add_argument("--closed", action="store_true")
    sl.add_argument("--limit", type=int, default=100)
    sh = ss.add_parser("show", help="one session, open or closed")
    sh.add_argument("session_id", metavar="SESSION", help=SESSION_HELP)
    sh.add_argument("--nas", help="the NAS, when an Acct-Session-Id is on several")
    for action, text in (
        ("disconnect", "send a Disconnect-Request to the session's NAS (RFC 5176)"),
        ("coa", "send a CoA-Request to the session's NAS (RFC 5176)"),
        ("clear", "close a session the NAS never stopped: a synthetic Stop (Admin-Reset)"),
    ):
        p = ss.add_parser(action, help=text)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("session_id", nargs="?", metavar="SESSION", help=SESSION_HELP)
        target.add_argument("--user", help="every open session of this user")
        p.add_argument("--nas", help="the NAS, when an Acct-Session-Id is on several")
        if action != "clear":
            p.add_argument("--retries", type=int, help="1 to 5 (default: api.coa_retries)")
        if action == "coa":
            p.add_argument("--plan", help="move the session to this plan's attributes")
            p.add_argument(
                "--attr",
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="an attribute to send, by dictionary name (repeatable)",
            )


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        stores = await open_stores(loaded.config)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    action = AUDITED.get((args.command, args.action))
    status = 200
    try:
        st = local.LocalState(loaded.config, stores.pool, stores.cache)
        try:
            return await _dispatch(st, args)
        except (ApiError, validate.Invalid, ValueError) as exc:  # ValidationError is one
            found = local.problem(exc)
            message, code = found if found else (str(exc), 2)
            status = exc.status if isinstance(exc, ApiError) else 422
            return local.fail(message, code)
        except (OSError, PolicyError, DictionaryError) as exc:
            status = 500
            return local.fail(str(exc), 2)
        finally:
            if action is not None:
                await local.audit(st, action, _target(args), status)
    finally:
        await close_stores(stores)


def _target(args: argparse.Namespace) -> str:
    for key in ("name", "username", "session_id", "user"):
        value = getattr(args, key, None)
        if value:
            return str(value)
    return ""


async def _dispatch(st: local.LocalState, args: argparse.Namespace) -> int:
    if args.command == "realm":  # issue 28
        return await admin_realms.dispatch(st, args)
    if args.command == "nas":
        return await _nas(st, args)
    if args.command == "session":
        return await _session(st, args)
    if args.command == "pool":
        return await _pool(st, args)
    if args.command == "auth-log":
        return await _auth_log(st, args)
    return await _subscriber(st, args)


AUTH_LOG_COLUMNS = (
    "id",
    "at",
    "username",
    "nas",
    "nas_port",
    "calling_station",
    "method",
    "result",
    "reason",
    "plan",
    "session",
)


def _when(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise validate.Invalid(f"{what} {validate.show(text)} is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _auth_log(st: local.LocalState, args: argparse.Namespace) -> int:
    limit = validate.bounded(args.limit, validate.LIMIT, "--limit")
    rows = await ops.list_auth_log(
        st,
        user=args.user,
        nas=args.nas,
        since=_when(args.since, "--since"),
        until=_when(args.until, "--until"),
        result=args.result,
        before_id=args.before,
        limit=limit,
    )
    return output.rows(
        args,
        [r.model_dump(mode="json") for r in rows],
        "no authentications recorded",
        AUTH_LOG_COLUMNS,
    )


def nas_view(row: store.NasRow) -> dict[str, Any]:
    return m.Nas(
        name=row.name,
        network=row.network,
        vendor=row.vendor,
        require_message_authenticator=row.require_message_authenticator,
        coa_port=row.coa_port,
        description=row.description,
        tls_identity=row.tls_identity,
    ).model_dump()


def nas_update(args: argparse.Namespace) -> m.NasUpdate:
    """The fields ``netd nas set`` changes, as the API's PATCH body."""
    secret = local.read_secret(args.secret_stdin, args.secret_file, "shared secret")
    fields = {
        "network": args.address,
        "secret": secret,
        "vendor": args.vendor,
        "require_message_authenticator": args.require_ma,
        "coa_port": args.coa_port,
        "description": args.description,
        "tls_identity": args.tls_identity,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        raise validate.Invalid(
            "nothing to change: give --address, --secret-stdin/--secret-file, --vendor, "
            "--coa-port, --description, --tls-identity or "
            "--[no-]require-message-authenticator"
        )
    return m.NasUpdate(**given)


def nas_create(args: argparse.Namespace) -> m.NasCreate:
    return m.NasCreate(
        name=args.name,
        network=args.address,
        secret=local.read_secret(args.secret_stdin, args.secret_file, "shared secret"),
        vendor=args.vendor,
        require_message_authenticator=not args.no_require_message_authenticator,
        coa_port=args.coa_port,
        description=args.description,
        tls_identity=args.tls_identity,
    )


async def _nas(st: local.LocalState, args: argparse.Namespace) -> int:
    if args.action == "add":
        row = await ops.create_nas(st, nas_create(args))
        print(f"added NAS {row.name} ({row.network}, vendor {row.vendor})")
        return 0
    if args.action == "set":
        body = nas_update(args)
        row = await ops.update_nas(st, args.name, body)
        changed = ", ".join(sorted(body.model_dump(exclude_unset=True)))
        print(f"updated NAS {row.name} ({changed})")
        return 0
    if args.action == "list":
        rows = [nas_view(r) for r in await store.list_nas(st.pool)]
        return output.rows(args, rows, "no NAS clients")
    await ops.delete_nas(st, args.name)
    print(f"removed NAS {args.name}")
    return 0


def subscriber_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The API body of ``netd subscriber add|set`` (the password read from stdin or a
    file; an NT hash is not part of it: see ``_subscriber``)."""
    body: dict[str, Any] = {}
    password = local.read_secret(args.password_stdin, args.password_file, "password")
    if password is not None:
        body["password"] = password
        body["hash"] = args.hash
    for key, value in (
        ("plan", args.plan),
        ("state", args.state),
        ("mac", args.mac),
        ("framed_ip", args.ip),
        ("framed_ipv6_address", args.ipv6),
        ("framed_ipv6_prefix", args.ipv6_prefix),
        ("delegated_ipv6_prefix", args.delegated_prefix),
        ("framed_ipv6_pool", args.ipv6_pool),
        ("delegated_ipv6_pool", args.delegated_pool),
    ):
        if value is not None:
            body[key] = value
    return body


async def _subscriber(st: local.LocalState, args: argparse.Namespace) -> int:
    if args.action == "list":
        limit = validate.bounded(args.limit, validate.LIMIT, "--limit")
        rows = await ops.list_subscribers(st, args.after, limit, args.plan, args.state)
        return output.rows(args, [store.public_view(r) for r in rows], "no subscribers")
    if args.action == "show":
        return output.record(args, store.public_view(await ops.get_subscriber(st, args.username)))
    if args.action == "remove":
        await ops.delete_subscriber(st, args.username)
        print(f"removed subscriber {args.username}")
        return 0
    fields = subscriber_fields(args)
    then = None
    nt_hex = local.read_secret(args.nt_hash_stdin, None, "NT hash")
    if nt_hex is not None:
        nt_hash(store.SubscriberRow(args.username), nt_hex, st.sealer)  # refuse it before

        def then(row: store.SubscriberRow) -> store.SubscriberRow:
            return nt_hash(row, nt_hex, st.sealer)

    if args.action == "add":
        await ops.create_subscriber(st, m.SubscriberCreate(username=args.username, **fields), then)
        print(f"added subscriber {args.username}")
    else:
        await ops.update_subscriber(st, args.username, m.SubscriberFields(**fields), then)
        print(f"updated subscriber {args.username}")
    return 0


async def _pool(st: local.LocalState, args: argparse.Namespace) -> int:
    if args.action == "add":
        added, _created = await ops.add_pool(
            st, m.PoolAdd(name=args.name, ranges=args.ranges, lease_time=args.lease)
        )
        taken = f", {added.taken} already in a pool" if added.taken else ""
        print(
            f"pool {added.name}: {added.added} addresses added{taken}; "
            f"{added.size} in all, {added.leased} leased"
        )
        return 0
    if args.action == "add6":
        made = await ops.add_pool6(
            st,
            args.name,
            m.Pool6Add(prefix=args.prefix, length=args.length, lease_time=args.lease),
        )
        print(
            f"IPv6 pool {made.name}: {made.prefix} in /{made.length}s, "
            f"{made.capacity} prefixes, {made.leased} leased"
        )
        return 0
    if args.action == "list6":
        return output.rows(args, [p.model_dump() for p in await ops.list_pools6(st)], "no pools")
    if args.action == "remove":
        gone = await ops.remove_pool(st, args.name, args.force)
        print(f"removed pool {gone.name} ({gone.size} addresses, {gone.leased} were leased)")
        return 0
    pools = [p.model_dump() for p in await ops.list_pools(st)]
    return output.rows(args, pools, "no pools")


SESSION_COLUMNS = (
    "unique_id",
    "username",
    "nas",
    "framed_ip",
    "acct_session_id",
    "started_at",
    "updated_at",
    "input_octets",
    "output_octets",
)


async def _session(st: local.LocalState, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = await accounting.find_sessions(
            st.pool,
            username=args.user,
            nas=args.nas,
            ip=ops.ip_filter(args.ip),
            include_closed=args.closed,
            limit=validate.bounded(args.limit, validate.LIMIT, "--limit"),
        )
        columns = [*SESSION_COLUMNS, "stopped_at"] if args.closed else SESSION_COLUMNS
        empty = "no sessions" if args.closed else "no open sessions"
        return output.rows(args, found, empty, columns)
    if args.action == "show":
        return output.record(args, await ops.find_session(st, args.session_id, args.nas))
    if args.session_id:
        targets = [args.session_id]
    else:
        found = await accounting.find_sessions(
            st.pool, username=args.user, nas=args.nas, limit=validate.LIMIT[1]
        )
        targets = [str(s["unique_id"]) for s in found]
        if not targets:
            raise ApiError(404, f"no open session of {args.user}")
    if args.action == "clear":
        for key in targets:
            row = await ops.clear_session(st, key, args.nas, local.actor())
            print(
                f"cleared session {row['unique_id']} of {row['username'] or '-'} on "
                f"{row['nas']}: Stop (Admin-Reset) at {row['updated_at']:%Y-%m-%d %H:%M:%S%z}"
            )
        return 0
    return await _act(st, args, targets)


async def _act(st: local.LocalState, args: argparse.Namespace, targets: list[str]) -> int:
    attributes: dict[str, str | int] = {}
    for item in getattr(args, "attr", []):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise validate.Invalid(f"--attr {validate.show(item)} is not NAME=VALUE")
        attributes[name] = value
    body = m.CoaRequest(plan=getattr(args, "plan", None), attributes=attributes)
    retries = m.DisconnectRequest(retries=args.retries).retries
    results = []
    for key in targets:
        session, outcome = await ops.session_action(
            st,
            local.actor(),
            key,
            args.action,
            body.plan,
            body.attributes,
            retries,
            args.nas if args.session_id else None,
        )
        results.append(
            {
                "session": session["unique_id"],
                "user": session["username"],
                "nas": session["nas"],
                "result": outcome.result,
                "error_cause": outcome.error_cause,
                "attempts": outcome.attempts,
            }
        )
    output.rows(args, results, "no sessions")
    failed = sum(1 for r in results if r["result"] != "ack")
    if failed:
        return local.fail(f"{failed} of {len(results)} sessions not acknowledged by the NAS", 1)
    return 0
