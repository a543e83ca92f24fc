"""ONOS's own rules for reading SADIS over HTTP, written down to check what netd serves and
to let the fake ONOS read it the way the real one does. Nothing here comes from netd.

How ONOS reads a remote SADIS entry (opencord/sadis, master in 2025):

- ``app/.../impl/InformationAdapter.java`` ``get``: the body is read with a Jackson
  ``ObjectMapper`` into the information class. An ``UnrecognizedPropertyException`` (a
  field the class does not have) is logged and the body read a second time ignoring
  unknown fields; any other failure (not JSON, a value that does not convert) is logged at
  debug and the entry counts as missing ("Data not found for id").
- ``app/.../impl/SubscriberManager.java`` ``registerModule``: the mapper for subscribers
  and devices has custom deserializers for ``VlanId`` (``VlanId.vlanId((short)
  node.asInt())``), ``Ip4Address`` (``Ip4Address.valueOf(node.asText())``) and
  ``UniTagInformation``; ``MacAddress`` has none, so Jackson uses its static
  ``valueOf(String)`` factory (``valueOf(long)`` for a JSON number).
- ``api/.../SubscriberAndDeviceInformation.java`` (+ ``BaseInformation``): the fields and
  their Java types: ``id``, ``nasPortId``, ``nasId``, ``circuitId``, ``remoteId`` String;
  ``uplinkPort``, ``slot`` int (default -1); ``hardwareIdentifier`` MacAddress;
  ``ipAddress`` Ip4Address; ``nniDhcpTrapVid`` VlanId; ``uniTagList`` a list.
- ``app/.../impl/SubscriberAndDeviceInformationConfig.java`` ``getUniTagInformation``: a
  uniTagList entry field by field with its default when absent: tags ``shortValue()``
  (0, ``VlanId.NO_VID``, for anything that is not a JSON number), priorities ``asInt()``
  (default -1: "do not set"), ``technologyProfileId`` (default -1), the OLT bandwidth
  profiles default to the subscriber ones, booleans ``asBoolean()``.
- ``api/.../BandwidthProfileInformation.java``: ``id``; ``pir``, ``cir``, ``eir``,
  ``air``, ``gir`` long; ``pbs``, ``cbs``, ``ebs`` Long. "the rate information must be in
  Kbps and burst must be in Kbits"; opencord/olt ``OltMeterService.createMeterBands``
  passes them to the meter as they are ("already Kbps", "already Kbits") and keeps one
  meter per bandwidth profile id and device (``programmedMeters``).
- ``app/.../impl/UniTagInformationCodec.java`` ``encode``: how the olt app's
  ``programmed-subscribers`` shows a service (every field, defaults filled in).
- opennetworkinglab/onos ``utils/misc/.../MacAddress.java`` (``valueOf``: six pairs of hex
  digits separated by ':'), ``Ip4Address.java`` (``valueOf(String)``: Guava's
  ``InetAddresses.forString``, an IP literal, never a host name, and IPv4 only),
  ``VlanId.java`` (``vlanId(short)``: 4096 is ANY, -1 NONE, above 4095 refused).

``parse_*`` apply those rules and raise ``Unparsable`` where ONOS would count the entry as
missing. ``problems`` adds what ONOS tolerates but netd must never serve: fields ONOS does
not know, JSON types that only convert by accident, VLAN ids, priorities or technology
profiles out of range, and bursts that are not kbit.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = [
    "Unparsable",
    "canonical_tag",
    "parse_bandwidth_profile",
    "parse_subscriber",
    "problems",
]

VLAN_NONE = -1  # (short) 0xffff, VlanId.UNTAGGED
VLAN_ANY = 4096  # VlanId.ANY_VALUE
VLAN_NO_VID = 0
MAX_VLAN = 4095

_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:]){5}([0-9A-Fa-f]{2})$")
_DEVICE_FIELDS = {
    "id": "string",
    "nasPortId": "string",
    "uplinkPort": "int",
    "slot": "int",
    "hardwareIdentifier": "mac",
    "ipAddress": "ip4",
    "nasId": "string",
    "circuitId": "string",
    "remoteId": "string",
    "nniDhcpTrapVid": "vlan",
    "uniTagList": "list",
}
_TAG_FIELDS = {
    "uniTagMatch": "int",
    "ponCTag": "int",
    "ponSTag": "int",
    "usPonCTagPriority": "int",
    "usPonSTagPriority": "int",
    "dsPonCTagPriority": "int",
    "dsPonSTagPriority": "int",
    "technologyProfileId": "int",
    "upstreamBandwidthProfile": "string",
    "downstreamBandwidthProfile": "string",
    "upstreamOltBandwidthProfile": "string",
    "downstreamOltBandwidthProfile": "string",
    "serviceName": "string",
    "enableMacLearning": "bool",
    "configuredMacAddress": "string",
    "isDhcpRequired": "bool",
    "isIgmpRequired": "bool",
    "isPppoeRequired": "bool",
}
_PROFILE_FIELDS = {
    "id": "string",
    "pir": "long",
    "pbs": "Long",
    "cir": "long",
    "cbs": "Long",
    "eir": "long",
    "ebs": "Long",
    "air": "long",
    "gir": "long",
}
MIN_BURST_KBIT = 12.176  # one 1522-byte frame


class Unparsable(ValueError):
    """ONOS would fail to read the entry: to the olt app it does not exist."""


# ---------------------------------------------------------------- Jackson/JsonNode helpers


def _short(value: int) -> int:
    """Java's (short) cast."""
    value &= 0xFFFF
    return value - 0x10000 if value >= 0x8000 else value


