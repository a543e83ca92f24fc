"""ONOS's olt app REST API (opencord/olt ``OltWebResource``): provision and remove a
subscriber's service on an ONU's UNI port, by port name (``<ONU serial>-<UNI>``), s-tag, c-tag
and technology profile, and read the services it has programmed. ONOS reads the rest
(bandwidth profiles, DHCP...) from our SADIS.

The olt app's answers say little: 200 means it took the request in (the flows come later),
204 that it did nothing (no such service in SADIS, already there, not there to remove), and
500 with "ConnectPoint not found" that no device has a port of that name. What it has really
programmed is in ``programmed-subscribers``: a location (``<device>/<port>``) and the
service's entry for each.

Every call has one deadline for the whole exchange (httpx's timeouts are per read: an ONOS
that sends its answer a byte at a time would hold the call for ever). A call that gets no
answer in time is an ``OnosError`` with status 0, ``unavailable``."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

NO_PORT = "ConnectPoint not found"


class OnosError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ONOS: {status}: {message}")
        self.status = status
        self.message = message

    @property
    def unavailable(self) -> bool:
        """ONOS did not answer (refused, timed out, cut): not an answer about the request."""
        return self.status == 0

    @property
    def no_port(self) -> bool:
        """ONOS has no port of that name (the ONU or its UNI is not in ONOS)."""
        return self.status == 500 and NO_PORT in self.message


class Onos:
    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"), auth=(user, password), timeout=timeout
        )
        self.timeout = timeout

    async def close(self) -> None:
        await self.http.aclose()

    def _path(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> str:
        return f"/onos/olt/oltapp/services/{quote(port_name, safe='')}/{s_tag}/{c_tag}/{tp_id}"

    async def _call(self, method: str, path: str) -> httpx.Response:
        try:
            async with asyncio.timeout(self.timeout):
                r = await self.http.request(method, path)
        except TimeoutError:
            raise OnosError(0, f"no answer in {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise OnosError(0, f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 300:
            raise OnosError(r.status_code, r.text[:200])
        return r

    async def provision(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> int:
        """POST the service; 200 (taken in) or 204 (nothing done). OnosError otherwise."""
        r = await self._call("POST", self._path(port_name, s_tag, c_tag, tp_id))
        return r.status_code

    async def remove(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> int:
        """DELETE the service; 200 (taken in) or 204 (nothing done: SADIS describes no
        such service, or not the one ONOS holds, or ONOS holds none)."""
        r = await self._call("DELETE", self._path(port_name, s_tag, c_tag, tp_id))
        return r.status_code

    async def programmed(self, location: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(location, tagInfo) of every programmed service, or those at ``location``
        (``<device>/<port>``). OnosError when ONOS does not answer or answers nonsense."""
        path = "/onos/olt/oltapp/programmed-subscribers"
        if location:
            device, _, port = location.rpartition("/")
            path += f"/{quote(device, safe='')}/{quote(port, safe='')}"
        r = await self._call("GET", path)
        try:
            entries = r.json().get("entries", [])
        except (ValueError, AttributeError):
            raise OnosError(r.status_code, "programmed-subscribers: not a JSON object") from None
        out = []
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict) and isinstance(e.get("tagInfo"), dict):
                out.append((str(e.get("location", "")), e["tagInfo"]))
        return out
