"""ONOS's olt app REST API: provision and remove a subscriber's service on an ONU's UNI
port, by port name (``<ONU serial>-<UNI>``), s-tag, c-tag and technology profile. ONOS
reads the rest (bandwidth profiles, DHCP...) from our SADIS.

Every call has one deadline for the whole exchange (httpx's timeouts are per read: an ONOS
that sends its answer a byte at a time would hold the call for ever). A call that gets no
answer in time is an ``OnosError`` with status 0, ``unavailable``."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx


class OnosError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ONOS: {status}: {message}")
        self.status = status

    @property
    def unavailable(self) -> bool:
        """ONOS did not answer (refused, timed out, cut): not an answer about the request."""
        return self.status == 0


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

    async def _call(self, method: str, path: str) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                r = await self.http.request(method, path)
        except TimeoutError:
            raise OnosError(0, f"no answer in {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise OnosError(0, f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 300:
            raise OnosError(r.status_code, r.text[:200])
        return r.status_code

    async def provision(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> None:
        """The olt app answers 200 when it takes the service in, and 204 when it does
        nothing: the service is already there, or SADIS has no such subscriber or tags.
        A 204 counts only if the service is among the programmed subscribers."""
        status = await self._call("POST", self._path(port_name, s_tag, c_tag, tp_id))
        if status == 204 and not await self.programmed(s_tag, c_tag, tp_id):
            raise OnosError(
                204, f"nothing provisioned for {port_name}: SADIS has no such subscriber or tags"
            )

    async def programmed(self, s_tag: int, c_tag: int, tp_id: int) -> bool:
        """Whether a subscriber service with these tags is programmed (on any port)."""
        try:
            async with asyncio.timeout(self.timeout):
                r = await self.http.get("/onos/olt/oltapp/programmed-subscribers")
            entries = r.json().get("entries", []) if r.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError, TimeoutError):
            return False
        for e in entries:
            tag = e.get("tagInfo", {}) if isinstance(e, dict) else {}
            if (tag.get("ponSTag"), tag.get("ponCTag"), tag.get("technologyProfileId")) == (
                s_tag,
                c_tag,
                tp_id,
            ):
                return True
        return False

    async def remove(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> None:
        await self._call("DELETE", self._path(port_name, s_tag, c_tag, tp_id))
