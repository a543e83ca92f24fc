"""Bearer tokens, roles and the per-token rate limit.

A token is looked up by its SHA-256 in PostgreSQL and the answer cached in the process for
``api.token_cache_ttl`` seconds (hits and misses), so a request costs no PostgreSQL round
trip. The rate limit is a GCRA token bucket kept in Redis, shared by every API process.

A request carries its token in ``Authorization: Bearer`` or, from the NOC console's
sign-in, in the ``netd_console`` cookie (HttpOnly, SameSite=Strict). Both go through
``admit``: the same lookup, rate limit and roles. A cookie only reads: a write that comes
with the cookie alone is refused (after the role check, so a viewer hears it lacks the
role), so no page of another site can make a signed-in browser change anything.
"""

from __future__ import annotations

import ipaddress
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemons.api.errors import ApiError
from daemons.store import api as api_store
from daemons.store.cache import Cache

RANK = {"viewer": 0, "operator": 1, "admin": 2}
COOKIE = "netd_console"  # the console's sign-in: the token itself, HttpOnly, SameSite=Strict
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Declares the bearer scheme in the OpenAPI document (Swagger UI's Authorize button);
# ``admit`` reads the header itself.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token: `netd token create --role viewer|operator|admin --name NAME`.",
)
_CACHE_MAX = 10_000

