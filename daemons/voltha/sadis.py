"""SADIS for ONOS: the subscriber and bandwidth-profile source ONOS's olt app reads over
HTTP, built from our PostgreSQL (``/subscribers/<id>``, ``/bandwidthprofiles/<id>``).

- ``/subscribers/<ONU serial>-<UNI>``: a bound ONU's UNI port (ONOS names UNI ports so):
  its subscriber, and one ``uniTagList`` entry with the binding's s-tag (``ponSTag``),
  c-tag (``ponCTag``), technology profile and the bandwidth profiles of the subscriber's plan.
- ``/subscribers/<OLT serial>``: an OLT synced from VOLTHA: its NNI port (``uplinkPort``),
  address and NAS id.
- ``/bandwidthprofiles/<plan>-down`` and ``<plan>-up``: the plan's download and upload
  rates (policies/radius plans and those managed through the API) as committed rates in
  kbit/s, with a burst of 10 ms at that rate; ``Default`` for the OLT's default flows.
Anything else is 404, which ONOS treats as unknown.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.radius.policy import parse_rate
from daemons.store import api as api_store

log = logging.getLogger("netd.voltha")
_ratelog = RateLimitedLog(log)

DEFAULT_PROFILE = {"id": "Default", "cir": 0, "cbs": 0, "eir": 1000, "ebs": 30_000, "air": 0}


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


def bandwidth_profile(name: str, bps: int) -> dict[str, Any]:
    kbps = max(1, bps // 1000)
    return {
        "id": name,
        "cir": kbps,
        "cbs": max(1522, bps // 8 // 100),  # bytes: 10 ms at the rate, at least one frame
        "eir": 0,
        "ebs": 0,
        "air": 0,
        "gir": 0,
    }


def subscriber_entry(port_name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    plan = row["plan"]
    return {
        "id": port_name,
        "nasPortId": port_name,
        "circuitId": port_name,
        "remoteId": row["subscriber"],
        "uniTagList": [
            {
                "uniTagMatch": 4096,  # any (untagged or any VLAN) from the home gateway
                "ponCTag": row["c_tag"],
                "ponSTag": row["s_tag"],
                "usPonCTagPriority": 0,
                "usPonSTagPriority": 0,
                "dsPonCTagPriority": 0,
                "dsPonSTagPriority": 0,
                "technologyProfileId": row["tp_id"],
                "upstreamBandwidthProfile": f"{plan}-up",
                "downstreamBandwidthProfile": f"{plan}-down",
                "isDhcpRequired": True,
                "isIgmpRequired": False,
                "enableMacLearning": False,
                "serviceName": "hsia",
            }
        ],
    }


def olt_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    host = str(row["host_and_port"]).rsplit(":", 1)[0]
    return {
        "id": row["serial"],
        "uplinkPort": int(row["uplink"] or 0),
        "hardwareIdentifier": "",
        "ipAddress": host,
        "nasId": row["serial"],
    }


class Sadis:
    """ASGI: GET /subscribers/<id>, GET /bandwidthprofiles/<id>."""

    def __init__(
        self, pool: asyncpg.Pool, policies: Any, allow: Sequence[str] = ("127.0.0.0/8", "::1/128")
    ) -> None:
        self.pool = pool
        self.policies = policies  # a callable returning the current PolicySet
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow]
        self.refused = 0

    def allowed(self, client: Any) -> bool:
        """Whether the peer (ASGI ``scope["client"]``) is in ``voltha.sadis_allow``."""
        if not client:
            return False  # a Unix socket or an unknown peer: not ONOS
        try:
            addr = ipaddress.ip_address(str(client[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.allow)

    async def lookup(self, kind: str, key: str) -> dict[str, Any] | None:
        """The entry for ``key``, or None. Any key is accepted: it comes from the URL."""
        if "\0" in key:  # PostgreSQL refuses NUL in text; no serial or plan holds one
            return None
        if kind == "subscribers":
            serial, sep, uni = key.rpartition("-")
            # ASCII digits only ("²".isdigit() is true, int("²") fails), few enough to fit
            # the integer column: a UNI port number.
            if sep and uni.isascii() and uni.isdigit() and len(uni) <= 9:
                row = await self.pool.fetchrow(
                    "SELECT b.subscriber, b.s_tag, b.c_tag, b.tp_id, s.plan FROM onu_bindings b "
                    "JOIN subscribers s ON s.username = b.subscriber "
                    "WHERE b.serial = $1 AND b.uni = $2 AND s.state = 'active'",
                    serial,
                    int(uni),
                )
                if row is None:  # unbound, but ONOS may still have to remove its service
                    row = await self.pool.fetchrow(
                        "SELECT subscriber, s_tag, c_tag, tp_id, plan FROM voltha_services "
                        "WHERE serial = $1 AND uni = $2 LIMIT 1",
                        serial,
                        int(uni),
                    )
                if row:
                    return subscriber_entry(key, dict(row))
            olt = await self.pool.fetchrow(
                "SELECT d.serial, d.host_and_port, (SELECT p.port_no FROM voltha_ports p "
                "WHERE p.stack = d.stack AND p.device_id = d.id AND p.type = 'ETHERNET_NNI' "
                "ORDER BY p.port_no LIMIT 1) AS uplink FROM voltha_devices d "
                "WHERE d.kind = 'olt' AND d.serial = $1 LIMIT 1",
                key,
            )
            return olt_entry(dict(olt)) if olt else None
        if kind == "bandwidthprofiles":
            if key == "Default":
                return DEFAULT_PROFILE
            plan, sep, direction = key.rpartition("-")
            if not sep or direction not in ("down", "up"):
                return None
            rates = plan_rates(self.policies(), await api_store.list_plans(self.pool))
            if plan not in rates:
                return None
            bps = rates[plan][0 if direction == "down" else 1]
            return bandwidth_profile(key, bps) if bps else None
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not self.allowed(scope.get("client")):
            self.refused += 1
            _ratelog.log(
                logging.WARNING,
                "sadis-refused",
                "SADIS request from an address not in voltha.sadis_allow; refused",
                client=str((scope.get("client") or ("?",))[0]),
                refused=self.refused,
            )
            await _send(send, 403, {"error": "forbidden"})
            return
        parts = [p for p in scope["path"].split("/") if p]
        body: Any = None
        if scope["method"] == "GET" and len(parts) == 2 and len(parts[1]) <= 128:
            try:
                body = await self.lookup(parts[0], parts[1])
            except (asyncpg.PostgresError, OSError):
                await _send(send, 503, {"error": "store unavailable"})
                return
        if body is None:
            await _send(send, 404, {"error": "not found"})
        else:
            await _send(send, 200, body)


async def _send(send: Any, status: int, body: Any) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
