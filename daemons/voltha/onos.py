"""ONOS's olt app REST API: provision and remove a subscriber's service on an ONU's UNI
port, by port name (``<ONU serial>-<UNI>``), s-tag, c-tag and technology profile. ONOS
reads the rest (bandwidth profiles, DHCP...) from our SADIS."""

from __future__ import annotations

from urllib.parse import quote

import httpx


class OnosError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ONOS: {status}: {message}")
        self.status = status


class Onos:
    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"), auth=(user, password), timeout=timeout
        )

    async def close(self) -> None:
        await self.http.aclose()

    def _path(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> str:
        return f"/onos/olt/oltapp/services/{quote(port_name, safe='')}/{s_tag}/{c_tag}/{tp_id}"

    async def _call(self, method: str, path: str) -> None:
        try:
            r = await self.http.request(method, path)
        except httpx.HTTPError as exc:
            raise OnosError(0, f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 300:
            raise OnosError(r.status_code, r.text[:200])

    async def provision(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> None:
        await self._call("POST", self._path(port_name, s_tag, c_tag, tp_id))

    async def remove(self, port_name: str, s_tag: int, c_tag: int, tp_id: int) -> None:
        await self._call("DELETE", self._path(port_name, s_tag, c_tag, tp_id))
