"""Request and response bodies of the API (they are its OpenAPI contract)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from daemons.api.errors import ApiError
from daemons.core import validate as v

T = TypeVar("T")
Role = Literal["viewer", "operator", "admin"]
SubscriberState = Literal["active", "suspended", "disabled"]
NAME = v.NAME
PAGE_MAX = 1000

# Fields whose rules live in daemons.core.validate: the CLI checks with the same functions,
# so both refuse with the same message.
Vendor = Annotated[str, v.str_schema(NAME), v.rule(partial(v.name, what="vendor"))]
PlanName = Annotated[str, v.str_schema(NAME), v.rule(partial(v.name, what="plan"))]
CoaPort = Annotated[int, v.int_schema(v.PORT), v.rule(partial(v.port, what="coa_port"))]
TlsIdentity = Annotated[
    str, v.str_schema(most=300), v.rule(v.tls_identity)
]  # "" in an update: the NAS no longer uses RadSec
Network = Annotated[str, v.str_schema(most=64), v.rule(v.network)]
Description = Annotated[
    str,
    v.str_schema(most=v.DESCRIPTION_MAX),
    v.rule(partial(v.text, what="description", most=v.DESCRIPTION_MAX)),
]
NasSecret = Annotated[
    str,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": v.SECRET_MAX}),
    v.rule(partial(v.secret, what="shared secret")),
]
Password = Annotated[
    str,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": v.SECRET_MAX}),
    v.rule(partial(v.secret, what="password")),
]
Mac = Annotated[str, v.str_schema(most=32), v.rule(lambda s: s and v.mac(s))]
FramedIp = Annotated[str, v.str_schema(most=64), v.rule(lambda s: s and v.framed_ip(s))]
FramedIpv6 = Annotated[str, v.str_schema(most=64), v.rule(lambda s: s and v.ipv6_address(s))]
Ipv6Prefix = Annotated[
    str, v.str_schema(most=64), v.rule(lambda s: s and v.ipv6_prefix(s, "framed_ipv6_prefix"))
]
DelegatedPrefix = Annotated[
    str, v.str_schema(most=64), v.rule(lambda s: s and v.ipv6_prefix(s, "delegated_ipv6_prefix"))
]
PoolRef = Annotated[str, v.str_schema(most=64), v.rule(lambda s: s and v.name(s, "pool"))]
Retries = Annotated[
    int,
    v.int_schema(v.COA_RETRIES),
    v.rule(partial(v.bounded, bounds=v.COA_RETRIES, what="retries")),
]
LeaseTime = Annotated[
    int,
    v.int_schema(v.LEASE_TIME),
    v.rule(partial(v.bounded, bounds=v.LEASE_TIME, what="lease_time", unit=" seconds")),
]

Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"page size, at most {PAGE_MAX}")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="next_cursor of the previous page; omit for the first"),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


def re_device(text: str) -> bool:
    """OUI-ProductClass-SerialNumber, printable, not absurdly long."""
    return 3 <= len(text) <= 256 and text.isprintable() and text.count("-") >= 2


def re_name(text: str) -> bool:
    return re.match(NAME, text) is not None


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str:
    """The key after which a page starts ("" for the first page). Raises ApiError 400."""
    if not cursor:
        return ""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = None
    if text is None or encode_cursor(text) != cursor:  # only what encode_cursor gives out
        raise ApiError(400, "the cursor is not one this API gave out")
    return text


def decode_int_cursor(cursor: str | None) -> int | None:
    text = decode_cursor(cursor)
    if not text:
        return None
    if not text.isdigit() or len(text) > 19:
        raise ApiError(400, "the cursor is not one this API gave out")
    return int(text)


def page(items: list[T], limit: int, key: Any) -> Page[T]:
    """A page whose next cursor is the key of its last item (None when it is not full)."""
    nxt = encode_cursor(key(items[-1])) if len(items) == limit and items else None
    return Page[T](items=items, next_cursor=nxt)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- status ------------------------------------------------------------------------------


class Instance(BaseModel):
    instance_id: str
    daemon: str
    instance: str
    pid: int
    version: str
    started_at: datetime
    uptime: float = Field(description="seconds")
    last_beat: datetime
    status: str
    counters: dict[str, float]


class Status(BaseModel):
    version: str
    stores: dict[str, str] = Field(description="postgres and redis: ok or the problem")
    live_sessions: int
    instances: list[Instance]


# --- NAS clients ---------------------------------------------------------------------------


class Nas(BaseModel):
    name: str
    network: str
    vendor: str
    require_message_authenticator: bool
    coa_port: int
    description: str
    tls_identity: str | None = None


class NasCreate(_Body):
    name: Annotated[str, v.str_schema(NAME), v.rule(v.name)]
    network: Network = Field(description="source address or prefix (CIDR)")
    secret: NasSecret = Field(description="the shared secret")
    vendor: Vendor = Field(default="generic", description="a [vendors.*] table of policies/radius")
    require_message_authenticator: bool = True
    coa_port: CoaPort = 3799
    description: Description = ""
    tls_identity: TlsIdentity = Field(
        default="", description="RadSec client certificate: sha256:<hex>, DNS name or CN"
    )


class NasUpdate(_Body):
    network: Network | None = None
    secret: NasSecret | None = None
    vendor: Vendor | None = None
    require_message_authenticator: bool | None = None
    coa_port: CoaPort | None = None
    description: Description | None = None
    tls_identity: TlsIdentity | None = None


# --- subscribers ---------------------------------------------------------------------------


class Subscriber(BaseModel):
    username: str
    plan: str
    state: SubscriberState
    mac: str | None
    framed_ip: str | None
    framed_ipv6_address: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    framed_ipv6_pool: str | None = None
    delegated_ipv6_pool: str | None = None
    credentials: list[str] = Field(description="which are stored: cleartext, nt-hash, hash")


class SubscriberFields(_Body):
    password: Password | None = Field(default=None, description="stored sealed, or hashed")
    hash: Literal["none", "argon2", "bcrypt", "sha512_crypt", "sha256_crypt", "md5_crypt"] = Field(
        default="none",
        description="store a one-way hash of the password (PAP only) instead of sealing it",
    )
    plan: PlanName | None = None
    state: SubscriberState | None = None
    mac: Mac | None = Field(default=None, description="the Calling-Station-Id; '' unbinds")
    framed_ip: FramedIp | None = Field(
        default=None, description="a static Framed-IP-Address (IPv4); '' clears"
    )
    framed_ipv6_address: FramedIpv6 | None = Field(
        default=None, description="a static Framed-IPv6-Address (RFC 6911); '' clears"
    )
    framed_ipv6_prefix: Ipv6Prefix | None = Field(
        default=None, description="a static Framed-IPv6-Prefix, the WAN /64 (RFC 3162); '' clears"
    )
    delegated_ipv6_prefix: DelegatedPrefix | None = Field(
        default=None, description="a static Delegated-IPv6-Prefix (RFC 4818); '' clears"
    )
    framed_ipv6_pool: PoolRef | None = Field(
        default=None, description="Framed-IPv6-Pool: a NAS pool name (RFC 3162); '' clears"
    )
    delegated_ipv6_pool: PoolRef | None = Field(
        default=None, description="Delegated-IPv6-Prefix-Pool: a NAS pool (RFC 6911); '' clears"
    )


class SubscriberCreate(SubscriberFields):
    username: Annotated[
        str,
        WithJsonSchema(
            {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[^\x00-\x1f\x7f]+$"}
        ),
        v.rule(v.username),
    ]


class SubscriberBatch(_Body):
    subscribers: list[SubscriberCreate] = Field(
        min_length=1,
        max_length=10_000,
        description="each creates the subscriber or changes the fields it gives",
    )


class BatchResult(BaseModel):
    upserted: int = Field(description="subscribers written (all of them)")
    created: int = Field(description="of those, how many did not exist before")


# --- plans -------------------------------------------------------------------------------


class PlanSpec(_Body):
    download: str | None = Field(default=None, max_length=16, examples=["100M"])
    upload: str | None = Field(default=None, max_length=16, examples=["20M"])
    session_timeout: int | None = Field(default=None, ge=0, le=2**31 - 1)
    idle_timeout: int | None = Field(default=None, ge=0, le=2**31 - 1)
    interim_interval: int | None = Field(default=None, ge=0, le=2**31 - 1)
    framed_pool: str | None = Field(default=None, max_length=253)
    filter_id: str | None = Field(default=None, max_length=253)
    class_: str | None = Field(default=None, alias="class", max_length=253)
    simultaneous_use: int | None = Field(default=None, ge=0, le=1_000_000)
    reply_message: str | None = Field(default=None, max_length=253)
    attributes: dict[str, str | int] | None = Field(default=None, max_length=64)
    data_cap: str | None = Field(default=None, max_length=16, examples=["100G"])
    time_limit: int | None = Field(default=None, ge=0, le=2**31 - 1)
    quota_action: str | None = Field(default=None, max_length=80)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Plan(BaseModel):
    name: str
    source: Literal["file", "api"] = Field(description="a policy file, or created here")
    spec: dict[str, Any]


# --- realms and home servers (issue 28) ---------------------------------------------------


class RealmSpec(_Body):
    """A ``[realms.<name>]`` table of policies/radius/realms.toml (checked as that file is)."""

    action: Literal["local", "proxy", "reject"]
    pool: str | None = Field(default=None, max_length=64, description="proxy: the pool")
    strip: bool | None = Field(default=None, description="take the realm off the name")
    plan: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=200, description="reject: why")
    ledger: bool | None = Field(default=None, description="proxy: accounting in ours too")


class Realm(BaseModel):
    name: str
    source: Literal["file", "api"] = Field(description="a policy file, or created here")
    spec: dict[str, Any]


class HomeServer(BaseModel):
    name: str
    address: str
    auth_port: int
    acct_port: int
    transport: str
    pools: list[str]
    states: dict[str, str] = Field(
        description="per radius instance: alive, zombie or dead (its last heartbeat)"
    )


# --- sessions ------------------------------------------------------------------------------


class Session(BaseModel):
    unique_id: str
    username: str
    nas: str
    nas_port: str
    framed_ip: str | None
    acct_session_id: str
    started_at: datetime
    updated_at: datetime
    input_octets: int
    output_octets: int
    framed_ipv6_address: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None


class SessionDetail(Session):
    live: bool
    stopped_at: datetime | None = None
    session_time: int | None = None
    terminate_cause: int | None = None
    close_reason: str | None = None


class DisconnectRequest(_Body):
    retries: Retries | None = None


class CoaRequest(_Body):
    plan: PlanName | None = Field(default=None, description="move to this plan")
    attributes: dict[str, str | int] = Field(
        default_factory=dict, max_length=64, description="further attributes by name"
    )
    retries: Retries | None = None


class Cleared(BaseModel):
    session: str = Field(description="the session's Acct-Unique-Session-Id")
    acct_session_id: str
    username: str
    nas: str
    framed_ip: str | None
    terminate_cause: int = Field(description="of the synthetic Stop: 6, Admin-Reset")
    stopped_at: datetime = Field(description="the last update the NAS sent")


class CoaResult(BaseModel):
    session: str
    nas: str
    result: Literal["ack", "nak", "timeout"]
    error_cause: int | None
    attempts: int
    audit_id: int = Field(description="the coa_requests row")


# --- IP pools ----------------------------------------------------------------------------


class Pool(BaseModel):
    name: str
    lease_time: int = Field(description="seconds")
    size: int = Field(description="addresses in the pool")
    leased: int = Field(description="addresses leased now")


class PoolAdded(Pool):
    added: int = Field(description="addresses this call added")
    taken: int = Field(description="addresses of the ranges already in a pool, left there")


class PoolAdd(_Body):
    name: Annotated[str, v.str_schema(NAME), v.rule(partial(v.name, what="pool"))]
    ranges: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(min_length=1, max_length=64),
        v.rule(v.pool_ranges),
    ] = Field(description=f"IPv4 addresses or prefixes (CIDR), at most {v.POOL_ADD_MAX} addresses")
    lease_time: LeaseTime = Field(default=900, description="seconds")


class Pool6Add(_Body):
    """A netd IPv6 pool (issue 21): ``prefix`` cut into per-subscriber prefixes of
    ``length``, leased at Access-Accept to the plans and subscribers naming it."""

    prefix: Annotated[str, v.str_schema(most=64)] = Field(examples=["2001:db8::/40"])
    length: int = Field(ge=1, le=128, examples=[56], description="/56, /60 delegated; /64 WAN")
    lease_time: LeaseTime = Field(default=900, description="seconds")

    @model_validator(mode="after")
    def _fits(self) -> Pool6Add:
        try:
            self.prefix, self.length = v.ipv6_pool(self.prefix, self.length)
        except v.Invalid as exc:
            raise ValueError(str(exc)) from None
        return self


class Pool6(BaseModel):
    name: str
    prefix: str
    length: int
    lease_time: int = Field(description="seconds")
    capacity: int = Field(description="prefixes the pool holds")
    leased: int = Field(description="prefixes leased now")


# --- accounting ----------------------------------------------------------------------------


class AccountingRecord(BaseModel):
    id: int
    event_time: datetime
    received_at: datetime
    nas: str
    status_type: int
    acct_session_id: str
    unique_id: str
    username: str
    nas_port: str
    framed_ip: str | None
    input_octets: int
    output_octets: int
    input_packets: int
    output_packets: int
    session_time: int
    terminate_cause: int | None


class Usage(BaseModel):
    username: str
    since: datetime
    until: datetime
    sessions: int = Field(description="sessions active in the period")
    records: int = Field(description="ledger records in the period")
    input_octets: int
    output_octets: int
    session_time: int = Field(description="seconds")


# --- events and audit ----------------------------------------------------------------------


class Event(BaseModel):
    id: int
    ts: datetime
    source: str
    kind: str
    severity: str
    subject: str
    data: dict[str, Any]


class AuditEntry(BaseModel):
    id: int
    ts: datetime
    actor: str
    role: str
    method: str
    path: str
    action: str
    target: str
    status: int
    result: str
    request_id: str
    details: dict[str, Any]


# --- tokens ------------------------------------------------------------------------------


class Token(BaseModel):
    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = Field(description="recorded at most once a minute")
    revoked_at: datetime | None
    expires_at: datetime | None = None
    networks: list[str] = Field(default_factory=list, description="sources allowed; empty: any")
    rotated_at: datetime | None = None


TOKEN_LIFETIME = (1, 10 * 366 * 86400)  # seconds: a second to ten years
TOKEN_NETWORKS_MAX = 64


class TokenCreate(_Body):
    name: Annotated[str, v.str_schema(v.TOKEN_NAME), v.rule(v.token_name)]
    role: Role
    expires_in: int | None = Field(
        default=None,
        ge=TOKEN_LIFETIME[0],
        le=TOKEN_LIFETIME[1],
        description="seconds until the token stops working; unset: never",
    )
    networks: Annotated[list[str], v.rule(v.networks)] = Field(
        default_factory=list,
        max_length=TOKEN_NETWORKS_MAX,
        description="source addresses or CIDR prefixes it may be used from; empty: any",
    )


def token_expiry(body: TokenCreate) -> datetime | None:
    """When a token made from ``body`` stops working."""
    if body.expires_in is None:
        return None
    return datetime.now(UTC) + timedelta(seconds=body.expires_in)


class TokenCreated(Token):
    token: str = Field(description="the secret: shown once, never again")


# --- the authentication history (issue 21) -------------------------------------------------


class AuthLogEntry(BaseModel):
    id: int
    at: datetime
    username: str
    nas: str
    nas_port: str = Field(description="NAS-Port-Id, else NAS-Port; empty: not sent")
    calling_station: str = Field(description="Calling-Station-Id; empty: not sent")
    method: str = Field(description="pap, chap, mschapv1, mschapv2, eap-md5 or none")
    result: Literal["accept", "reject"]
    reason: str = Field(description="ok, or why it was rejected (bad_password, unknown_user...)")
    plan: str | None
    given: dict[str, Any] = Field(description="addresses, prefixes and pools the Accept gave")
    session: str | None = Field(
        default=None, description="the session this login started (user, NAS, port, time)"
    )
    session_started: datetime | None = None
    session_stopped: datetime | None = None