def _as_int(node: Any) -> int:
    """JsonNode.asInt(): numbers truncated, numeric text parsed, anything else 0."""
    if isinstance(node, bool):
        return int(node)
    if isinstance(node, int | float):
        return int(node)
    if isinstance(node, str):
        try:
            return int(node.strip())
        except ValueError:
            return 0
    return 0


def _short_value(node: Any) -> int:
    """JsonNode.shortValue(): a number cast to short, anything else 0."""
    if isinstance(node, int | float) and not isinstance(node, bool):
        return _short(int(node))
    return 0


def _as_text(node: Any) -> str:
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, str):
        return node
    if isinstance(node, int | float):
        return str(node)
    return ""  # containers


def _as_boolean(node: Any) -> bool:
    if isinstance(node, bool):
        return node
    if isinstance(node, int | float):
        return node != 0
    if isinstance(node, str):
        return node.strip().lower() == "true"
    return False


def _vlan(value: int) -> int:
    """VlanId.vlanId(short)."""
    value = _short(value)
    if value in (VLAN_NONE, VLAN_ANY):
        return value
    if value > MAX_VLAN:
        raise Unparsable("value exceeds allowed maximum VLAN ID value (4095)")
    return value


def _jackson_string(name: str, node: Any) -> str | None:
    if node is None:
        return None
    if isinstance(node, dict | list):
        raise Unparsable(f"{name}: cannot deserialize a String out of a {type(node).__name__}")
    return _as_text(node)


def _jackson_int(name: str, node: Any, default: int | None) -> int | None:
    """Jackson into int/long: numbers (floats truncated), numeric text; null gives the
    primitive's 0 or the boxed null."""
    if node is None:
        return default
    if isinstance(node, bool | dict | list):
        raise Unparsable(f"{name}: cannot coerce {type(node).__name__} to a number")
    if isinstance(node, int | float):
        return int(node)
    try:
        return int(str(node).strip())
    except ValueError:
        raise Unparsable(f"{name}: not a valid number: {node!r}") from None


def mac_value_of(text: str) -> str:
    """MacAddress.valueOf(String), in ONOS's own spelling (upper case)."""
    if not _MAC.match(text):
        raise Unparsable(
            "Specified MAC Address must contain 12 hex digits separated pairwise by :'s."
        )
    return text.upper()


