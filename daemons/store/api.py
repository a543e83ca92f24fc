"""Store verbs for the admin API: tokens, the audit log, and plans managed through the API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

ROLES = ("viewer", "operator", "admin")
TOKEN_PREFIX = "netd_"  # noqa: S105 - a marker, not a secret
PLANS_CHANNEL = "netd_plans_changed"


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    role: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = None
    networks: tuple[str, ...] = ()  # CIDR; empty: any source
    rotated_at: datetime | None = None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    """``netd_`` and 256 random bits, base64url: easy to spot in a leak scanner."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


_TOKEN_COLUMNS = (
    "id, name, role, created_at, created_by, last_used_at, revoked_at, expires_at, "  # noqa: S105
    "networks::text[] AS networks, rotated_at"
)


def _token(row: asyncpg.Record) -> Token:
    d = dict(row)
    d["networks"] = tuple(d["networks"] or ())
    return Token(**d)


async def create_token(
    pool: asyncpg.Pool,
    name: str,
    role: str,
    created_by: str,
    expires_at: datetime | None = None,
    networks: Sequence[str] = (),
) -> tuple[Token, str]:
    """A new token: its row and the secret, which is never stored or shown again. It
    stops working at ``expires_at`` (None: never) and outside ``networks`` (CIDR, already
    validated; empty: anywhere). Raises asyncpg.UniqueViolationError for a name in use,
    ValueError for a bad role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = new_token()
    row = await pool.fetchrow(
        "INSERT INTO api_tokens (name, role, token_hash, created_by, expires_at, networks) "
        f"VALUES ($1, $2, $3, $4, $5, $6::text[]::cidr[]) RETURNING {_TOKEN_COLUMNS}",
        name,
        role,
        hash_token(secret),
        created_by,
        expires_at,
        list(networks),
    )
    assert row is not None
    return _token(row), secret


async def lookup_token(pool: asyncpg.Pool, token: str) -> Token | None:
    """The live (not revoked) token with this secret, or None."""
    row = await pool.fetchrow(
        f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    return _token(row) if row else None


async def rotate_token(pool: asyncpg.Pool, name_or_id: str) -> tuple[Token, str] | None:
    """A new secret for a live token (by name or numeric id), same name, role, expiry and
    networks; the old secret stops working (at once here, within api.token_cache_ttl in
    the other API processes). The row and the new secret, or None if no live token."""
    digits = name_or_id.isascii() and name_or_id.isdigit()
    token_id = int(name_or_id) if digits and len(name_or_id) < 10 else None
    secret = new_token()
    row = await pool.fetchrow(
        f"UPDATE api_tokens SET token_hash = $3, rotated_at = now() WHERE (name = $1 OR id = $2) "
        f"AND revoked_at IS NULL RETURNING {_TOKEN_COLUMNS}",
        name_or_id,
        token_id,
        hash_token(secret),
    )
    return (_token(row), secret) if row else None


async def touch_tokens(pool: asyncpg.Pool, ids: list[int]) -> None:
    await pool.execute(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = ANY($1::integer[])", ids
    )


async def revoke_token(pool: asyncpg.Pool, name_or_id: str) -> Token | None:
    """Revoke by name (or numeric id); the revoked token, or None if there was none live."""
    digits = name_or_id.isascii() and name_or_id.isdigit()  # "²".isdigit(), yet no int
    token_id = int(name_or_id) if digits and len(name_or_id) < 10 else None
    row = await pool.fetchrow(
        f"UPDATE api_tokens SET revoked_at = now() WHERE (name = $1 OR id = $2) "
        f"AND revoked_at IS NULL RETURNING {_TOKEN_COLUMNS}",
        name_or_id,
        token_id,
    )
    return _token(row) if row else None


async def list_tokens(
    pool: asyncpg.Pool, after: int = 0, limit: int = 100, include_revoked: bool = False
) -> list[Token]:
    rows = await pool.fetch(
        f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id > $1 "
        "AND ($2 OR revoked_at IS NULL) ORDER BY id LIMIT $3",
        after,
        include_revoked,
        limit,
    )
    return [_token(r) for r in rows]


# --- audit -------------------------------------------------------------------------------


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """``value`` with every NUL and lone surrogate replaced by U+FFFD: PostgreSQL text and
    jsonb cannot hold them, and an audit row must not be lost because a client sent one (in
    a path, the name of a JSON key)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


async def append_audit(
    pool: asyncpg.Pool,
    *,
    actor: str,
    role: str,
    method: str,
    path: str,
    action: str,
    target: str,
    status: int,
    result: str,
    request_id: str,
    details: dict[str, Any] | None = None,
) -> int:
    audit_id: int = await pool.fetchval(
        "INSERT INTO audit_log (actor, role, method, path, action, target, status, result, "
        "request_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) "
        "RETURNING id",
        *(_storable(v) for v in (actor, role, method, path, action, target)),
        status,
        result,
        _storable(request_id),
        json.dumps(_storable(json.loads(json.dumps(details or {}, default=str)))),
    )
    return audit_id


async def list_audit(
    pool: asyncpg.Pool,
    *,
    before: int | None,
    limit: int,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the last id of the previous page."""
    rows = await pool.fetch(
        "SELECT id, ts, actor, role, method, path, action, target, status, result, "
        "request_id, details FROM audit_log WHERE ($1::bigint IS NULL OR id < $1) "
        "AND ($2::text IS NULL OR actor = $2) AND ($3::text IS NULL OR action = $3) "
        "ORDER BY id DESC LIMIT $4",
        before,
        actor,
        action,
        limit,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


# --- plans managed through the API ---------------------------------------------------------


async def list_plans(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT name, spec FROM radius_plans ORDER BY name")
    return {r["name"]: json.loads(r["spec"]) for r in rows}


async def put_plan(pool: asyncpg.Pool, name: str, spec: dict[str, Any]) -> bool:
    """Create or replace a plan; True if it was created. Notifies the radius daemons."""
    return await _put_spec(pool, "radius_plans", PLANS_CHANNEL, name, spec)


async def _put_spec(
    pool: asyncpg.Pool, table: str, channel: str, name: str, spec: dict[str, Any]
) -> bool:
    """Create or replace a named spec (a plan, a realm); True if created. NOTIFY."""
    async with pool.acquire() as conn, conn.transaction():
        created: bool = await conn.fetchval(
            f"INSERT INTO {table} (name, spec) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now() "
            "RETURNING (xmax = 0)",
            name,
            json.dumps(spec),
        )
        await conn.execute(f"NOTIFY {channel}")
    return created


async def _delete_spec(pool: asyncpg.Pool, table: str, channel: str, name: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(f"DELETE FROM {table} WHERE name = $1", name)
        await conn.execute(f"NOTIFY {channel}")
    return bool(status.endswith(" 1"))


# --- realms managed through the API (issue 28) ---------------------------------------------

REALMS_CHANNEL = "netd_realms_changed"


async def list_realms(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT name, spec FROM radius_realms ORDER BY name")
    return {r["name"]: json.loads(r["spec"]) for r in rows}


async def put_realm(pool: asyncpg.Pool, name: str, spec: dict[str, Any]) -> bool:
    """Create or replace a realm; True if created. Notifies the radius daemons."""
    return await _put_spec(pool, "radius_realms", REALMS_CHANNEL, name, spec)


async def delete_realm(pool: asyncpg.Pool, name: str) -> bool:
    return await _delete_spec(pool, "radius_realms", REALMS_CHANNEL, name)


async def delete_plan(pool: asyncpg.Pool, name: str) -> bool:
    return await _delete_spec(pool, "radius_plans", PLANS_CHANNEL, name)
