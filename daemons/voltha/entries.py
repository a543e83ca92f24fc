"""SADIS entries as ONOS's sadis and olt apps read them (opencord/sadis
``SubscriberManager`` and its Jackson mapper: ``SubscriberAndDeviceInformation``,
``UniTagInformation``, ``BandwidthProfileInformation``; anything it cannot convert makes the
whole entry missing). Pure: the SADIS server (``sadis.py``) and the reconciliation with ONOS
(``reconcile.py``) build and compare entries with these functions.

- Field names and JSON types as those classes declare them; optional fields left out, not
  sent empty (a ``""`` MAC, a host name as ``ipAddress`` throw in ONOS's parsers); a tag
  priority left out means "do not set", a 0 would set it to 0.
- Rates in kbit/s and bursts in kbit ("the rate information must be in Kbps and burst must
  be in Kbits"; opencord/olt ``OltMeterService.createMeterBands`` hands them to the meter as
  they are).
- Profile ids carry the rate: ONOS makes one meter per profile id and device
  (``programmedMeters``) and reuses it, so a plan's new rate needs a new id.
- ``canonical_tag``: an entry as ONOS holds it once read, the form ``programmed-subscribers``
  shows (``UniTagInformationCodec``), so that what netd served and what ONOS has compare.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

from daemons.core.policies import PolicySet
from daemons.radius.policy import parse_rate

# The olt app's default bandwidth profile (its defaultBpId), for the flows it installs
# before a subscriber is provisioned: 1 Mbit/s excess, a 30 ms burst; no committed rate.
DEFAULT_PROFILE = {"id": "Default", "cir": 0, "cbs": 0, "eir": 1000, "ebs": 30}
BURST_SECONDS = 0.010
MIN_BURST_KBIT = math.ceil(1522 * 8 / 1000)  # one full Ethernet frame: 13 kbit
_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")

# UniTagInformationCodec's defaults (opencord/sadis): what ONOS fills in for a field left
# out, and how it shows a service in programmed-subscribers.
_TAG_DEFAULTS: dict[str, Any] = {
    "uniTagMatch": 0,
    "ponCTag": 0,
    "ponSTag": 0,
    "usPonCTagPriority": -1,
    "usPonSTagPriority": -1,
    "dsPonCTagPriority": -1,
    "dsPonSTagPriority": -1,
    "technologyProfileId": -1,
    "upstreamBandwidthProfile": None,
    "downstreamBandwidthProfile": None,
    "upstreamOltBandwidthProfile": None,
    "downstreamOltBandwidthProfile": None,
    "serviceName": "",
    "enableMacLearning": False,
    "configuredMacAddress": "",
    "isDhcpRequired": False,
    "isIgmpRequired": False,
    "isPppoeRequired": False,
}


def canonical_tag(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A uniTagList entry as ONOS holds it once read (every field, its defaults filled in,
    the OLT profiles defaulting to the subscriber ones): the form of ``programmed-
    subscribers``'s tagInfo, so that what netd served and what ONOS shows compare equal."""
    out = {k: v if entry.get(k) is None else entry[k] for k, v in _TAG_DEFAULTS.items()}
    if entry.get("upstreamOltBandwidthProfile") is None:
        out["upstreamOltBandwidthProfile"] = out["upstreamBandwidthProfile"]
    if entry.get("downstreamOltBandwidthProfile") is None:
        out["downstreamOltBandwidthProfile"] = out["downstreamBandwidthProfile"]
    return out


TagKey = tuple[Any, ...]
_ALL_FIELDS = operator.itemgetter(*_TAG_DEFAULTS)


def tag_key(entry: Mapping[str, Any]) -> TagKey:
    """One service's identity as ONOS compares it (the whole entry, defaults filled in),
    hashable and cheap: a reconciliation computes some thousands of them per sync. ONOS's
    own entries have every field (one C-level read); netd's leave defaults out."""
    try:
        key: TagKey = _ALL_FIELDS(entry)
        if None not in key:
            return key
    except KeyError:
        pass
    merged = dict(_TAG_DEFAULTS)
    merged.update({k: v for k, v in entry.items() if v is not None and k in merged})
    if merged["upstreamOltBandwidthProfile"] is None:
        merged["upstreamOltBandwidthProfile"] = merged["upstreamBandwidthProfile"]
    if merged["downstreamOltBandwidthProfile"] is None:
        merged["downstreamOltBandwidthProfile"] = merged["downstreamBandwidthProfile"]
    full: TagKey = _ALL_FIELDS(merged)
    return full