def ip4_value_of(text: str) -> str:
    """Ip4Address.valueOf(String): Guava's InetAddresses.forString, then IPv4 only."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise Unparsable(f"Invalid IP address string: {text}") from None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is None:  # Java's getByAddress turns a mapped address into an Inet4Address
            raise Unparsable(f"Invalid IPv4 version address string: /{text}")
        return str(mapped)
    return str(addr)


# ---------------------------------------------------------------- parsing


def canonical_tag(node: Any) -> dict[str, Any]:
    """A uniTagList entry as ONOS holds it (SubscriberAndDeviceInformationConfig's
    getUniTagInformation), in UniTagInformationCodec's encoding."""
    n = node if isinstance(node, dict) else {}

    def has(key: str) -> bool:
        return n.get(key) is not None

    us_bp = _as_text(n["upstreamBandwidthProfile"]) if has("upstreamBandwidthProfile") else None
    ds_bp = _as_text(n["downstreamBandwidthProfile"]) if has("downstreamBandwidthProfile") else None
    return {
        "uniTagMatch": _vlan(_as_int(n["uniTagMatch"])) if has("uniTagMatch") else VLAN_NO_VID,
        "ponCTag": _vlan(_short_value(n["ponCTag"])) if has("ponCTag") else VLAN_NO_VID,
        "ponSTag": _vlan(_short_value(n["ponSTag"])) if has("ponSTag") else VLAN_NO_VID,
        "usPonCTagPriority": _as_int(n["usPonCTagPriority"]) if has("usPonCTagPriority") else -1,
        "usPonSTagPriority": _as_int(n["usPonSTagPriority"]) if has("usPonSTagPriority") else -1,
        "dsPonCTagPriority": _as_int(n["dsPonCTagPriority"]) if has("dsPonCTagPriority") else -1,
        "dsPonSTagPriority": _as_int(n["dsPonSTagPriority"]) if has("dsPonSTagPriority") else -1,
        "technologyProfileId": (
            _as_int(n["technologyProfileId"]) if has("technologyProfileId") else -1
        ),
        "upstreamBandwidthProfile": us_bp,
        "downstreamBandwidthProfile": ds_bp,
        "upstreamOltBandwidthProfile": (
            _as_text(n["upstreamOltBandwidthProfile"])
            if has("upstreamOltBandwidthProfile")
            else us_bp
        ),
        "downstreamOltBandwidthProfile": (
            _as_text(n["downstreamOltBandwidthProfile"])
            if has("downstreamOltBandwidthProfile")
            else ds_bp
        ),
        "serviceName": _as_text(n["serviceName"]) if has("serviceName") else "",
        "enableMacLearning": has("enableMacLearning") and _as_boolean(n["enableMacLearning"]),
        "configuredMacAddress": (
            _as_text(n["configuredMacAddress"]) if has("configuredMacAddress") else ""
        ),
        "isDhcpRequired": has("isDhcpRequired") and _as_boolean(n["isDhcpRequired"]),
        "isIgmpRequired": has("isIgmpRequired") and _as_boolean(n["isIgmpRequired"]),
        "isPppoeRequired": has("isPppoeRequired") and _as_boolean(n["isPppoeRequired"]),
    }


def parse_subscriber(doc: Any) -> dict[str, Any]:
    """A /subscribers/<id> body as the sadis app reads it, or Unparsable."""
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    out: dict[str, Any] = {"uplinkPort": -1, "slot": -1, "nniDhcpTrapVid": VLAN_NO_VID}
    for key, node in doc.items():
        kind = _DEVICE_FIELDS.get(key)
        if kind is None:
            continue  # the second read ignores unknown fields
        if kind == "string":
            out[key] = _jackson_string(key, node)
        elif kind == "int":
            got = _jackson_int(key, node, 0)
            if got is None or not -(2**31) <= got < 2**31:
                raise Unparsable(f"{key}: out of the range of int")
            out[key] = got
        elif kind == "mac":
            if node is None:
                out[key] = None
            elif isinstance(node, str):
                out[key] = mac_value_of(node)
            elif isinstance(node, int) and not isinstance(node, bool):
                out[key] = ":".join(f"{(node >> s) & 0xFF:02X}" for s in range(40, -8, -8))
            else:
                raise Unparsable(f"{key}: no MacAddress from a {type(node).__name__}")
        elif kind == "ip4":
            out[key] = None if node is None else ip4_value_of(_as_text(node))
        elif kind == "vlan":
            out[key] = None if node is None else _vlan(_as_int(node))
        elif kind == "list":
            if node is None:
                out[key] = None
            elif not isinstance(node, list):
                raise Unparsable(f"{key}: cannot deserialize a List out of a scalar")
            else:
                out[key] = [canonical_tag(t) for t in node]
    return out


def parse_bandwidth_profile(doc: Any) -> dict[str, Any]:
    """A /bandwidthprofiles/<id> body as the sadis app reads it, or Unparsable."""
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    out: dict[str, Any] = {
        "id": None,
        "pir": 0,
        "pbs": None,
        "cir": 0,
        "cbs": None,
        "eir": 0,
        "ebs": None,
        "air": 0,
        "gir": 0,
    }
    for key, node in doc.items():
        kind = _PROFILE_FIELDS.get(key)
        if kind is None:
            continue
        if kind == "string":
            out[key] = _jackson_string(key, node)
        else:
            out[key] = _jackson_int(key, node, None if kind == "Long" else 0)
    return out


