"""RADIUS plans: what an accepted subscriber gets, per NAS vendor. Pure.

Policy files live under ``policies/radius/``: ``[plans.<name>]`` tables and
``[vendors.<name>]`` tables (how a rate limit is spelled for that NAS vendor). Vendor quirks
are data, not branches: a new BNG needs a table, not code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemons.core import validate
from daemons.core.policies import PolicyError, PolicySet
from daemons.radius.dictionary import Dictionary, ReplyAttr, encode_value

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_PLACEHOLDERS = ("down", "up", "down_bps", "up_bps", "down_kbps", "up_kbps", "plan")
_PLAN_KEYS = {
    "download",
    "upload",
    "session_timeout",
    "idle_timeout",
    "interim_interval",
    "framed_pool",
    "filter_id",
    "class",
    "simultaneous_use",
    "reply_message",
    "attributes",
    "data_cap",
    "time_limit",
    "quota_action",
    "stack",
    "framed_ipv6_pool",
    "delegated_ipv6_pool",
}
_REALM_TABLES = {"realm_parsing", "realms", "home_servers", "home_server_pools"}
STACKS = ("dual", "ipv4", "ipv6")  # what a plan gives: IPv4 and IPv6, or one of them
# The IPv6 attributes a subscriber or plan gives (RFC 3162, 4818, 6911), in reply order;
# a vendor's ``ipv6`` table may spell any of them its own way.
IPV6_ATTRIBUTES = (
    "Framed-IPv6-Address",
    "Framed-IPv6-Prefix",
    "Framed-IPv6-Pool",
    "Delegated-IPv6-Prefix",
    "Delegated-IPv6-Prefix-Pool",
)


def parse_bytes(text: object) -> int:
    """``"100G"`` → 100 * 10**9 octets (decimal units, as operators sell them)."""
    return parse_rate(str(text).upper().removesuffix("B"))


def parse_rate(text: str) -> int:
    """``"20M"`` → 20000000 bits/s. Raises ValueError."""
    m = _RATE.match(str(text))
    if not m:
        raise ValueError(f"rate {text!r} is not like 20M, 512k or 1G")
    return int(float(m.group(1)) * _SCALE[m.group(2).lower()])


@dataclass(frozen=True)
class Plan:
    name: str
    download: str | None = None
    upload: str | None = None
    session_timeout: int | None = None
    idle_timeout: int | None = None
    interim_interval: int | None = None
    framed_pool: str | None = None
    filter_id: str | None = None
    class_: str | None = None
    simultaneous_use: int | None = None
    reply_message: str | None = None
    attributes: tuple[tuple[str, Any], ...] = ()
    data_cap: int | None = None  # octets per calendar month, both directions
    time_limit: int | None = None  # seconds online per calendar month
    quota_action: str | None = None  # "disconnect" or "coa:<plan>"
    stack: str = "dual"  # "ipv4": no IPv6 attributes; "ipv6": no IPv4 address or pool
    framed_ipv6_pool: str | None = None
    delegated_ipv6_pool: str | None = None

    @property
    def has_quota(self) -> bool:
        return self.data_cap is not None or self.time_limit is not None


@dataclass(frozen=True)
class VendorMap:
    name: str
    rate_limit: tuple[tuple[str, str], ...] = ()  # (attribute name, value template)
    coa_identify: tuple[str, ...] = ()  # how its NAS wants a session named in CoA
    ipv6: tuple[tuple[str, str], ...] = ()  # (standard IPv6 attribute, this vendor's own)


@dataclass(frozen=True, slots=True)
class Ipv6:
    """A subscriber's static IPv6 addressing (any may be None)."""

    address: str | None = None
    prefix: str | None = None
    delegated: str | None = None
    pool: str | None = None
    delegated_pool: str | None = None