# GCRA (the generic cell rate algorithm): one key per token holding the theoretical
# arrival time in ms. Returns 0 if the request is allowed, else the ms to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - tolerance > now then
  return math.ceil(new_tat - tolerance - now)
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    expires_at: float | None = None  # epoch seconds; None: never
    networks: tuple[Network, ...] = ()  # the sources it may be used from; empty: any

    def refusal(self, now: float, client: str | None) -> tuple[str, str] | None:
        """Why this token may not be used now from ``client``: (reason, message) with
        reason ``expired`` or ``network``; None when it may."""
        if self.expires_at is not None and now >= self.expires_at:
            when = datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds")
            return "expired", f"the token {self.name} expired at {when}"
        if self.networks:
            try:
                address = ipaddress.ip_address(client or "")
            except ValueError:
                address = None
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if address is None or not any(
                address.version == n.version and address in n for n in self.networks
            ):
                return "network", f"the token {self.name} may not be used from {client or '?'}"
        return None

    @property
    def actor(self) -> str:
        return f"api:{self.name}"

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class TokenRefused(ApiError):
    """A known token used past its expiry or from outside its networks (401)."""

    def __init__(self, principal: Principal, reason: str, message: str) -> None:
        super().__init__(401, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self.principal = principal
        self.reason = reason


class Authenticator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: Cache,
        ttl: float,
        rate_limit: float,
        rate_burst: int,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.ttl = ttl
        self._known: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._interval_ms = 1000.0 / rate_limit
        self._tolerance_ms = self._interval_ms * rate_burst
        self._gcra = cache.client.register_script(_GCRA)
        self._used: set[int] = set()
        self._last_touch = time.monotonic()
        # mutual TLS: the HTTP listener's verified client certificates by (ip, port), and
        # certificate subject CN -> role (api.client_cert_roles)
        self.peer_certs: dict[tuple[str, int], dict[str, Any]] = {}
        self.cert_roles: dict[str, str] = {}

    def certificate_principal(self, cn: str) -> Principal:
        """The principal of a verified client certificate with subject ``cn``. Raises
        ApiError 401 when the CN is mapped to no role."""
        role = self.cert_roles.get(cn)
        if role is None:
            raise ApiError(
                401,
                f"the client certificate (CN={cn}) is not mapped to a role "
                "(api.client_cert_roles), and no bearer token was given",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # a negative id of its own: its own rate-limit bucket, never a token row
        return Principal(-(zlib.crc32(cn.encode()) + 1), f"cert:{cn}", role)

    def http_certificate(self, request: Request) -> str | None:
        """The subject CN of the HTTP client's verified certificate, if it gave one."""
        if not self.peer_certs or request.client is None:
            return None
        cert = self.peer_certs.get((request.client.host, request.client.port))
        return subject_cn(cert) if cert else None

    def forget(self) -> None:
        """Drop cached lookups (after a revoke in this process)."""
        self._known.clear()

    async def principal(self, token: str) -> Principal | None:
        digest = api_store.hash_token(token)
        now = time.monotonic()
        hit = self._known.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await api_store.lookup_token(self.pool, token)
        found = (
            Principal(
                row.id,
                row.name,
                row.role,
                row.expires_at.timestamp() if row.expires_at else None,
                tuple(ipaddress.ip_network(n, strict=False) for n in row.networks),
            )
            if row
            else None
        )
        self._known[digest] = (now + self.ttl, found)
        self._known.move_to_end(digest)
        while len(self._known) > _CACHE_MAX:
            self._known.popitem(last=False)
        return found

    async def retry_after(self, principal: Principal) -> float:
        """0 if the token may make this request now, else the seconds to wait."""
        wait_ms = await self._gcra(
            keys=[self.cache.key("rl:" + str(principal.token_id), "api")],
            args=[repr(self._interval_ms), repr(self._tolerance_ms)],
        )
        return int(wait_ms) / 1000.0

    async def authenticate(self, token: str | None, client: str | None = None) -> Principal:
        """The principal of a bearer token used from ``client`` (an address). Raises
        ApiError 401 (none, unknown, revoked), TokenRefused 401 (expired, or from outside
        the token's networks)."""
        if token is None:
            raise ApiError(
                401,
                "a bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await self.principal(token) if len(token) <= 256 else None
        if found is None:
            raise ApiError(
                401,
                "the token is unknown or revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        refused = found.refusal(time.time(), client)
        if refused is not None:
            raise TokenRefused(found, *refused)
        return found

    async def authorize(self, principal: Principal, role: str) -> None:
        """Admit one call needing ``role``. Raises ApiError 429 (the token's rate limit,
        with Retry-After) or 403 (a lesser role)."""
        wait = await self.retry_after(principal)
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of this token exceeded; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        if not principal.may(role):
            raise ApiError(403, f"this needs the {role} role; the token has {principal.role}")
        await self.note_use(principal)

    async def note_use(self, principal: Principal) -> None:
        """Record last_used_at, at most once a minute for all tokens together."""
        if principal.token_id <= 0:
            return  # a client certificate: no token row
        self._used.add(principal.token_id)
        now = time.monotonic()
        if now - self._last_touch >= 60.0:
            used, self._used = list(self._used), set()
            self._last_touch = now
            await api_store.touch_tokens(self.pool, used)


def subject_cn(cert: dict[str, Any]) -> str | None:
    """The subject commonName of a certificate as ``SSLSocket.getpeercert()`` gives it."""
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None if it is not one."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def admit(request: Request, role: str) -> Principal:
    """The caller's principal, if its token (bearer header, else the console's cookie)
    holds ``role`` or better; one rate-limit slot. Raises ApiError 401, 403 or 429."""
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization")
    token = bearer(header) if header is not None else request.cookies.get(COOKIE)
    client = request.client.host if request.client else None
    cn = auth.http_certificate(request) if token is None else None
    if cn is not None:  # mutual TLS, no token: the certificate's role
        principal = auth.certificate_principal(cn)
        request.state.principal = principal
        await auth.authorize(principal, role)
        if request.method in MUTATING and (
            request.headers.get("origin") or request.headers.get("sec-fetch-site")
        ):
            raise ApiError(
                403,
                "a write authenticated by a client certificate is refused from a browser "
                "(Origin or Sec-Fetch-Site present): use a bearer token there",
            )
        return principal
    try:
        found = await auth.authenticate(token, client)
    except TokenRefused as exc:
        # audited whatever the method, naming the token and why (a stolen token in use)
        request.state.principal = exc.principal
        request.state.audit_refusal = True
        request.state.audit_details = {"reason": exc.reason, "client": client or ""}
        raise
    request.state.principal = found  # the audit row names who was refused, too
    await auth.authorize(found, role)
    if header is None and request.method in MUTATING:
        raise ApiError(
            403,
            "the console's sign-in only reads; a write needs Authorization: Bearer <token>",
        )
    return found


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, if its token holds ``role`` or better."""

    async def dependency(
        request: Request,
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Principal:
        return await admit(request, role)

    return dependency
