"""netd-managed IPv6 prefix pools (issue 21): what an Accept asks for, and the prefix a
pool's n-th slot is. Pure.

A pool is a large prefix (e.g. 2001:db8::/40) cut into per-subscriber prefixes of one
length: /56 or /60 delegated prefixes (RFC 4818, DHCPv6-PD) or /64 WAN prefixes (RFC 3162
Framed-IPv6-Prefix). A plan or subscriber naming such a pool in Delegated-IPv6-Prefix-Pool
or Framed-IPv6-Pool gets a prefix from it in the Accept instead of the pool's name; the
store (``store/pools6.py``) leases it (sticky per user, released on Stop and on reap, never
leased twice).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from daemons.radius.auth import Outcome
from daemons.radius.dictionary import ReplyAttr

# The pool attribute an Accept carries -> the prefix attribute that replaces it: the
# standard ones (RFC 3162, 6911) and the vendor spellings of vendors.toml's `ipv6` tables
# (a netd pool's prefix goes out as the standard attribute, which those BNGs take too).
PREFIX_FOR_POOL = {
    "Delegated-IPv6-Prefix-Pool": "Delegated-IPv6-Prefix",
    "Framed-IPv6-Pool": "Framed-IPv6-Prefix",
    "Mikrotik-Delegated-IPv6-Pool": "Delegated-IPv6-Prefix",
    "ERX-IPv6-Delegated-Pool-Name": "Delegated-IPv6-Prefix",
    "ERX-IPv6-NdRa-Pool-Name": "Framed-IPv6-Prefix",
    "Huawei-Delegated-IPv6-Prefix-Pool": "Delegated-IPv6-Prefix",
}
MAX_SLOTS = 2**40  # a pool's slots are counted in a bigint; more is never needed


def wanted(outcome: Outcome, pools: Collection[str]) -> list[tuple[str, str]]:
    """(pool attribute, pool name) of the netd pools an Accept names."""
    if not pools:
        return []
    return [
        (a.name, str(a.value))
        for a in outcome.attributes
        if a.name in PREFIX_FOR_POOL and str(a.value) in pools
    ]


def with_prefixes(outcome: Outcome, given: dict[str, str]) -> Outcome:
    """The Accept with each netd pool's name replaced by the prefix leased from it
    (``given``: pool attribute -> prefix)."""
    attrs = tuple(
        ReplyAttr(PREFIX_FOR_POOL[a.name], given[a.name]) if a.name in given else a
        for a in outcome.attributes
    )
    return Outcome(outcome.code, outcome.method, outcome.reason, attrs, outcome.raw, outcome.plan)


def slots(prefix: str, length: int) -> int:
    """How many prefixes of ``length`` a pool of ``prefix`` holds. Raises ValueError."""
    net = ipaddress.IPv6Network(prefix)
    if not net.prefixlen < length <= 128:
        raise ValueError(f"a /{length} does not fit in {net} (longer than /{net.prefixlen})")
    return int(min(2 ** (length - net.prefixlen), MAX_SLOTS))


def slot(prefix: str, length: int, index: int) -> str:
    """The ``index``-th prefix of ``length`` in ``prefix`` (0-based), in CIDR form."""
    net = ipaddress.IPv6Network(prefix)
    base = int(net.network_address) + (index << (128 - length))
    return f"{ipaddress.IPv6Address(base)}/{length}"
