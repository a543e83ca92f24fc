"""``netd token create|list|revoke``: API tokens, straight against the stores.

This is how the first admin token is made. The secret is printed once, on stdout, and only
its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import sys

import asyncpg
from pydantic import ValidationError

from daemons.api import local
from daemons.api import models as m
from daemons.core import output
from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
from daemons.store import api as api_store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tok = sub.add_parser("token", help="API tokens: create, list, revoke, rotate")
    ts = tok.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ts.add_parser("create", help="create a token and print its secret (once)")
    create.add_argument("--name", required=True, help="who or what uses it: noc-dashboard")
    create.add_argument("--role", required=True, choices=api_store.ROLES)
    create.add_argument(
        "--expires-in",
        type=int,
        metavar="SECONDS",
        help="the token stops working this many seconds from now (default: never)",
    )
    create.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="CIDR",
        help="a source address or prefix it may be used from (repeat; default: any)",
    )
    lst = ts.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--revoked", action="store_true", help="include revoked tokens")
    rv = ts.add_parser("revoke", help="revoke a token by name or id")
    rv.add_argument("name")
    ro = ts.add_parser(
        "rotate",
        help="give a live token a new secret (printed once); the old one stops working",
    )
    ro.add_argument("name", help="the token's name or id")


def _row(t: api_store.Token) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created_at": t.created_at.isoformat(),
        "created_by": t.created_by,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "networks": ",".join(t.networks),
        "rotated_at": t.rotated_at.isoformat() if t.rotated_at else None,
    }


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        return local.fail(str(exc), exc.status)
    pool = stores.pool
    st = local.LocalState(loaded.config, pool)
    try:
        if args.action == "create":
            try:
                body = m.TokenCreate(
                    name=args.name,
                    role=args.role,
                    expires_in=args.expires_in,
                    networks=args.network,
                )
            except ValidationError as exc:
                return local.fail(*(local.problem(exc) or (str(exc), 2)))
            try:
                row, secret = await api_store.create_token(
                    pool,
                    body.name,
                    body.role,
                    local.actor(),
                    m.token_expiry(body),
                    body.networks,
                )
            except asyncpg.UniqueViolationError:
                await local.audit(st, "tokens.create", body.name, 409, role=body.role)
                return local.fail(f"a token named {args.name} exists", 1)
            await local.audit(st, "tokens.create", body.name, 201, role=body.role)
            print(secret)
            print(
                f"created token {row.name} (id {row.id}, role {row.role}); the secret above "
                "is shown only now",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            found: list[dict[str, object]] = []
            after = 0
            while batch := await api_store.list_tokens(pool, after, 500, args.revoked):
                found += [_row(t) for t in batch]
                after = batch[-1].id
            return output.rows(args, found, "no tokens")
        if args.action == "rotate":
            rotated = await api_store.rotate_token(pool, args.name)
            await local.audit(st, "tokens.rotate", args.name, 404 if rotated is None else 201)
            if rotated is None:
                return local.fail(f"no live token {args.name}", 1)
            print(rotated[1])
            print(
                f"rotated token {rotated[0].name} (id {rotated[0].id}); the old secret no "
                "longer works, the new one above is shown only now",
                file=sys.stderr,
            )
            return 0
        revoked = await api_store.revoke_token(pool, args.name)
        await local.audit(st, "tokens.revoke", args.name, 404 if revoked is None else 204)
        if revoked is None:
            return local.fail(f"no live token {args.name}", 1)
        print(f"revoked token {revoked.name} (id {revoked.id})")
        return 0
    finally:
        await close_stores(stores)
