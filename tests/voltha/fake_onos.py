"""A fake ONOS for tests: the REST API of the ONOS ``olt`` app (opencord/olt) that provisions
subscriber services on ONU UNI ports, reading subscribers and bandwidth profiles from a SADIS
HTTP source the way ONOS's ``sadis`` app does.

Served with starlette + uvicorn on 127.0.0.1 (a free port), basic auth (onos/rocks unless
told otherwise; anything else is 401). Paths and status codes as
``web/src/main/java/org/opencord/olt/rest/OltWebResource.java`` (base ``/onos/olt``, from
``web/pom.xml``) and ``impl/.../Olt.java`` give them:

- ``GET  /onos/olt/oltapp/status``: 200.
- ``POST /onos/olt/oltapp/{device}/{port}``: 200 (``port`` not a number: 404). The olt app
  only queues the request, so a missing port, an NNI port, a subscriber already provisioned,
  a subscriber missing from SADIS or a missing bandwidth profile does not change the answer:
  it is recorded in ``failed`` instead (what ``volt-failed-subscribers`` would show).
- ``DELETE /onos/olt/oltapp/{device}/{port}``: 204, failures likewise only in ``failed``.
- ``POST|DELETE /onos/olt/oltapp/services/{portName}``: 500 ``ConnectPoint not found for
  <portName>`` if no device has a port of that name, else 200 (failures in ``failed``).
- ``POST /onos/olt/oltapp/services/{portName}/{sTag}/{cTag}/{tpId}``: 500 as above; 400 (ONOS's
  IllegalArgumentException mapper) for a tag that is not a VLAN id / ``None`` / ``Any`` or a
  tpId that is not an integer; 204 if the port is an NNI, SADIS has no such subscriber or no
  uniTagList entry with that ponSTag, ponCTag and technologyProfileId, or that service is
  already provisioned; else 200. A missing bandwidth profile is found after the answer (the
  meter service): 200 and an entry in ``failed``.
- ``DELETE`` of the same path: 500/400/204 as above, 204 also if the service is not
  provisioned; else 200.
- ``GET /onos/olt/oltapp/programmed-subscribers[/{deviceId}[/{port}]]``: 200
  ``{"entries": [{"location": "<device>/<port>", "tagInfo": {...}}]}``.

Two simplifications: the queued work is done before the answer is sent (so ``services`` and
``failed`` are up to date when the call returns), and nothing read from SADIS is cached.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import secrets
import socket
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from voltha_protos import device_pb2

if TYPE_CHECKING:
    from tests.voltha.fake_core import FakeVoltha

__all__ = ["FakeOnos", "ProvisionedService", "ServiceKey"]

# (portName, sTag, cTag, tpId): the olt app's ServiceKey (its port and UniTagInformation).
ServiceKey = tuple[str, int, int, int]

VLAN_NONE = -1  # onlab VlanId.NONE: (short) 0xffff
VLAN_ANY = 4096  # onlab VlanId.ANY
VLAN_NO_VID = 0  # onlab VlanId.NO_VID: what SADIS gives a missing tag
MAX_VLAN = 4095

_BASE = "/onos/olt/oltapp"


@dataclasses.dataclass
class ProvisionedService:
    """One service the fake olt app programmed: where, for whom, with which profiles."""

    device_id: str
    port_no: int
    port_name: str
    subscriber: dict[str, Any]
    uni_tag: dict[str, Any]
    bandwidth_profiles: dict[str, dict[str, Any]]

    @property
    def location(self) -> str:
        return f"{self.device_id}/{self.port_no}"


def _uni_tag(entry: dict[str, Any]) -> dict[str, Any]:
    """A SADIS uniTagList entry with the defaults sadis's UniTagInformationCodec applies."""

    def get(key: str, default: Any) -> Any:
        value = entry.get(key)
        return default if value is None else value

    us_bp = str(get("upstreamBandwidthProfile", ""))
    ds_bp = str(get("downstreamBandwidthProfile", ""))
    return {
        "uniTagMatch": int(get("uniTagMatch", VLAN_NO_VID)),
        "ponCTag": int(get("ponCTag", VLAN_NO_VID)),
        "ponSTag": int(get("ponSTag", VLAN_NO_VID)),
        "usPonCTagPriority": int(get("usPonCTagPriority", -1)),
        "usPonSTagPriority": int(get("usPonSTagPriority", -1)),
        "dsPonCTagPriority": int(get("dsPonCTagPriority", -1)),
        "dsPonSTagPriority": int(get("dsPonSTagPriority", -1)),
        "technologyProfileId": int(get("technologyProfileId", -1)),
        "upstreamBandwidthProfile": us_bp,
        "downstreamBandwidthProfile": ds_bp,
        "upstreamOltBandwidthProfile": str(get("upstreamOltBandwidthProfile", us_bp)),
        "downstreamOltBandwidthProfile": str(get("downstreamOltBandwidthProfile", ds_bp)),
        "serviceName": str(get("serviceName", "")),
        "enableMacLearning": bool(get("enableMacLearning", False)),
        "configuredMacAddress": str(get("configuredMacAddress", "")),
        "isDhcpRequired": bool(get("isDhcpRequired", False)),
        "isIgmpRequired": bool(get("isIgmpRequired", False)),
        "isPppoeRequired": bool(get("isPppoeRequired", False)),
    }


