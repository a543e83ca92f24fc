"""A fake ONOS for tests: the REST API of the ONOS ``olt`` app (opencord/olt) that provisions
subscriber services on ONU UNI ports, reading subscribers and bandwidth profiles from a SADIS
HTTP source with the sadis app's own parsing rules (``onos_rules.py``).

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
  tpId that is not an integer; 204 if the port is the OLT's NNI (SADIS ``uplinkPort``), SADIS
  has no such subscriber or no uniTagList entry with that ponSTag, ponCTag and
  technologyProfileId (``Olt.getUniTagInformation``: a miss invalidates the cache and reads
  again), or that very service (port and the whole UniTagInformation, ``ServiceKey.equals``)
  is already provisioned; else 200. What fails after the answer (a missing bandwidth profile,
  an OLT whose SADIS entry ONOS cannot read so that it has no NNI) is in ``failed``.
- ``DELETE`` of the same path: 500/400/204 as above; 204 also when the service SADIS now
  describes is not the one provisioned (the olt app compares the whole UniTagInformation:
  SADIS serving new tags or profiles makes the old service unremovable by tags); else 200.
- ``GET /onos/olt/oltapp/programmed-subscribers[/{deviceId}[/{port}]]``: 200
  ``{"entries": [{"location": "<device>/<port>", "tagInfo": {...}}]}``, the tag info in
  ``UniTagInformationCodec``'s encoding (``OltFlowService.getProgrammedSubscribers``: services
  whose flows are there, not those pending removal or removed).

With ``voltha`` (a running ``FakeVoltha``) it follows the devices as ONOS's device service
would (opencord/olt ``Olt.java`` ``OltDeviceListener``): an OLT whose logical device goes away
(its REBOOTED transition, or its deletion) is purged: every service and provisioned subscriber
on it is forgotten (``purgeDeviceFlows``); a UNI port that goes down or away loses its flows
but stays provisioned, and a provisioned port that comes back up at the same place gets every
service SADIS lists for it again (``handleOltPort``). Programming a service tells the core, so
the ONU's reason moves to ``tech-profile-config-download-success`` and ``omci-flows-pushed``.

Meters are made per device and bandwidth profile id the first time a service needs them
and reused after (``OltMeterService.programmedMeters``): new rates under an old profile id
never reach the OLT.

Two simplifications: the queued work is done before the answer is sent (so ``services`` and
``failed`` are up to date when the call returns), and nothing read from SADIS is cached.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import secrets
import socket
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from voltha_protos import common_pb2, device_pb2

from tests.voltha.onos_rules import (
    Unparsable,
    canonical_tag,
    parse_bandwidth_profile,
    parse_subscriber,
)

if TYPE_CHECKING:
    from tests.voltha.fake_core import FakeVoltha

__all__ = ["FakeOnos", "ProvisionedService", "ServiceKey"]

# (portName, sTag, cTag, tpId): how tests name a service.
ServiceKey = tuple[str, int, int, int]
# The olt app's ServiceKey: the connect point, the port name and the whole UniTagInformation.
_Key = tuple[str, int, str, str]

VLAN_NONE = -1  # onlab VlanId.NONE: (short) 0xffff
VLAN_ANY = 4096  # onlab VlanId.ANY
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


def _tag_json(tag: dict[str, Any]) -> str:
    return json.dumps(tag, sort_keys=True)


def _name(key: _Key) -> ServiceKey:
    tag = json.loads(key[3])
    return (key[2], tag["ponSTag"], tag["ponCTag"], tag["technologyProfileId"])


def _vlan(text: str) -> int:
    """onlab ``VlanId.vlanId(String)``: ``None``, ``Any`` or a short up to 4095."""
    if text in ("None", "-1"):
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

    ``sadis_url`` is the SADIS server's base URL: subscribers and devices are read from
    ``{sadis_url}/subscribers/{id}``, bandwidth profiles from
    ``{sadis_url}/bandwidthprofiles/{id}``; any non-2xx answer, connection error, non-JSON
    body or body ONOS cannot parse is "not found", as in sadis's InformationAdapter.

    ONOS knows the OLTs and their ports: add them with ``add_device`` and ``add_port``, or
    pass ``voltha`` (a running ``FakeVoltha``) and every OLT there is an ONOS device
    (``of:<datapath id>``, its serial number), every ONU UNI port a port of it (the UNI port
    number, named ``<serial>-<uni>``, up while the port is ACTIVE), as is each OLT's NNI. The
    olt app takes an OLT's NNI from the ``uplinkPort`` of the OLT's own SADIS entry
    (``OltDeviceService.getNniPort``): an OLT entry ONOS cannot read means no NNI, and no
    subscriber flows on that OLT.

    Public state for assertions:

    - ``services``: programmed services, ``ServiceKey`` -> ``ProvisionedService``;
    - ``requested``: services the app has taken in (provisioned status set; a service whose
      flows failed stays here until removed, as in the olt app);
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
        self.failed: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_next = 0
        self._requested: dict[_Key, bool] = {}  # provisionedSubscribers
        self._programmed: dict[_Key, ProvisionedService] = {}  # cpStatus, flows added
        self._ports: dict[tuple[str, int], str] = {}
        self._devices: dict[str, str] = {}  # ONOS device id -> serial number
        self._up: dict[tuple[str, int], str] = {}  # ports ONOS last saw enabled
        self._olts: set[tuple[str, int]] = set()  # OLT logical devices ONOS last saw
        # OltMeterService.programmedMeters: one meter per device and bandwidth profile id,
        # made from SADIS the first time and reused after (a profile's new rates under the
        # same id never reach the OLT).
        self._meters: dict[tuple[str, str], dict[str, Any]] = {}
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._follow: asyncio.Task[None] | None = None
        self._cache: dict[str, Any] = {}
        self._changes = 0  # programmed services added or removed
        self._listed: tuple[int, bytes] = (-1, b"")  # the last full programmed-subscribers
        self._cache_version = -1
        self._dirty = asyncio.Event()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE"])]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> dict[ServiceKey, ProvisionedService]:
        return {_name(k): s for k, s in self._programmed.items()}

    @property
    def requested(self) -> set[ServiceKey]:
        return {_name(k) for k, on in self._requested.items() if on}

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
        if self.voltha is not None:
            self._up = self._enabled_ports()
            self._olts = {(k, g) for k, (_s, g) in self._voltha_olts().items()}
            self.voltha.subscribe(self._dirty.set)
            self._follow = asyncio.get_running_loop().create_task(self._follow_devices())
        return self.port

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        if self.voltha is not None:
            self.voltha.unsubscribe(self._dirty.set)
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

    # ---------------------------------------------------------------- devices and ports

    def add_device(self, device_id: str, serial: str) -> None:
        """ONOS learns device ``device_id`` with serial number ``serial`` (its SADIS key)."""
        self._devices[device_id] = serial

    def add_port(self, device_id: str, port_no: int, name: str) -> None:
        """ONOS learns port ``port_no`` of ``device_id`` with annotation portName ``name``."""
        self._ports[(device_id, port_no)] = name

    def remove_port(self, device_id: str, port_no: int) -> None:
        self._ports.pop((device_id, port_no), None)

    def _cached(self, name: str, build: Any) -> Any:
        """``build()``, computed once per state of the fake core."""
        assert self.voltha is not None
        if self._cache_version != self.voltha.version:
            self._cache = {}
            self._cache_version = self.voltha.version
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def _voltha_olts(self) -> dict[str, tuple[str, int]]:
        """ONOS device id -> (serial, logical device generation) of every OLT of the fake
        core with a logical device."""
        if self.voltha is None:
            return {}
        return dict(self._cached("olts", self._build_olts))

    def _build_olts(self) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        assert self.voltha is not None
        for device in self.voltha.devices():
            if device.root and device.oper_status != common_pb2.OperStatus.REBOOTED:
                with contextlib.suppress(KeyError, ValueError):
                    out[self.voltha.onos_device_id(device.id)] = (
                        device.serial_number,
                        self.voltha.logical_device(device.id),
                    )
        return out

    def _voltha_ports(self, enabled_only: bool) -> dict[tuple[str, int], str]:
        if self.voltha is None:
            return {}
        ports, up, _onus = self._cached("ports", self._build_ports)
        return dict(up if enabled_only else ports)

    def _build_ports(
        self,
    ) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], str], dict[tuple[str, int], str]]:
        """All ports, the enabled ones, and the ONU device of each UNI port."""
        ports: dict[tuple[str, int], str] = {}
        up: dict[tuple[str, int], str] = {}
        onus: dict[tuple[str, int], str] = {}
        assert self.voltha is not None
        olts = {d.id: d for d in self.voltha.devices() if d.root}
        for device in self.voltha.devices():
            olt = olts.get(device.id if device.root else device.parent_id)
            if olt is None or olt.oper_status == common_pb2.OperStatus.REBOOTED:
                continue  # rw_core deleted the logical device
            try:
                onos_id = self.voltha.onos_device_id(olt.id)
            except (KeyError, ValueError):
                continue
            for p in self.voltha.ports(device.id):
                cp = (onos_id, p.port_no)
                if device.root and p.type == device_pb2.Port.ETHERNET_NNI:
                    ports[cp] = f"nni-{p.port_no}"
                elif not device.root and p.type == device_pb2.Port.ETHERNET_UNI:
                    ports[cp] = p.ofp_port.name
                    onus[cp] = device.id
                else:
                    continue
                if p.oper_status == common_pb2.OperStatus.ACTIVE:
                    up[cp] = ports[cp]
        return ports, up, onus

    def known_ports(self) -> dict[tuple[str, int], str]:
        """(ONOS device id, port number) -> port name, manual and from ``voltha``."""
        return {**self._ports, **self._voltha_ports(False)}

    def _enabled_ports(self) -> dict[tuple[str, int], str]:
        return {**self._ports, **self._voltha_ports(True)}

    def _serial(self, device_id: str) -> str | None:
        if device_id in self._devices:
            return self._devices[device_id]
        found = self._voltha_olts().get(device_id)
        return found[0] if found else None

    def _find_connect_point(self, port_name: str) -> tuple[str, int] | None:
        """Olt.findSubscriberConnectPoint: the first port with that portName."""
        for cp, name in self.known_ports().items():
            if name == port_name:
                return cp
        return None

    # ---------------------------------------------------------------- SADIS

    async def _sadis(self, kind: str, ident: str) -> dict[str, Any] | None:
        """InformationAdapter.get: the entry as ONOS parses it, or None."""
        assert self._http is not None
        try:
            answer = await self._http.get(f"{self.sadis_url}/{kind}/{ident}")
            if not answer.is_success:
                return None
            data = answer.json()
        except (httpx.HTTPError, ValueError):
            return None
        try:
            if kind == "subscribers":
                return parse_subscriber(data)
            return parse_bandwidth_profile(data)
        except Unparsable:
            return None

    async def _olt_info(self, device_id: str) -> dict[str, Any] | None:
        """OltDeviceService.getOltInfo: the OLT's SADIS entry, by its serial number."""
        serial = self._serial(device_id)
        return None if serial is None else await self._sadis("subscribers", serial)

    async def _is_nni(self, device_id: str, port_no: int) -> bool:
        """OltDeviceService.isNniPort: the port is the OLT entry's uplinkPort."""
        info = await self._olt_info(device_id)
        return info is not None and info["uplinkPort"] == port_no

    # ---------------------------------------------------------------- olt app logic

    def _flows_pushed(self, device_id: str, port_no: int, pushed: bool) -> None:
        if self.voltha is None:
            return
        onu = self._cached("ports", self._build_ports)[2].get((device_id, port_no))
        if onu is not None:
            self.voltha.flows_changed(onu, pushed)

    async def _program(
        self, device_id: str, port_no: int, port_name: str, sub: dict[str, Any], tags: list[Any]
    ) -> None:
        """OltFlowService.handleSubscriberFlows: each service needs the OLT's NNI and its
        bandwidth profiles (meters)."""
        location = f"{device_id}/{port_no}"
        olt = await self._olt_info(device_id)
        nni = olt["uplinkPort"] if olt is not None else -1
        if (device_id, nni) not in self.known_ports():
            self.failed.append(
                (
                    location,
                    "Cannot configure DP flows as upstream port is not configured for "
                    f"subscriber {sub.get('id')} on {location}",
                )
            )
            return
        for tag in tags:
            key = (device_id, port_no, port_name, _tag_json(tag))
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
                bp = self._meters.get((device_id, bp_id))
                if bp is None and bp_id:
                    bp = await self._sadis("bandwidthprofiles", bp_id)
                if bp is None:
                    missing = bp_id
                    break
                self._meters[(device_id, bp_id)] = bp
                profiles[bp_id] = bp
            if missing is not None:
                self.failed.append(
                    (location, f"BandwidthProfile {missing} information not found in sadis")
                )
                continue
            self._changes += 1
            self._programmed[key] = ProvisionedService(
                device_id, port_no, port_name, sub, tag, profiles
            )
            self._flows_pushed(device_id, port_no, True)

    def _unprogram(self, key: _Key) -> None:
        if self._programmed.pop(key, None) is not None:
            self._changes += 1
            device_id, port_no = key[0], key[1]
            if not any(k[:2] == (device_id, port_no) for k in self._programmed):
                self._flows_pushed(device_id, port_no, False)

    def _provisioned_on(self, device_id: str, port_no: int, name: str) -> bool:
        """OltFlowService.isSubscriberServiceProvisioned(AccessDevicePort)."""
        return any(k[:3] == (device_id, port_no, name) and on for k, on in self._requested.items())

    async def _provision_port(self, device_id: str, port_no: int) -> None:
        """Olt.provisionSubscriber(ConnectPoint), the queued part."""
        location = f"{device_id}/{port_no}"
        name = self.known_ports().get((device_id, port_no))
        if name is None:
            self.failed.append((location, "device or port not found"))
            return
        if await self._is_nni(device_id, port_no):
            self.failed.append((location, f"will not provision a subscriber on the NNI {location}"))
            return
        if self._provisioned_on(device_id, port_no, name):
            self.failed.append((location, f"Subscriber on {location} is already provisioned"))
            return
        sub = await self._sadis("subscribers", name)
        if sub is None:
            self.failed.append(
                (location, f"Subscriber information not found in sadis for port {location}")
            )
            return
        tags = list(sub.get("uniTagList") or [])
        for tag in tags:
            self._requested[(device_id, port_no, name, _tag_json(tag))] = True
        await self._program(device_id, port_no, name, sub, tags)

    async def _remove_port(self, device_id: str, port_no: int) -> None:
        """Olt.removeSubscriber(ConnectPoint), the queued part."""
        location = f"{device_id}/{port_no}"
        name = self.known_ports().get((device_id, port_no))
        if name is None:
            self.failed.append((location, "device or port not found"))
            return
        if await self._is_nni(device_id, port_no):
            self.failed.append(
                (location, f"will not un-provision a subscriber on the NNI {location}")
            )
            return
        if not self._provisioned_on(device_id, port_no, name):
            self.failed.append((location, f"Subscriber on {location} is not provisioned"))
            return
        sub = await self._sadis("subscribers", name)
        if sub is None:
            self.failed.append(
                (location, f"Subscriber information not found in sadis for port {location}")
            )
            return
        for tag in sub.get("uniTagList") or []:
            key = (device_id, port_no, name, _tag_json(tag))
            self._requested.pop(key, None)
            self._unprogram(key)

    async def _service_tag(
        self, port_name: str, s_tag: int, c_tag: int, tp_id: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Olt.getUniTagInformation + OltUtils.getUniTagInformation: the subscriber and the
        first uniTagList entry with that ponCTag, ponSTag and technologyProfileId."""
        sub = await self._sadis("subscribers", port_name)
        if sub is None or not isinstance(sub.get("uniTagList"), list):
            return None
        for tag in sub["uniTagList"]:
            if (tag["ponCTag"], tag["ponSTag"], tag["technologyProfileId"]) == (
                c_tag,
                s_tag,
                tp_id,
            ):
                return sub, tag
        return None

    # ---------------------------------------------------------------- following the devices

    async def _follow_devices(self) -> None:
        """Olt.OltDeviceListener, for the fake core's devices."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            async with self._lock:
                await self._device_events()

    async def _device_events(self) -> None:
        olts = {(k, g) for k, (_s, g) in self._voltha_olts().items()}
        for gone, _generation in self._olts - olts:
            # DEVICE_AVAILABILITY_CHANGED (ports gone) or DEVICE_REMOVED: purgeDeviceFlows,
            # purgeDeviceMeters.
            for key in [k for k in self._programmed if k[0] == gone]:
                del self._programmed[key]
                self._changes += 1
            for key in [k for k in self._requested if k[0] == gone]:
                del self._requested[key]
            for meter in [m for m in self._meters if m[0] == gone]:
                del self._meters[meter]
        self._olts = olts
        up = self._enabled_ports()
        for cp, name in self._up.items():
            if up.get(cp) != name:  # UNI disabled or removed: flows go, provisioned stays
                for key in [k for k in self._programmed if k[:3] == (*cp, name)]:
                    self._unprogram(key)
        for cp, name in up.items():
            if self._up.get(cp) != name and self._provisioned_on(cp[0], cp[1], name):
                # handleOltPort: a provisioned UNI back up gets what SADIS lists for it.
                sub = await self._sadis("subscribers", name)
                if sub is not None:
                    await self._program(cp[0], cp[1], name, sub, list(sub.get("uniTagList") or []))
        self._up = up

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
            if self.voltha is not None and self._dirty.is_set():
                self._dirty.clear()
                await self._device_events()  # events already delivered before this request
            return await self._route(request.method, parts)

    async def _route(self, method: str, parts: list[str]) -> Response:
        not_found = _error(404, "HTTP 404 Not Found")
        if parts == ["status"] and method == "GET":
            return Response(status_code=200)
        if parts[0] == "programmed-subscribers" and method == "GET" and len(parts) <= 3:
            return self._programmed_response(
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
        if await self._is_nni(device_id, port_no):
            return no_content
        s_tag, c_tag, tp_id = tags
        found = await self._service_tag(port_name, s_tag, c_tag, tp_id)
        if found is None:
            return no_content
        sub, tag = found
        key = (device_id, port_no, port_name, _tag_json(tag))
        if method == "POST":
            if self._requested.get(key):
                return no_content
            self._requested[key] = True
            await self._program(device_id, port_no, port_name, sub, [tag])
            return ok
        if not self._requested.get(key):
            return no_content
        self._requested.pop(key, None)
        self._unprogram(key)
        return ok

    def _programmed_response(self, device_id: str, port: str) -> Response:
        if not device_id and not port and self._listed[0] == self._changes:
            return Response(self._listed[1], media_type="application/json")
        entries = [
            {"location": s.location, "tagInfo": canonical_tag(s.uni_tag)}
            for s in self._programmed.values()
            if (not device_id or s.device_id == device_id) and (not port or str(s.port_no) == port)
        ]
        body = json.dumps({"entries": entries}).encode()
        if not device_id and not port:
            self._listed = (self._changes, body)
        return Response(body, media_type="application/json")