def minimal_tag(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry (ONOS's tagInfo) with the fields at their defaults left out: what SADIS
    serves so that ONOS reads back the very same entry."""
    full = canonical_tag(entry)
    out = {}
    for k, v in full.items():
        if k == "upstreamOltBandwidthProfile" and v == full["upstreamBandwidthProfile"]:
            continue
        if k == "downstreamOltBandwidthProfile" and v == full["downstreamBandwidthProfile"]:
            continue
        if v != _TAG_DEFAULTS[k]:
            out[k] = v
    return out


def plan_rates(
    policies: PolicySet, managed: Mapping[str, Mapping[str, Any]]
) -> dict[str, tuple[int | None, int | None]]:
    """Each plan's (download, upload) in bit/s; a file plan wins over a managed one."""
    specs: dict[str, Mapping[str, Any]] = dict(managed)
    for _path, doc in sorted(policies.under("radius").items()):
        specs.update(doc.get("plans", {}))
    out: dict[str, tuple[int | None, int | None]] = {}
    for name, spec in specs.items():
        try:
            down = parse_rate(spec["download"]) if spec.get("download") else None
            up = parse_rate(spec["upload"]) if spec.get("upload") else None
        except (ValueError, TypeError):
            continue  # the radius daemon reports a broken plan; SADIS serves the others
        out[name] = (down, up)
    return out


def profile_id(plan: str, direction: str, bps: int | None) -> str:
    """The bandwidth profile id of a plan's rate in one direction; ``Default`` if the plan
    sets none."""
    if not bps:
        return "Default"
    return f"{plan}-{direction}-{max(1, bps // 1000)}k"


def bandwidth_profile(name: str, kbps: int) -> dict[str, Any]:
    """A committed rate (kbit/s) with a 10 ms burst in kbit, as ONOS reads them."""
    return {
        "id": name,
        "cir": kbps,
        "cbs": max(MIN_BURST_KBIT, math.ceil(kbps * BURST_SECONDS)),
    }


def service_entry(
    s_tag: int, c_tag: int, tp_id: int, plan: str, rates: tuple[int | None, int | None]
) -> dict[str, Any]:
    """The uniTagList entry of a subscriber's service: its tags (any VLAN from the home
    gateway), technology profile and its plan's profiles, DHCP trapped. The tag priorities
    are left out: ONOS reads a missing one as "do not set", a 0 as "set to 0"."""
    down, up = rates
    return {
        "uniTagMatch": 4096,  # VlanId.ANY
        "ponCTag": c_tag,
        "ponSTag": s_tag,
        "technologyProfileId": tp_id,
        "upstreamBandwidthProfile": profile_id(plan, "up", up),
        "downstreamBandwidthProfile": profile_id(plan, "down", down),
        "isDhcpRequired": True,
        "serviceName": "hsia",
    }


def subscriber_entry(port_name: str, subscriber: str, tags: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": port_name,
        "nasPortId": port_name,
        "circuitId": port_name,
        "remoteId": subscriber,
        "uniTagList": list(tags),
    }


def olt_entry(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """An OLT's entry, or None while its NNI is not known."""
    if row["uplink"] is None:
        return None
    entry: dict[str, Any] = {"id": row["serial"], "uplinkPort": int(row["uplink"])}
    if _MAC.match(row["mac_address"] or ""):
        entry["hardwareIdentifier"] = row["mac_address"]
    host = str(row["host_and_port"]).rsplit(":", 1)[0]
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address):
            entry["ipAddress"] = host
    except ValueError:
        pass  # a host name (or a bracketed IPv6 address): ONOS's Ip4Address takes neither
    entry["nasId"] = row["serial"]
    return entry
