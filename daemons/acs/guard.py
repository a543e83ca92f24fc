"""Who may join and where the ACS may reach out: pure decisions over addresses.

``may_register``: an unknown CPE is auto-registered only when it matches the operator's
limits (OUIs, product classes, source networks). ``connection_request_target``: a
ConnectionRequestURL (TR-069 §3.2.2) or a UDP binding (Annex G) reported by a CPE is used
only when its host is an IP address the operator lets connection requests go to, so a
hostile CPE cannot aim the ACS's credentials at the operator's own services. No I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """acs.auto_register_* as parsed values (empty: any)."""

    ouis: frozenset[str] = frozenset()
    product_classes: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """CIDR strings (already validated by the config) as networks."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _within(address: Address, nets: Sequence[Network]) -> bool:
    return any(address.version == n.version and address in n for n in nets)


def may_register(limits: Limits, oui: str, product_class: str, source: str | None) -> str | None:
    """None when an unknown CPE may register; else why not (for the log and the event)."""
    if limits.ouis and oui.upper() not in limits.ouis:
        return f"OUI {oui!r} is not in acs.auto_register_ouis"
    if limits.product_classes and product_class not in limits.product_classes:
        return f"product class {product_class!r} is not in acs.auto_register_product_classes"
    if limits.networks:
        address = _address(source or "")
        if address is None or not _within(address, limits.networks):
            return f"source {source!r} is not in acs.auto_register_networks"
    return None


@dataclass(frozen=True)
class Reach:
    """Where connection requests may go (acs.connection_request_*)."""

    cpe_networks: tuple[Network, ...] = ()  # empty: only the CPE's last Inform address
    internal: tuple[Network, ...] = ()
    allow_loopback: bool = False


def target_refused(reach: Reach, host: str, inform_ip: str | None) -> str | None:
    """None when a connection request may go to ``host``; else the reason (a short word
    for the metric label, then why): ``not-an-address``, ``loopback``, ``link-local``,
    ``reserved``, ``internal``, ``not-cpe-network``, ``not-inform-address``."""
    address = _address(host)
    if address is None:
        return f"not-an-address: host {host!r} is not an IP address (names are not resolved)"
    if address.is_loopback:
        if not reach.allow_loopback:
            return f"loopback: {address} is a loopback address"
    elif address.is_link_local:
        return f"link-local: {address} is link-local (metadata services live there)"
    elif address.is_multicast or address.is_unspecified or address.is_reserved:
        return f"reserved: {address} is multicast, unspecified or reserved"
    if _within(address, reach.internal):
        return f"internal: {address} is in acs.connection_request_internal"
    if reach.cpe_networks:
        if not _within(address, reach.cpe_networks):
            return f"not-cpe-network: {address} is not in acs.connection_request_networks"
        return None
    inform = _address(inform_ip or "")
    if inform is None or inform != address:
        return (
            f"not-inform-address: {address} is not the address the CPE's last Inform came "
            f"from ({inform_ip or 'none recorded'})"
        )
    return None


def url_refused(reach: Reach, url: str, inform_ip: str | None) -> str | None:
    """``target_refused`` for a ConnectionRequestURL; a URL that is not http(s) with a
    host is refused as ``bad-url``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "bad-url: the ConnectionRequestURL cannot be parsed"
    if parts.scheme not in ("http", "https") or not host:
        return "bad-url: the ConnectionRequestURL is not an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "bad-url: the ConnectionRequestURL carries credentials"
    return target_refused(reach, host, inform_ip)