def _vlan(text: str) -> int:
    """onlab ``VlanId.vlanId(String)``: ``None``, ``Any`` or a short up to 4095."""
    if text == "None":
        return VLAN_NONE
    if text == "Any":
        return VLAN_ANY
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f'For input string: "{text}"') from None
    if not -32768 <= value <= 32767:
        raise ValueError(f'Value out of range. Value:"{text}" Radix:10')
    if value > MAX_VLAN:
        raise ValueError("value exceeds allowed maximum VLAN ID value (4095)")
    return value


def _error(code: int, message: str) -> JSONResponse:
    """ONOS's exception mappers answer ``{"code": ..., "message": ...}``."""
    return JSONResponse({"code": code, "message": message}, status_code=code)


class FakeOnos:
    """The ONOS olt app REST API, reading SADIS from ``sadis_url``.

    ``sadis_url`` is the SADIS server's base URL: subscribers are read from
    ``{sadis_url}/subscribers/{portName}``, bandwidth profiles from
    ``{sadis_url}/bandwidthprofiles/{id}``; any non-2xx answer, connection error or non-JSON
    body is "not found", as in sadis's InformationAdapter.

    ONOS knows the OLT ports: add them with ``add_port``, or pass ``voltha`` (a running
    ``FakeVoltha``) and every ONU UNI port there is a port of its OLT's ONOS device
    (``of:<datapath id>``, the UNI port number, named ``<serial>-<uni>``), as is each OLT's NNI
    (named ``nni-<port number>``; the olt app refuses subscribers on ``nni-`` ports).

    Public state for assertions:

    - ``services``: programmed services, ``ServiceKey`` -> ``ProvisionedService``;
    - ``requested``: services the app has taken in (provisioned status set; a service whose
      bandwidth profile was missing stays here until removed, as in the olt app);
    - ``failed``: ``(location or port name, reason)`` of provisioning that failed after the
      request was accepted, with the olt app's log texts;
    - ``requests``: ``(method, path)`` of every request received;
    - ``fail_next``: set to N to answer the next N authenticated requests with 500.
    """

    def __init__(
        self,
        sadis_url: str,
        *,
        username: str = "onos",
        password: str = "rocks",
        voltha: FakeVoltha | None = None,
    ) -> None:
        self.sadis_url = sadis_url.rstrip("/")
        self.username = username
        self.password = password
        self.voltha = voltha
        self.port = 0
        self.services: dict[ServiceKey, ProvisionedService] = {}
        self.requested: set[ServiceKey] = set()
        self.failed: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_next = 0
        self._ports: dict[tuple[str, int], str] = {}
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE"])]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> int:
        """Serve on a free 127.0.0.1 port; returns it."""
        if self._server is not None:
            raise RuntimeError("FakeOnos is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", server_header=False
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)  # serve() would set it
        self._http = httpx.AsyncClient(timeout=5.0)
        await server.startup(sockets=[sock])
        if not server.started:
            sock.close()
            raise OSError("FakeOnos could not start")
        self._server, self._socket = server, sock
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.should_exit = True
            await server.shutdown()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> FakeOnos:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- ports

    def add_port(self, device_id: str, port_no: int, name: str) -> None:
        """ONOS learns port ``port_no`` of ``device_id`` with annotation portName ``name``."""
        self._ports[(device_id, port_no)] = name

    def remove_port(self, device_id: str, port_no: int) -> None:
        self._ports.pop((device_id, port_no), None)

    def known_ports(self) -> dict[tuple[str, int], str]:
        """(ONOS device id, port number) -> port name, manual and from ``voltha``."""
        ports = dict(self._ports)
        if self.voltha is not None:
            for device in self.voltha.devices():
                olt_id = device.id if device.root else device.parent_id
                try:
                    onos_id = self.voltha.onos_device_id(olt_id)
                except (KeyError, ValueError):
                    continue
                for p in self.voltha.ports(device.id):
                    if device.root and p.type == device_pb2.Port.ETHERNET_NNI:
                        ports[(onos_id, p.port_no)] = f"nni-{p.port_no}"
                    elif not device.root and p.type == device_pb2.Port.ETHERNET_UNI:
                        ports[(onos_id, p.port_no)] = p.ofp_port.name
        return ports

    def _find_connect_point(self, port_name: str) -> tuple[str, int] | None:
        """Olt.findSubscriberConnectPoint: the first port with that portName."""
        for cp, name in self.known_ports().items():
            if name == port_name:
                return cp
        return None

    # ---------------------------------------------------------------- SADIS

    async def _sadis(self, kind: str, ident: str) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            answer = await self._http.get(f"{self.sadis_url}/{kind}/{ident}")
            if not answer.is_success:
                return None
            data = answer.json()
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # ---------------------------------------------------------------- olt app logic

    async def _program(
        self,
        device_id: str,
        port_no: int,
        port_name: str,
        sub: dict[str, Any],
        tags: list[dict[str, Any]],
    ) -> None:
        """The flow/meter services' part: each service needs its bandwidth profiles."""
        location = f"{device_id}/{port_no}"
        for tag in tags:
            key = (port_name, tag["ponSTag"], tag["ponCTag"], tag["technologyProfileId"])
            profiles: dict[str, dict[str, Any]] = {}
            missing = None
            for field in (
                "upstreamBandwidthProfile",
                "downstreamBandwidthProfile",
                "upstreamOltBandwidthProfile",
                "downstreamOltBandwidthProfile",
            ):
                bp_id = tag[field]
                if bp_id in profiles:
                    continue
                bp = await self._sadis("bandwidthprofiles", bp_id) if bp_id else None
                if bp is None:
                    missing = bp_id
                    break
                profiles[bp_id] = bp
            if missing is not None:
                self.failed.append(
                    (location, f"BandwidthProfile {missing} information not found in sadis")
                )
                continue
            self.services[key] = ProvisionedService(
                device_id, port_no, port_name, sub, tag, profiles
            )

    async def _provision_port(self, device_id: str, port_no: int) -> None:
        """Olt.provisionSubscriber(ConnectPoint), the queued part."""
        location = f"{device_id}/{port_no}"
        name = self.known_ports().get((device_id, port_no))
        if name is None:
            self.failed.append((location, "device or port not found"))
            return
        if name.startswith("nni-"):
            self.failed.append((location, f"will not provision a subscriber on the NNI {location}"))
            return
        if any(k[0] == name for k in self.requested):
            self.failed.append((location, f"Subscriber on {location} is already provisioned"))
            return
        sub = await self._sadis("subscribers", name)
        if sub is None:
            self.failed.append(
                (location, f"Subscriber information not found in sadis for port {location}")
            )
            return
        tags = [_uni_tag(t) for t in sub.get("uniTagList") or [] if isinstance(t, dict)]
        for tag in tags:
            self.requested.add((name, tag["ponSTag"], tag["ponCTag"], tag["technologyProfileId"]))
        await self._program(device_id, port_no, name, sub, tags)

    async def _remove_port(self, device_id: str, port_no: int) -> None:
        """Olt.removeSubscriber(ConnectPoint), the queued part."""
        location = f"{device_id}/{port_no}"
        name = self.known_ports().get((device_id, port_no))
        if name is None:
            self.failed.append((location, "device or port not found"))
            return
        if name.startswith("nni-"):
            self.failed.append(
                (location, f"will not un-provision a subscriber on the NNI {location}")
            )
            return
        if not any(k[0] == name for k in self.requested):
            self.failed.append((location, f"Subscriber on {location} is not provisioned"))
            return
        sub = await self._sadis("subscribers", name)
        if sub is None:
            self.failed.append(
                (location, f"Subscriber information not found in sadis for port {location}")
            )
            return
        for raw in sub.get("uniTagList") or []:
            if isinstance(raw, dict):
                tag = _uni_tag(raw)
                key = (name, tag["ponSTag"], tag["ponCTag"], tag["technologyProfileId"])
                self.requested.discard(key)
                self.services.pop(key, None)

    async def _service_tag(
        self, port_name: str, s_tag: int, c_tag: int, tp_id: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Olt.getUniTagInformation: the subscriber and its matching uniTagList entry."""
        sub = await self._sadis("subscribers", port_name)
        if sub is None or not isinstance(sub.get("uniTagList"), list):
            return None
        for raw in sub["uniTagList"]:
            if not isinstance(raw, dict):
                continue
            tag = _uni_tag(raw)
            if (tag["ponCTag"], tag["ponSTag"], tag["technologyProfileId"]) == (
                c_tag,
                s_tag,
                tp_id,
            ):
                return sub, tag
        return None

    # ---------------------------------------------------------------- HTTP

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(
            password, self.password
        )

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if not self._authorized(request):
            return Response(
                "Unauthorized",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="karaf"'},
            )
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, "injected failure")
        if not path.startswith(_BASE + "/"):
            return _error(404, "HTTP 404 Not Found")
        parts = path[len(_BASE) + 1 :].split("/")
        async with self._lock:
            return await self._route(request.method, parts)

    async def _route(self, method: str, parts: list[str]) -> Response:
        not_found = _error(404, "HTTP 404 Not Found")
        if parts == ["status"] and method == "GET":
            return Response(status_code=200)
        if parts[0] == "programmed-subscribers" and method == "GET" and len(parts) <= 3:
            return self._programmed(
                parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""
            )
        if parts[0] == "services" and len(parts) in (2, 5) and method in ("POST", "DELETE"):
            return await self._services(method, parts[1:])
        if len(parts) == 2 and method in ("POST", "DELETE"):
            device_id, port_text = parts
            try:
                port_no = int(port_text)  # a JAX-RS long path param; no conversion: 404
            except ValueError:
                return not_found
            if method == "POST":
                await self._provision_port(device_id, port_no)
                return Response(b"", status_code=200, media_type="application/json")
            await self._remove_port(device_id, port_no)
            return Response(status_code=204)
        return not_found

    async def _services(self, method: str, args: list[str]) -> Response:
        port_name = args[0]
        tags: tuple[int, int, int] | None = None
        if len(args) == 4:
            try:
                s_tag, c_tag = _vlan(args[1]), _vlan(args[2])
                tp_id = int(args[3])
            except ValueError as exc:
                return _error(400, str(exc))
            tags = (s_tag, c_tag, tp_id)
        cp = self._find_connect_point(port_name)
        if cp is None:
            return Response(
                f"ConnectPoint not found for {port_name}",
                status_code=500,
                media_type="application/json",
            )
        device_id, port_no = cp
        ok = Response(b"", status_code=200, media_type="application/json")
        if tags is None:
            if method == "POST":
                await self._provision_port(device_id, port_no)
            else:
                await self._remove_port(device_id, port_no)
            return ok
        no_content = Response(status_code=204)
        if port_name.startswith("nni-"):
            return no_content
        s_tag, c_tag, tp_id = tags
        found = await self._service_tag(port_name, s_tag, c_tag, tp_id)
        if found is None:
            return no_content
        sub, tag = found
        key = (port_name, s_tag, c_tag, tp_id)
        if method == "POST":
            if key in self.requested:
                return no_content
            self.requested.add(key)
            await self._program(device_id, port_no, port_name, sub, [tag])
            return ok
        if key not in self.requested:
            return no_content
        self.requested.discard(key)
        self.services.pop(key, None)
        return ok

    def _programmed(self, device_id: str, port: str) -> Response:
        entries = [
            {"location": s.location, "tagInfo": s.uni_tag}
            for s in self.services.values()
            if (not device_id or s.device_id == device_id) and (not port or str(s.port_no) == port)
        ]
        return JSONResponse({"entries": entries})