@dataclass(frozen=True)
class Policy:
    plans: Mapping[str, Plan] = field(default_factory=dict)
    vendors: Mapping[str, VendorMap] = field(default_factory=dict)
    walled_garden_plan: str | None = None
    disabled_message: str = "Account disabled"
    default_plan: str = "default"
    # issue 29: the EAP methods a NAS may use ([eap.nas] "name" = [...]), in the order
    # proposed; a NAS not listed uses radius.eap_methods.
    eap_nas_methods: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _replies: dict[tuple[str, str], tuple[ReplyAttr, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def plan_for(self, name: str) -> Plan | None:
        return self.plans.get(name)

    def reply(
        self, plan: Plan, vendor: str, framed_ip: str | None, ipv6: Ipv6 | None = None
    ) -> list[ReplyAttr]:
        """The reply attributes of ``plan`` on a NAS of ``vendor``. The per-plan part is
        built once per (plan, vendor): a Policy never changes, a reload makes a new one.
        A static address or prefix wins over the pool that would give one."""
        key = (plan.name, vendor)
        base = self._replies.get(key)
        if base is None:
            base = self._plan_reply(plan, vendor)
            self._replies[key] = base
        out = list(base)
        if plan.stack != "ipv6":
            if framed_ip:
                out.append(ReplyAttr("Framed-IP-Address", framed_ip))
            elif plan.framed_pool:
                out.append(ReplyAttr("Framed-Pool", plan.framed_pool))
        if plan.stack != "ipv4":
            out += self._ipv6(plan, vendor, ipv6 or _NO_IPV6)
        out += [ReplyAttr(name, value) for name, value in plan.attributes]
        return out

    def _ipv6(self, plan: Plan, vendor: str, v6: Ipv6) -> list[ReplyAttr]:
        """RFC 6911 §3.1 (address), RFC 3162 §2.3/§2.6 (WAN prefix or pool), RFC 4818
        (delegated prefix) or RFC 6911 §3.4 (its pool), each in the vendor's spelling."""
        given = (
            ("Framed-IPv6-Address", v6.address),
            ("Framed-IPv6-Prefix", v6.prefix),
            ("Framed-IPv6-Pool", None if v6.prefix else v6.pool or plan.framed_ipv6_pool),
            ("Delegated-IPv6-Prefix", v6.delegated),
            (
                "Delegated-IPv6-Prefix-Pool",
                None if v6.delegated else v6.delegated_pool or plan.delegated_ipv6_pool,
            ),
        )
        vmap = self.vendors.get(vendor)
        names = dict(vmap.ipv6) if vmap is not None else {}
        return [ReplyAttr(names.get(attr, attr), value) for attr, value in given if value]

    def _plan_reply(self, plan: Plan, vendor: str) -> tuple[ReplyAttr, ...]:
        out: list[ReplyAttr] = []
        if plan.download and plan.upload:
            vmap = self.vendors.get(vendor)
            if vmap is not None:
                values = _rate_values(plan)
                out += [ReplyAttr(attr, _render(tmpl, values)) for attr, tmpl in vmap.rate_limit]
        for name, value in (
            ("Session-Timeout", plan.session_timeout),
            ("Idle-Timeout", plan.idle_timeout),
            ("Acct-Interim-Interval", plan.interim_interval),
            ("Filter-Id", plan.filter_id),
            ("Class", plan.class_),
        ):
            if value is not None and value != "":
                out.append(ReplyAttr(name, value))
        return tuple(out)


_NO_IPV6 = Ipv6()


def _rate_values(plan: Plan) -> dict[str, str]:
    down, up = parse_rate(plan.download or "0"), parse_rate(plan.upload or "0")
    return {
        "down": str(plan.download),
        "up": str(plan.upload),
        "down_bps": str(down),
        "up_bps": str(up),
        "down_kbps": str(down // 1000),
        "up_kbps": str(up // 1000),
        "plan": plan.name,
    }


def _render(template: str, values: Mapping[str, str]) -> Any:
    text = template.format_map(values)
    return int(text) if text.isdigit() else text


def load_policy(
    policies: PolicySet,
    dictionary: Dictionary,
    managed: Mapping[str, Mapping[str, Any]] | None = None,
) -> Policy:
    """Build the RADIUS policy from ``policies/radius/*.toml`` and the plans managed through
    the API (``managed``: name → the keys of a plan table; a file plan of the same name
    wins). Raises PolicyError."""
    plans: dict[str, Plan] = {}
    vendors: dict[str, VendorMap] = {}
    settings: dict[str, Any] = {}
    eap_nas: dict[str, tuple[str, ...]] = {}
    docs = sorted(policies.under("radius").items())
    if managed:
        in_files = {n for _, doc in docs for n in doc.get("plans", {})}
        docs.append(
            (
                "api:radius_plans",
                {"plans": {k: v for k, v in managed.items() if k not in in_files}},
            )
        )
    for path, doc in docs:
        where: tuple[str, ...] = ()
        try:
            # realm_parsing, realms, home_servers, home_server_pools: realms.py's (issue 28)
            unknown = set(doc) - {"plans", "vendors", "settings", "eap"} - _REALM_TABLES
            if unknown:
                where = (sorted(unknown)[0],)
                raise ValueError(f"unknown table(s) {sorted(unknown)}")
            where = ("settings",)
            settings.update(doc.get("settings", {}))
            for name, spec in doc.get("plans", {}).items():
                where = ("plans", name)
                if name in plans:
                    raise ValueError(f"plan {name!r} is defined twice")
                plans[name] = _plan(name, spec, dictionary)
            for name, spec in doc.get("vendors", {}).items():
                where = ("vendors", name)
                vendors[name] = _vendor(name, spec, dictionary)
            where = ("eap",)
            eap_nas.update(_eap_table(doc.get("eap", {})))
        except (ValueError, TypeError, KeyError) as exc:
            raise policies.error(path, str(exc).strip("'\""), where) from None
    if not plans:
        raise PolicyError(
            "radius/",
            f"no plans in {policies.root / 'radius'}: every login would be rejected "
            "(give plans.toml, or unset policies.dir for the packaged policies)",
        )
    policy = Policy(
        plans,
        vendors,
        settings.get("walled_garden_plan"),
        str(settings.get("disabled_message", "Account disabled")),
        str(settings.get("default_plan", "default")),
        eap_nas,
    )
    unknown_settings = set(settings) - {"walled_garden_plan", "disabled_message", "default_plan"}
    if unknown_settings:
        raise PolicyError("radius/", f"unknown settings {sorted(unknown_settings)}")
    for plan in plans.values():
        target = (plan.quota_action or "").removeprefix("coa:")
        if plan.quota_action and plan.quota_action != "disconnect" and target not in plans:
            raise PolicyError(
                "radius/", f"plan {plan.name!r}: quota_action names no plan {target!r}"
            )
    if policy.walled_garden_plan and policy.walled_garden_plan not in plans:
        raise PolicyError(
            "radius/", f"walled_garden_plan {policy.walled_garden_plan!r} is not a plan"
        )
    return policy


def _eap_table(table: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``[eap.nas]``: NAS name → the EAP methods it allows. Raises ValueError."""
    unknown = set(table) - {"nas"}
    if unknown:
        raise ValueError(f"unknown eap key(s) {sorted(unknown)}")
    out: dict[str, tuple[str, ...]] = {}
    for nas, methods in dict(table.get("nas", {})).items():
        validate.name(nas, "eap.nas")
        if not isinstance(methods, list):
            # ValueError: load_policy turns it into a PolicyError naming the file
            raise ValueError(f'eap.nas.{nas}: a list of methods like ["peap", "ttls"]')  # noqa: TRY004
        out[nas] = tuple(validate.eap_methods(methods, f"eap.nas.{nas}"))
    return out


_NAMED_REPLY = (
    ("filter_id", "Filter-Id"),
    ("class", "Class"),
    ("reply_message", "Reply-Message"),
    ("framed_pool", "Framed-Pool"),
)


def _plan(name: str, spec: Mapping[str, Any], dictionary: Dictionary) -> Plan:
    unknown = set(spec) - _PLAN_KEYS
    if unknown:
        raise ValueError(f"plan {name!r}: unknown key(s) {sorted(unknown)}")
    for key in ("download", "upload"):
        if key in spec:
            parse_rate(spec[key])
    if ("download" in spec) != ("upload" in spec):
        raise ValueError(f"plan {name!r}: give both download and upload, or neither")
    extra = tuple((str(k), v) for k, v in dict(spec.get("attributes", {})).items())
    for attr, value in extra:
        if attr not in dictionary:
            raise ValueError(f"plan {name!r}: no attribute {attr!r} in the dictionaries")
        encode_value(dictionary[attr], value)
    # The named reply values are checked as their attributes will carry them: a Class is
    # octets, so "0x..." is hex (as in FreeRADIUS) and must be whole hex; text over 253
    # octets does not fit. Refused here, at load, rather than as policy_error at each login.
    for key, attr in _NAMED_REPLY:
        if spec.get(key) not in (None, ""):
            try:
                encode_value(dictionary[attr], spec[key])
            except ValueError as exc:
                raise ValueError(
                    f"plan {name!r}: {key} {spec[key]!r} does not fit {attr}: {exc}"
                ) from None
    ints = {
        k: int(spec[k])
        for k in ("session_timeout", "idle_timeout", "interim_interval", "simultaneous_use")
        if k in spec
    }
    data_cap = parse_bytes(spec["data_cap"]) if "data_cap" in spec else None
    time_limit = int(spec["time_limit"]) if "time_limit" in spec else None
    action = spec.get("quota_action")
    if (data_cap is not None or time_limit is not None) and action is None:
        raise ValueError(f"plan {name!r}: a data_cap or time_limit needs a quota_action")
    if action is not None and action != "disconnect" and not str(action).startswith("coa:"):
        raise ValueError(f"plan {name!r}: quota_action is 'disconnect' or 'coa:<plan>'")
    stack = str(spec.get("stack", "dual"))
    if stack not in STACKS:
        raise ValueError(f"plan {name!r}: stack is one of {', '.join(STACKS)}, not {stack!r}")
    return Plan(
        stack=stack,
        framed_ipv6_pool=spec.get("framed_ipv6_pool"),
        delegated_ipv6_pool=spec.get("delegated_ipv6_pool"),
        data_cap=data_cap,
        time_limit=time_limit,
        quota_action=action,
        name=name,
        download=spec.get("download"),
        upload=spec.get("upload"),
        framed_pool=spec.get("framed_pool"),
        filter_id=spec.get("filter_id"),
        class_=spec.get("class"),
        reply_message=spec.get("reply_message"),
        attributes=extra,
        **ints,
    )


def _vendor(name: str, spec: Mapping[str, Any], dictionary: Dictionary) -> VendorMap:
    unknown = set(spec) - {"rate_limit", "coa_identify", "ipv6"}
    if unknown:
        raise ValueError(f"vendor {name!r}: unknown key(s) {sorted(unknown)}")
    pairs: list[tuple[str, str]] = []
    sample = {k: "1" for k in _PLACEHOLDERS}
    for item in spec.get("rate_limit", []):
        attr, tmpl = str(item["attribute"]), str(item["value"])
        if attr not in dictionary:
            raise ValueError(f"vendor {name!r}: no attribute {attr!r} in the dictionaries")
        try:
            tmpl.format_map(sample)
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"vendor {name!r}: bad template {tmpl!r}: {exc}") from None
        pairs.append((attr, tmpl))
    identify = tuple(str(a) for a in spec.get("coa_identify", ()))
    for attr in identify:
        if attr not in COA_IDENTIFY:
            raise ValueError(f"vendor {name!r}: coa_identify cannot use {attr!r}")
    ipv6: list[tuple[str, str]] = []
    for standard, own in dict(spec.get("ipv6", {})).items():
        if standard not in IPV6_ATTRIBUTES:
            raise ValueError(
                f"vendor {name!r}: ipv6 renames one of {', '.join(IPV6_ATTRIBUTES)}, "
                f"not {standard!r}"
            )
        if str(own) not in dictionary:
            raise ValueError(f"vendor {name!r}: no attribute {own!r} in the dictionaries")
        ipv6.append((standard, str(own)))
    return VendorMap(name, tuple(pairs), identify, tuple(ipv6))


COA_IDENTIFY = (
    "Acct-Session-Id",
    "User-Name",
    "Framed-IP-Address",
    "NAS-IP-Address",
    "Framed-IPv6-Prefix",
    "Delegated-IPv6-Prefix",
)
