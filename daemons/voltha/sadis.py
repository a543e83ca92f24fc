"""SADIS for ONOS: the subscriber and bandwidth-profile source ONOS's olt app reads over
HTTP, built from our PostgreSQL (``/subscribers/<id>``, ``/bandwidthprofiles/<id>``).

Every entry is written for the way ONOS's sadis app reads it (opencord/sadis
``SubscriberManager``: Jackson with ONOS's own types; what it cannot convert makes the whole
entry missing): field names and JSON types as ``SubscriberAndDeviceInformation``,
``UniTagInformation`` and ``BandwidthProfileInformation`` declare them, optional fields left
out rather than sent empty, rates in kbit/s and bursts in kbit.

- ``/subscribers/<ONU serial>-<UNI>``: a UNI port (ONOS names UNI ports so). While ONOS
  holds services on the port (``voltha_onos_services``), exactly their entries, as served when
  they were provisioned: the olt app matches the whole entry to remove one, so a new VLAN
  tag or rate is served only once the old service is gone. Otherwise the bound
  subscriber's entry: its tags, technology profile and the bandwidth profiles of its plan.
- ``/subscribers/<OLT serial>``: an OLT synced from VOLTHA: its NNI (``uplinkPort``, the olt
  app's only way to find it; unknown yet: 404), its MAC as ``hardwareIdentifier`` and its
  address as ``ipAddress`` when they are what ONOS can parse (a MAC, an IPv4 literal; a
  host name is left out), and its serial as NAS id.
- ``/bandwidthprofiles/<plan>-<down|up>-<rate>k``: the plan's rate as the committed rate in
  kbit/s, a burst of 10 ms at that rate in kbit (at least one 1522-byte frame). The rate is
  in the id: ONOS makes one meter per profile id and device and reuses it, so a plan's new
  rate must come under a new id to reach the OLTs. ``Default`` for the OLT's default flows;
  ``<plan>-<dir>`` (what netd served before) with the plan's current rate.
Anything else is 404, which ONOS treats as unknown.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from daemons.core.ratelog import RateLimitedLog
from daemons.store import api as api_store
from daemons.voltha.entries import (
    DEFAULT_PROFILE,
    bandwidth_profile,
    olt_entry,
    plan_rates,
    service_entry,
    subscriber_entry,
)

log = logging.getLogger("netd.voltha")
_ratelog = RateLimitedLog(log)
_PROFILE_ID = re.compile(r"^(?P<plan>.+)-(?P<dir>down|up)-(?P<kbps>[1-9][0-9]{0,9})k$")


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

    async def _rates(self) -> dict[str, tuple[int | None, int | None]]:
        return plan_rates(self.policies(), await api_store.list_plans(self.pool))

    async def _port(self, key: str, serial: str, uni: int) -> dict[str, Any] | None:
        rows = await self.pool.fetch(
            "SELECT subscriber, tag_info::text AS tag_info FROM voltha_onos_services "
            "WHERE lower(serial) = lower($1) AND uni = $2 "
            "ORDER BY provisioned_at, s_tag, c_tag, tp_id",
            serial,
            uni,
        )
        if rows:  # what ONOS holds, until it has removed it
            tags = [json.loads(r["tag_info"]) for r in rows]
            return subscriber_entry(key, rows[-1]["subscriber"], tags)
        row = await self.pool.fetchrow(
            "SELECT b.subscriber, b.s_tag, b.c_tag, b.tp_id, s.plan FROM onu_bindings b "
            "JOIN subscribers s ON s.username = b.subscriber "
            "WHERE lower(b.serial) = lower($1) AND b.uni = $2 AND s.state = 'active'",
            serial,
            uni,
        )
        if row is None:
            return None
        rates = (await self._rates()).get(row["plan"], (None, None))
        entry = service_entry(row["s_tag"], row["c_tag"], row["tp_id"], row["plan"], rates)
        return subscriber_entry(key, row["subscriber"], [entry])

    async def _profile(self, key: str) -> dict[str, Any] | None:
        if key == "Default":
            return DEFAULT_PROFILE
        match = _PROFILE_ID.match(key)
        if match is not None:
            plan = match["plan"]
            known = plan in await self._rates() or await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM voltha_onos_services WHERE plan = $1)", plan
            )
            return bandwidth_profile(key, int(match["kbps"])) if known else None
        plan, sep, direction = key.rpartition("-")  # <plan>-<dir>: what netd served before
        if not sep or direction not in ("down", "up"):
            return None
        rates = (await self._rates()).get(plan)
        bps = rates[0 if direction == "down" else 1] if rates else None
        return bandwidth_profile(key, max(1, bps // 1000)) if bps else None

    async def lookup(self, kind: str, key: str) -> dict[str, Any] | None:
        """The entry for ``key``, or None. Any key is accepted: it comes from the URL."""
        if "\0" in key:  # PostgreSQL refuses NUL in text; no serial or plan holds one
            return None
        if kind == "subscribers":
            serial, sep, uni = key.rpartition("-")
            # ASCII digits only ("²".isdigit() is true, int("²") fails), few enough to fit
            # the integer column: a UNI port number.
            if sep and uni.isascii() and uni.isdigit() and len(uni) <= 9:
                found = await self._port(key, serial, int(uni))
                if found is not None:
                    return found
            olt = await self.pool.fetchrow(
                "SELECT d.serial, d.host_and_port, d.mac_address, (SELECT p.port_no FROM "
                "voltha_ports p WHERE p.stack = d.stack AND p.device_id = d.id "
                "AND p.type = 'ETHERNET_NNI' ORDER BY p.port_no LIMIT 1) AS uplink "
                "FROM voltha_devices d WHERE d.kind = 'olt' AND d.serial = $1 LIMIT 1",
                key,
            )
            return olt_entry(dict(olt)) if olt else None
        if kind == "bandwidthprofiles":
            return await self._profile(key)
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
