"""``netd token create|list|revoke``: API tokens, straight against the stores.

This is how the first admin token is made. The secret is printed once, on stdout, and only
its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

import asyncpg

from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
from daemons.store import api as api_store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tok = sub.add_parser("token", help="API tokens: create, list, revoke")
    ts = tok.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ts.add_parser("create", help="create a token and print its secret (once)")
    create.add_argument("--name", required=True, help="who or what uses it: noc-dashboard")
    create.add_argument("--role", required=True, choices=api_store.ROLES)
    lst = ts.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--revoked", action="store_true", help="include revoked tokens")
    rv = ts.add_parser("revoke", help="revoke a token by name or id")
    rv.add_argument("name")


def _row(t: api_store.Token) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created_at": t.created_at.isoformat(),
        "created_by": t.created_by,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    try:
        stores = await open_stores(loaded.config, with_redis=False)
        await ensure_schema(stores.pool, loaded.config.database.migrate_on_start)
    except StartupError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return exc.status
    pool = stores.pool
    try:
        if args.action == "create":
            try:
                row, secret = await api_store.create_token(
                    pool, args.name, args.role, f"cli:{getpass.getuser()}"
                )
            except asyncpg.UniqueViolationError:
                print(f"netd: a token named {args.name} exists", file=sys.stderr)
                return 1
            except asyncpg.CheckViolationError:
                print("netd: a token name is 1 to 64 of A-Z a-z 0-9 _ . @ -", file=sys.stderr)
                return 2
            print(secret)
            print(
                f"created token {row.name} (id {row.id}, role {row.role}); the secret above "
                "is shown only now",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            after = 0
            while batch := await api_store.list_tokens(pool, after, 500, args.revoked):
                for t in batch:
                    print(json.dumps(_row(t)))
                after = batch[-1].id
            return 0
        revoked = await api_store.revoke_token(pool, args.name)
        if revoked is None:
            print(f"netd: no live token {args.name}", file=sys.stderr)
            return 1
        print(f"revoked token {revoked.name} (id {revoked.id})")
        return 0
    finally:
        await close_stores(stores)
