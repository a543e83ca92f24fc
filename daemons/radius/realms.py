"""Realms: which requests netd decides itself, which it proxies, which it refuses. Pure.

A User-Name carries its realm after a suffix delimiter (``bob@isp.example``, ``%``) or
before a prefix delimiter (``ISP\\bob``, ``/``, ``!``); which delimiters count is set
globally and per NAS (``[realm_parsing]``). Per realm (``[realms."isp.example"]``, matched
case-insensitively; ``*.example`` matches any name below ``example``; ``DEFAULT`` matches
any other realm; ``NULL`` a name without one):

- ``action = "local"``: netd decides, with the realm stripped (``strip = true``) or not,
  and ``plan`` as the plan of a subscriber who has none (the default plan);
- ``action = "proxy"``: forwarded to a home-server pool (``pool``; RFC 2865 §2.3);
- ``action = "reject"``: an Access-Reject with ``reason`` as its Reply-Message (and an
  accounting request of that realm is dropped, counted).

Home servers (``[home_servers.<name>]``) and their pools (``[home_server_pools.<name>]``)
are read here too, with every value through ``daemons.core.validate``. The policy files
are ``policies/radius/*.toml`` (by convention ``realms.toml``); a request whose name has no
realm and no ``NULL`` realm is local, as before realms existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from daemons.core import validate
from daemons.core.policies import PolicySet

TABLES = frozenset({"realm_parsing", "realms", "home_servers", "home_server_pools"})
SUFFIX = ("@", "%")  # user@realm: the realm follows the last one
PREFIX = ("\\", "/", "!")  # realm\user: the realm precedes the first one
DEFAULT_DELIMITERS = ("@", "\\")
DEFAULT = "DEFAULT"  # any realm not named
NULL = "NULL"  # a User-Name with no realm
TRANSPORTS = ("udp", "tcp", "tls")
WINDOW = (0.05, 60.0)
PERIOD = (0.1, 3600.0)
SOCKETS = (1, 32)  # a UDP home server's source ports
STATUS_CHECKS = ("auth", "acct")


class Action(StrEnum):
    LOCAL = "local"
    PROXY = "proxy"
    REJECT = "reject"


class PoolType(StrEnum):
    FAILOVER = "fail-over"  # the first live server in the list, then the next
    LOAD_BALANCE = "load-balance"  # the live server with the fewest requests outstanding


@dataclass(frozen=True, slots=True)
class HomeServer:
    """A RADIUS server netd proxies to (FreeRADIUS's ``home_server``)."""

    name: str
    address: str
    auth_port: int
    acct_port: int
    secret: bytes = field(repr=False)
    transport: str = "udp"
    response_window: float = 3.0  # no answer in this long: the request fails over
    zombie_period: float = 10.0  # no answer at all in this long: zombie, then dead
    status_interval: float = 5.0  # Status-Server probes of a zombie or dead server
    answers_to_alive: int = 3  # answered probes in a row that make a dead server live
    # BlastRADIUS (CVE-2024-3596): an Access-* reply without a Message-Authenticator is
    # dropped; false only for an old home server that cannot send one
    require_message_authenticator: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    # UDP: source ports (sockets), each its own 256 identifiers (RFC 2865 §3), so at most
    # 256 x sockets requests are outstanding to the server
    sockets: int = 4
    # Status-Server probes (RFC 5997 §3) go to the port the server answers on: "auth"
    # (auth_port) or "acct" (acct_port, for a server used only for accounting)
    status_check: str = "auth"


@dataclass(frozen=True, slots=True)
class HomePool:
    name: str
    type: PoolType
    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Realm:
    name: str
    action: Action
    strip: bool = True
    pool: str | None = None
    plan: str | None = None  # local: the plan of a subscriber without one
    reason: str = "realm not served"  # reject: the Reply-Message
    ledger: bool = False  # proxy: also write its accounting to netd's ledger


LOCAL = Realm("", Action.LOCAL, strip=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: ``user`` is the name to use (stripped or not)."""

    realm: Realm
    realm_name: str | None  # as the User-Name carried it (lower-cased), None if none
    user: str

    @property
    def action(self) -> Action:
        return self.realm.action


@dataclass(frozen=True)
class RealmPolicy:
    delimiters: tuple[str, ...] = DEFAULT_DELIMITERS
    nas_delimiters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    realms: Mapping[str, Realm] = field(default_factory=dict)
    home_servers: Mapping[str, HomeServer] = field(default_factory=dict)
    pools: Mapping[str, HomePool] = field(default_factory=dict)

    def split(self, username: str, nas: str = "") -> tuple[str, str | None]:
        """``(user, realm)`` by the NAS's delimiters (else the global ones), in their order."""
        for delim in self.nas_delimiters.get(nas, self.delimiters):
            if delim in SUFFIX:
                user, sep, realm = username.rpartition(delim)
            else:
                realm, sep, user = username.partition(delim)
            if sep and user and realm:
                return user, realm.lower()
        return username, None

    def match(self, realm: str | None) -> Realm:
        if realm is None:
            return self.realms.get(NULL, LOCAL)
        found = self.realms.get(realm)
        if found is not None:
            return found
        labels = realm.split(".")
        for i in range(1, len(labels)):
            found = self.realms.get("*." + ".".join(labels[i:]))
            if found is not None:
                return found
        return self.realms.get(DEFAULT, LOCAL)

    def decide(self, username: str, nas: str = "") -> Decision:
        """The realm of ``username`` (from NAS ``nas``) and what it says to do."""
        if not self.realms:
            return Decision(LOCAL, None, username)
        user, realm_name = self.split(username, nas)
        realm = self.match(realm_name)
        return Decision(realm, realm_name, user if realm.strip and realm_name else username)


# --- loading -----------------------------------------------------------------------------

_REALM_KEYS = {"action", "strip", "pool", "plan", "reason", "ledger"}
_SERVER_KEYS = {
    "address",
    "auth_port",
    "acct_port",
    "secret",
    "secret_file",
    "transport",
    "response_window",
    "zombie_period",
    "status_interval",
    "answers_to_alive",
    "require_message_authenticator",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "sockets",
    "status_check",
}
_POOL_KEYS = {"type", "servers"}


def _table(spec: object, what: str) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise validate.Invalid(f"{what} is a table")
    return spec


def _keys(spec: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise validate.Invalid(f"{what}: unknown key(s) {unknown} (known: {sorted(allowed)})")


def _bool(spec: Mapping[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise validate.Invalid(f"{key} is true or false (got {validate.show(value, 24)})")
    return value


def _seconds(
    spec: Mapping[str, Any], key: str, default: float, bounds: tuple[float, float]
) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validate.Invalid(f"{key} is a number of seconds (got {validate.show(value, 24)})")
    return validate.seconds(float(value), bounds, key)


def _delimiters(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise validate.Invalid('delimiters is a non-empty list, e.g. ["@", "\\\\"]')
    return tuple(validate.realm_delimiter(str(d)) for d in value)


def parse_server(name: str, spec: Mapping[str, Any], root: Path) -> HomeServer:
    """One ``[home_servers.<name>]`` table. Raises validate.Invalid."""
    validate.name(name, "home server name")
    _keys(spec, _SERVER_KEYS, f"home server {name}")
    transport = str(spec.get("transport", "udp"))
    if transport not in TRANSPORTS:
        raise validate.Invalid(f"transport {validate.show(transport)} is one of {TRANSPORTS}")
    if "secret" in spec and "secret_file" in spec:
        raise validate.Invalid("give secret or secret_file, not both")
    if "secret_file" in spec:
        path = root / str(spec["secret_file"])
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise validate.Invalid(f"secret_file {path}: {exc.__class__.__name__}") from None
    elif transport == "tls":
        secret = str(spec.get("secret", "radsec"))  # RFC 6614 §2.3
    else:
        secret = str(spec.get("secret", ""))
    validate.secret(secret, "home server secret")
    tls = {k: spec.get(k) for k in ("tls_cert", "tls_key", "tls_ca")}
    for key, value in tls.items():
        if value is not None and not isinstance(value, str):
            raise validate.Invalid(f"{key} is a file path")
    if transport == "tls" and tls["tls_ca"] is None:
        raise validate.Invalid("transport tls needs tls_ca (the home server's CA)")
    answers = spec.get("answers_to_alive", 3)
    status_check = str(spec.get("status_check", "auth"))
    if status_check not in STATUS_CHECKS:
        raise validate.Invalid(
            f"status_check {validate.show(status_check)} is one of {STATUS_CHECKS}"
        )
    if status_check == "acct" and transport != "udp":
        raise validate.Invalid('status_check = "acct" is for transport udp (a stream has one port)')
    sockets = validate.bounded(spec.get("sockets", 4), SOCKETS, "sockets")
    return HomeServer(
        name,
        validate.ip_address(str(spec.get("address", "")), "home server address"),
        validate.port(spec.get("auth_port", 2083 if transport == "tls" else 1812), "auth_port"),
        validate.port(spec.get("acct_port", 1813), "acct_port"),
        secret.encode(),
        transport,
        _seconds(spec, "response_window", 3.0, WINDOW),
        _seconds(spec, "zombie_period", 10.0, PERIOD),
        _seconds(spec, "status_interval", 5.0, PERIOD),
        validate.bounded(answers, (1, 100), "answers_to_alive"),
        _bool(spec, "require_message_authenticator", True),
        **{k: str(root / v) if v is not None else None for k, v in tls.items()},
        sockets=sockets,
        status_check=status_check,
    )


def parse_pool(name: str, spec: Mapping[str, Any], servers: Mapping[str, HomeServer]) -> HomePool:
    validate.name(name, "home server pool name")
    _keys(spec, _POOL_KEYS, f"home server pool {name}")
    kind = str(spec.get("type", PoolType.FAILOVER.value))
    if kind not in {t.value for t in PoolType}:
        raise validate.Invalid(f"type {validate.show(kind)} is fail-over or load-balance")
    members = spec.get("servers")
    if not isinstance(members, list) or not members:
        raise validate.Invalid("servers is a non-empty list of home server names")
    for member in members:
        validate.known(str(member), servers, "home server", "[home_servers]")
    if len(set(members)) != len(members):
        raise validate.Invalid("servers names a home server twice")
    return HomePool(name, PoolType(kind), tuple(str(m) for m in members))


def parse_realm(name: str, spec: Mapping[str, Any], pools: Mapping[str, HomePool]) -> Realm:
    key = name
    if key.startswith("*."):
        validate.realm(key[2:])
        key = "*." + key[2:].lower()
    elif key not in (DEFAULT, NULL):
        key = validate.realm(key)
    _keys(spec, _REALM_KEYS, f"realm {name}")
    action = str(spec.get("action", ""))
    if action not in {a.value for a in Action}:
        raise validate.Invalid(f"action {validate.show(action)} is local, proxy or reject")
    pool = spec.get("pool")
    if action == Action.PROXY:
        validate.known(str(pool), pools, "home server pool", "[home_server_pools]")
    elif pool is not None:
        raise validate.Invalid('pool is for action = "proxy"')
    plan = spec.get("plan")
    if plan is not None:
        validate.name(str(plan), "plan")
    reason = validate.text(str(spec.get("reason", "realm not served")), "reason", 200, 1)
    return Realm(
        key,
        Action(action),
        _bool(spec, "strip", True),
        str(pool) if pool is not None else None,
        str(plan) if plan is not None else None,
        reason,
        _bool(spec, "ledger", False),
    )


def load_realms(
    policies: PolicySet, managed: Mapping[str, Mapping[str, Any]] | None = None
) -> RealmPolicy:
    """The realm policy of ``policies/radius/*.toml`` and the realms managed through the
    API (``managed``: name → the keys of a realm table; a file realm of the same name
    wins). Empty: every request local. Raises PolicyError naming the file, table, line."""
    docs: list[tuple[str, Mapping[str, Any]]] = sorted(policies.under("radius").items())
    if managed:
        in_files = {n for _, doc in docs for n in doc.get("realms", {})}
        extra = {k: v for k, v in managed.items() if k not in in_files}
        docs.append(("api:radius_realms", {"realms": extra}))
    servers: dict[str, HomeServer] = {}
    pools: dict[str, HomePool] = {}
    realms: dict[str, Realm] = {}
    delimiters: tuple[str, ...] = DEFAULT_DELIMITERS
    per_nas: dict[str, tuple[str, ...]] = {}
    # Servers first, then pools, then realms: a realm names a pool in any file.
    for stage in ("home_servers", "home_server_pools", "realms", "realm_parsing"):
        for path, doc in docs:
            where: tuple[str, ...] = (stage,)
            try:
                table = _table(doc.get(stage, {}), f"[{stage}]")
                if stage == "realm_parsing":
                    _keys(table, {"delimiters", "nas"}, "[realm_parsing]")
                    if "delimiters" in table:
                        delimiters = _delimiters(table["delimiters"])
                    for nas, raw in _table(table.get("nas", {}), "[realm_parsing.nas]").items():
                        where = (stage, "nas", nas)
                        nas_spec = _table(raw, f"[realm_parsing.nas.{nas}]")
                        _keys(nas_spec, {"delimiters"}, f"[realm_parsing.nas.{nas}]")
                        per_nas[validate.name(nas, "NAS name")] = _delimiters(
                            nas_spec.get("delimiters")
                        )
                    continue
                for name, raw in table.items():
                    where = (stage, name)
                    spec = _table(raw, f"[{stage}.{name}]")
                    if stage == "home_servers":
                        servers[name] = parse_server(name, spec, policies.root)
                    elif stage == "home_server_pools":
                        pools[name] = parse_pool(name, spec, servers)
                    else:
                        realm = parse_realm(name, spec, pools)
                        if realm.name in realms:
                            raise validate.Invalid(f"realm {name!r} is defined twice")
                        realms[realm.name] = realm
            except (validate.Invalid, TypeError, ValueError) as exc:
                raise policies.error(path, str(exc), where) from None
    if not (servers or realms) and not any(TABLES & set(doc) for _, doc in docs):
        return RealmPolicy()
    return RealmPolicy(delimiters, per_nas, realms, servers, pools)


__all__ = [
    "Action",
    "Decision",
    "HomePool",
    "HomeServer",
    "PoolType",
    "Realm",
    "RealmPolicy",
    "load_realms",
]