# ---------------------------------------------------------------- strict checks


def _json_type_problems(doc: dict[str, Any], fields: dict[str, str], where: str) -> list[str]:
    out = []
    for key, value in doc.items():
        kind = fields.get(key)
        if kind is None:
            out.append(f"{where}{key}: not a field ONOS reads (it logs a warning, reads again)")
            continue
        if value is None:
            out.append(f"{where}{key}: null (leave an optional field out)")
            continue
        if kind in ("string", "mac", "ip4") and not isinstance(value, str):
            out.append(f"{where}{key}: a {type(value).__name__}, not a JSON string")
        elif kind in ("int", "long", "Long", "vlan") and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            out.append(f"{where}{key}: a {type(value).__name__}, not a JSON integer")
        elif kind == "bool" and not isinstance(value, bool):
            out.append(f"{where}{key}: a {type(value).__name__}, not a JSON boolean")
        elif kind == "list" and not isinstance(value, list):
            out.append(f"{where}{key}: not a JSON array")
    return out


def _tag_problems(raw: Any, i: int) -> list[str]:
    where = f"uniTagList[{i}]."
    if not isinstance(raw, dict):
        return [f"uniTagList[{i}]: not a JSON object"]
    out = _json_type_problems(raw, _TAG_FIELDS, where)
    tag = canonical_tag(raw)
    for key in ("ponCTag", "ponSTag"):
        if not 1 <= tag[key] <= 4094:
            out.append(f"{where}{key}: {tag[key]} is not a VLAN id (1-4094)")
    for key in (k for k in raw if k.endswith("Priority")):
        if not 0 <= tag[key] <= 7:
            out.append(f"{where}{key}: {tag[key]} is not a PCP (0-7)")
        elif raw[key] == 0:
            out.append(f"{where}{key}: 0 sets the PCP to 0; leave it out for 'do not set'")
    if not 64 <= tag["technologyProfileId"] <= 255:
        out.append(f"{where}technologyProfileId: {tag['technologyProfileId']} (64-255)")
    for key in ("upstreamBandwidthProfile", "downstreamBandwidthProfile"):
        if not tag[key]:
            out.append(f"{where}{key}: missing (the olt app needs a meter)")
    return out


def problems(kind: str, key: str, doc: Any) -> list[str]:
    """Everything wrong with one entry netd serves: ``kind`` is ``subscribers`` or
    ``bandwidthprofiles``, ``key`` the id ONOS asked for. Empty when ONOS reads it as
    meant."""
    try:
        parsed = parse_subscriber(doc) if kind == "subscribers" else parse_bandwidth_profile(doc)
    except Unparsable as exc:
        return [f"ONOS cannot read it: {exc}"]
    assert isinstance(doc, dict)
    if parsed["id"] != key:
        return [f"id {parsed['id']!r} is not the id asked for ({key!r})"]
    if kind == "bandwidthprofiles":
        out = _json_type_problems(doc, _PROFILE_FIELDS, "")
        if parsed["cir"] == 0 and parsed["eir"] == 0 and parsed["pir"] == 0:
            out.append("no rate at all (cir, eir and pir are 0)")
        for rate, burst in (("cir", "cbs"), ("eir", "ebs"), ("pir", "pbs")):
            value, size = parsed[rate], parsed[burst]
            if size is None:
                continue
            if size < 0 or value < 0:
                out.append(f"{rate}/{burst}: negative")
            elif value and size > value:
                out.append(
                    f"{burst} {size} kbit is more than one second at {rate} {value} kbit/s: "
                    "bytes where ONOS reads kbit?"
                )
            elif value and size < MIN_BURST_KBIT:
                out.append(f"{burst} {size} kbit is less than one 1522-byte frame")
        return out
    out = _json_type_problems(doc, _DEVICE_FIELDS, "")
    if doc.get("uniTagList") is not None:
        if not doc["uniTagList"]:
            out.append("uniTagList: empty")
        for i, raw in enumerate(doc["uniTagList"] or []):
            out += _tag_problems(raw, i)
    else:  # an OLT: the olt app takes its NNI from uplinkPort
        if parsed["uplinkPort"] < 0:
            out.append("uplinkPort: missing (the olt app finds no NNI)")
    return out
