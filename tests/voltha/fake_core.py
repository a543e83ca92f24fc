"""A fake VOLTHA core for tests: the northbound gRPC API of voltha-go's rw_core, with the
OLT (openolt) and ONU (openonu) adapters behind it simulated in-process.

``FakeVoltha`` serves ``voltha.VolthaService`` (the wheel's ``VolthaServiceServicer``) and
``extension.Extension`` (the service voltctl reads ``onuOpticalInfo``, ``oltRxPower``,
``onuPonInfo`` and ``oltPonStats`` through; rw_core registers it on the same NBI port) with
grpc.aio on 127.0.0.1. Status codes and texts are the ones voltha-go gives; where a message
comes from a Go ``errors.New``/``fmt.Errorf`` rather than a gRPC status, grpc-go sends it as
UNKNOWN with the text, and so does this fake. Sources the semantics were read from
(opencord repositories, master in 2025-2026):

- voltha-go ``rw_core/core/device/manager_nbi.go``, ``manager.go``, ``agent.go``,
  ``agent_image.go``, ``extension_manager.go``, ``manager_sbi.go`` (ChildDeviceDetected),
  ``state/transitions.go`` (an OLT reboot deletes the child devices);
- voltha-openolt-adapter ``internal/pkg/core/device_handler.go`` and ``openolt.go`` (port
  numbers and labels, ONU discovery, GetSingleValue for the OLT);
- voltha-openonu-adapter-go ``internal/pkg/core/openonu.go``, ``device_handler.go``,
  ``internal/pkg/common/defines.go`` (device reasons), ``swupg/omci_onu_upgrade.go`` (image
  states) and ``omcitst/omci_self_test_handler.go`` (optical info).

What the simulated adapters do, in ``step_seconds`` steps (all cancelled by ``stop``; resumed
from the stored state by ``restart``, like adapters reconnecting to a restarted core):

- OLT enable: when EnableDevice returns, admin ENABLED / oper ACTIVATING (the core) and
  connect REACHABLE, device info (vendor, model, serial, MAC from the host address), one
  ETHERNET_NNI port (``1<<24 | i``, label ``nni-i``) and N PON_OLT ports (``2<<28 | i``,
  label ``pon-i``; oper DISCOVERED); one step later oper ACTIVE and the ports ACTIVE.
  Disable: admin DISABLED / oper UNKNOWN, PON ports UNKNOWN, ONUs UNREACHABLE / DISCOVERED
  (``stopping-openomci``) until re-enabled.
- OLT reboot (openolt ``device_handler.go`` ``updateStateRebooted``, voltha-go
  ``state/transitions.go``): the OLT is UNREACHABLE / UNKNOWN while it boots; then it reports
  REACHABLE / REBOOTED, and rw_core's transition for that state deletes the logical device
  and the ONU devices, one at a time (``manager_state_callback.go``
  ``DeleteAllChildDevices``: a sync can see some gone and some not, and a device listed a
  moment ago answers NOT_FOUND); openolt's resources are reset, so once the OLT is ACTIVE
  again its ONUs are discovered anew: new device ids, and ONU ids (so UNI port numbers) in
  the order they are found, here the reverse of the old one.
- ONU discovery (``discover_onu``; openolt ``onuDiscIndication``, rw_core
  ``ChildDeviceDetected``): a new child device, admin ENABLED (rw_core enables every child
  it creates), oper DISCOVERED / REACHABLE ("onu-discovered-reachable"), reason
  ``activating-onu``; then ACTIVATING ``starting-openomci`` (PON_ONU and ETHERNET_UNI ports
  created), ``discovery-mibsync-complete``, ACTIVE ``initial-mib-downloaded`` (UNI ports
  ACTIVE). Flows pushed by ONOS (``flows_changed``) move the reason to
  ``tech-profile-config-download-success``, then ``omci-flows-pushed``; their removal to
  ``omci-flows-deleted``, then ``tech-profile-config-delete-success`` (openonu
  ``device_handler.go`` ``ReasonUpdate`` calls).
- Disable/EnableOnuSerialNumber (voltha-go ``agent.go`` ``disableOnuSerialNumber``): the
  core sets the ONU device's admin state and nothing else; the OLT remembers the serial, but
  an ONU discovered again is a new device, enabled like any other.
- ONU image upgrade (openonu ``openonu.go`` ``DownloadOnuImage`` and ``swupg``): a URL with
  ``https:`` is refused by the adapter (an error, which rw_core reports as DOWNLOAD_FAILED /
  UNKNOWN_ERROR), one openonu's HTTP client cannot fetch (another scheme) as DOWNLOAD_FAILED
  / INVALID_URL, both in DownloadImageToDevice's own answer; otherwise DOWNLOAD_STARTED ->
  IMAGE_DOWNLOADING -> DOWNLOAD_SUCCEEDED / IMAGE_INACTIVE (or DOWNLOAD_FAILED with a reason
  / IMAGE_DOWNLOADING_ABORTED). Activation reboots the ONU (IMAGE_ACTIVATING; the device goes
  DISCOVERED ``rebooting``, then UNREACHABLE, then through its bring-up again); while it
  reboots, GetImageStatus for it answers what rw_core answers when the adapter does not:
  DOWNLOAD_UNKNOWN / UNKNOWN_ERROR / IMAGE_UNKNOWN (``manager_nbi.go`` ``GetImageStatus``).
  Back up with the new version: IMAGE_ACTIVE; commit IMAGE_COMMITTING -> IMAGE_COMMITTED.
- Extension values: openolt's ``getPONRxPower`` and ``getPonPortStats`` split the port label
  at "-" and index the second part with no check, and the adapter has no panic recovery: a
  label without a "-" kills it (counted in ``adapter_crashes``; the call fails UNAVAILABLE).
- The NBI server enforces grpc-go's default keepalive policy (voltha-lib-go's
  ``pkg/grpc/server.go`` passes no ``KeepaliveEnforcementPolicy``; grpc-go
  ``keepalive/keepalive.go`` and ``internal/transport/http2_server.go`` ``handlePing``): a
  client ping sooner than 5 minutes after the last one, or any ping while no call is open,
  is a strike, and the third strike closes the connection with GOAWAY ENHANCE_YOUR_CALM
  ("too_many_pings"), failing the calls on it. gRPC C-core, which serves here, applies the
  same rule when given those settings. ``keepalive_min_time`` scales the 5 minutes for tests.

Test controls are plain methods (``discover_onu``, ``set_onu_optics``, ...); every state
change wakes ``wait_for``. Nothing here is thread-safe: use it from the event loop that
called ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import grpc
from google.protobuf import empty_pb2
from voltha_protos import (
    common_pb2,
    device_pb2,
    extensions_pb2,
    extensions_pb2_grpc,
    openflow_13_pb2,
    voltha_pb2_grpc,
)

__all__ = [
    "NNI_PORT_BASE",
    "OLT_TYPE",
    "ONU_TYPE",
    "PON_PORT_BASE",
    "FakeVoltha",
    "pon_port_no",
    "uni_port_no",
]

AdminState = common_pb2.AdminState
OperStatus = common_pb2.OperStatus
ConnectStatus = common_pb2.ConnectStatus
Port = device_pb2.Port
ImageState = device_pb2.ImageState
GetValueResponse = extensions_pb2.GetValueResponse

OLT_TYPE = "openolt"
ONU_TYPE = "brcm_openomci_onu"
OLT_ADAPTER_ENDPOINT = "voltha-openolt-adapter.voltha.svc:50060"
ONU_ADAPTER_ENDPOINT = "voltha-openonu-adapter.voltha.svc:50060"

# voltha-lib-go pkg/platform: IntfIDToPortNo and MkUniPortNum.
NNI_PORT_BASE = 1 << 24
PON_PORT_BASE = 2 << 28

# voltha-openonu-adapter-go internal/pkg/common/defines.go, DeviceReasonMap.
REASON_ACTIVATING_ONU = "activating-onu"
REASON_STARTING_OPENOMCI = "starting-openomci"
REASON_MIBSYNC_COMPLETE = "discovery-mibsync-complete"
REASON_MIB_DOWNLOADED = "initial-mib-downloaded"
REASON_ADMIN_LOCK = "omci-admin-lock"
REASON_REENABLED = "onu-reenabled"
REASON_STOPPING_OPENOMCI = "stopping-openomci"
REASON_REBOOTING = "rebooting"
REASON_TP_DOWNLOADED = "tech-profile-config-download-success"
REASON_FLOWS_PUSHED = "omci-flows-pushed"
REASON_FLOWS_DELETED = "omci-flows-deleted"
REASON_TP_DELETED = "tech-profile-config-delete-success"

# grpc-go's server defaults (keepalive/keepalive.go EnforcementPolicy, internal/transport
# defaults.go and http2_server.go): MinTime 5 minutes, PermitWithoutStream false, and the
# connection closed past maxPingStrikes = 2.
GRPC_GO_MIN_PING_INTERVAL = 300.0
GRPC_GO_MAX_PING_STRIKES = 2

_VOLTHA_SERVICE = "voltha.VolthaService"


def pon_port_no(intf_id: int) -> int:
    """The PON_OLT port number of PON interface ``intf_id`` (the ONU's ``parent_port_no``)."""
    return PON_PORT_BASE | intf_id


def uni_port_no(intf_id: int, onu_id: int, uni_id: int) -> int:
    """The ETHERNET_UNI port number openonu gives UNI ``uni_id`` of ONU ``onu_id``."""
    return (intf_id << 16) | (onu_id << 8) | uni_id


def _mac_from_host(host_and_port: str, device_id: str) -> str:
    """Like openolt's generateMacFromHost: an IPv4 host becomes 00:00:a:b:c:d; anything else
    (no DNS lookups here) a stable MAC derived from the address or the device id."""
    host = host_and_port.rsplit(":", 1)[0] if host_and_port else ""
    with contextlib.suppress(ValueError):
        ip = ipaddress.IPv4Address(host)
        return "00:00:" + ":".join(f"{octet:02x}" for octet in ip.packed)
    digest = hashlib.sha256((host or device_id).encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


class VolthaError(Exception):
    """An RPC failure: the servicer aborts the call with ``code`` and ``details``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclasses.dataclass
class _Optics:
    rx_dbm: float = -20.0
    tx_dbm: float = 2.0
    voltage_v: float = 3.3
    bias_ma: float = 10.0
    temperature_c: float = 40.0


@dataclasses.dataclass
class _OltRx:
    dbm: float
    status: str = "success"
    fail_reason: str = "FAIL_REASON_NONE"


@dataclasses.dataclass
class _ImageJob:
    """One ONU's upgrade of one image version (openonu keeps one upgrade FSM per ONU)."""

    state: device_pb2.ImageState
    activate_on_success: bool = False
    commit_on_success: bool = False
    fail_reason: int | None = None  # set when the download is to fail


class _Interceptor(grpc.aio.ServerInterceptor):
    """Records every unary call, holds it while ``hang`` is set, turns ``VolthaError`` into
    the call's status and base-class (unimplemented) methods into UNIMPLEMENTED."""

    def __init__(self, fake: FakeVoltha) -> None:
        self._fake = fake

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        full = str(handler_call_details.method)  # "/voltha.VolthaService/CreateDevice"
        service, _, method = full.lstrip("/").partition("/")
        name = method if service == _VOLTHA_SERVICE else f"{service.rsplit('.', 1)[-1]}/{method}"
        inner = handler.unary_unary
        fake = self._fake

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            copy = type(request)()
            copy.CopyFrom(request)
            fake.calls.append((name, copy))
            fake.peers.append(context.peer())
            await fake._not_hanging.wait()
            try:
                result = inner(request, context)
                if asyncio.iscoroutine(result):
                    return await result
            except VolthaError as exc:
                await context.abort(exc.code, exc.details)
            except NotImplementedError:
                pass  # a base-class method: the RPC is not implemented here
            # grpc-go's Unimplemented*Server text.
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"method {method} not implemented")

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _VolthaServicer(voltha_pb2_grpc.VolthaServiceServicer):
    """``voltha.VolthaService``: each implemented RPC delegates to ``FakeVoltha``."""

    def __init__(self, fake: FakeVoltha) -> None:
        self._f = fake

    async def CreateDevice(self, request: device_pb2.Device, context: Any) -> device_pb2.Device:
        return self._f._create_device(request)

    async def EnableDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._enable_device(request.id)
        return empty_pb2.Empty()

    async def DisableDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._disable_device(request.id)
        return empty_pb2.Empty()

    async def RebootDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._reboot_device(request.id)
        return empty_pb2.Empty()

    async def DeleteDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._delete_device(request.id)
        return empty_pb2.Empty()

    async def GetDevice(self, request: common_pb2.ID, context: Any) -> device_pb2.Device:
        return self._f._copy(self._f._get(request.id))

    async def ListDevices(self, request: empty_pb2.Empty, context: Any) -> device_pb2.Devices:
        return device_pb2.Devices(items=self._f.devices())

    async def ListDeviceIds(self, request: empty_pb2.Empty, context: Any) -> common_pb2.IDs:
        return common_pb2.IDs(items=[common_pb2.ID(id=i) for i in self._f._devices])

    async def ListDevicePorts(self, request: common_pb2.ID, context: Any) -> device_pb2.Ports:
        if request.id not in self._f._devices:
            raise VolthaError(grpc.StatusCode.NOT_FOUND, f"device-{request.id}")
        return device_pb2.Ports(items=self._f.ports(request.id))

    async def DisableOnuDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._onu_admin(request.id, enable=False, by_serial=None)
        return empty_pb2.Empty()

    async def EnableOnuDevice(self, request: common_pb2.ID, context: Any) -> empty_pb2.Empty:
        self._f._onu_admin(request.id, enable=True, by_serial=None)
        return empty_pb2.Empty()

    async def DisableOnuSerialNumber(
        self, request: device_pb2.OnuSerialNumberOnOLTPon, context: Any
    ) -> empty_pb2.Empty:
        self._f._onu_serial_admin(request, enable=False)
        return empty_pb2.Empty()

    async def EnableOnuSerialNumber(
        self, request: device_pb2.OnuSerialNumberOnOLTPon, context: Any
    ) -> empty_pb2.Empty:
        self._f._onu_serial_admin(request, enable=True)
        return empty_pb2.Empty()

    async def GetExtValue(
        self, request: extensions_pb2.ValueSpecifier, context: Any
    ) -> extensions_pb2.ReturnValues:
        return self._f._legacy_ext_value(request)

    async def DownloadImageToDevice(
        self, request: device_pb2.DeviceImageDownloadRequest, context: Any
    ) -> device_pb2.DeviceImageResponse:
        return self._f._download_image(request)

    async def GetImageStatus(
        self, request: device_pb2.DeviceImageRequest, context: Any
    ) -> device_pb2.DeviceImageResponse:
        return self._f._image_status(request)

    async def ActivateImage(
        self, request: device_pb2.DeviceImageRequest, context: Any
    ) -> device_pb2.DeviceImageResponse:
        return self._f._activate_image(request)

    async def CommitImage(
        self, request: device_pb2.DeviceImageRequest, context: Any
    ) -> device_pb2.DeviceImageResponse:
        return self._f._commit_image(request)


class _ExtensionServicer(extensions_pb2_grpc.ExtensionServicer):
    """``extension.Extension``: rw_core's ExtensionManager, served on the NBI port."""

    def __init__(self, fake: FakeVoltha) -> None:
        self._f = fake

    async def GetExtValue(
        self, request: extensions_pb2.SingleGetValueRequest, context: Any
    ) -> extensions_pb2.SingleGetValueResponse:
        return self._f._single_get_value(request)


class FakeVoltha:
    """A VOLTHA core (NBI on 127.0.0.1) with simulated openolt/openonu adapters.

    Constructor arguments:

    - ``step_seconds``: the time between two simulated adapter steps (default 0.2 s);
    - ``pon_ports``: PON ports of an OLT unless ``set_pon_port_count`` says otherwise;
    - ``device_types``: the device types adapters are registered for (enabling another type
      fails like voltha-go: UNKNOWN ``adapter-not-registered-for-device-type <type>``);
    - ``keepalive_min_time``: grpc-go's keepalive MinTime the server enforces (300 s, its
      default; tests scale it down together with the client's keepalive).

    Public state, for assertions (read it, do not mutate it):

    - ``calls``: ``(method, request)`` of every unary RPC received, in order; VolthaService
      methods by bare name (``"CreateDevice"``), others as ``"Extension/GetExtValue"``;
      ``peers``: the caller's address of each (a new port is a new connection);
    - ``adapter_crashes``: how often a request killed the simulated openolt adapter;
    - ``port``: the TCP port (0 before ``start``); ``address``: ``"127.0.0.1:<port>"``;
    - ``hang``: while True every RPC waits (until the client's deadline, ``stop``, or
      ``hang`` going back to False).
    """

    def __init__(
        self,
        *,
        step_seconds: float = 0.2,
        pon_ports: int = 4,
        device_types: Iterable[str] = (OLT_TYPE, ONU_TYPE),
        keepalive_min_time: float = GRPC_GO_MIN_PING_INTERVAL,
    ) -> None:
        self.step_seconds = step_seconds
        self.default_pon_ports = pon_ports
        self.device_types = set(device_types)
        self.keepalive_min_time = keepalive_min_time
        self.calls: list[tuple[str, Any]] = []
        self.peers: list[str] = []
        self.adapter_crashes = 0
        self.version = 0  # counts changes of devices, ports and states (not reasons alone)
        self._listeners: list[Callable[[], None]] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._not_hanging = asyncio.Event()
        self._not_hanging.set()
        self._changed = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # State ("etcd"): kept across stop/restart.
        self._devices: dict[str, device_pb2.Device] = {}
        self._ports: dict[str, dict[int, device_pb2.Port]] = {}
        self._pon_port_counts: dict[str, int] = {}
        self._disabled_serials: dict[str, set[str]] = {}
        self._rebooting: set[str] = set()
        self._generation: dict[str, int] = {}  # OLT id -> logical devices made so far
        self._onu_rebooting: set[str] = set()  # ONUs rebooting to activate an image
        self._rediscover: dict[str, list[tuple[int, str, int, str, int]]] = {}
        self._uni_counts: dict[str, int] = {}
        self._optics: dict[str, _Optics] = {}
        self._olt_rx: dict[tuple[str, str], _OltRx] = {}
        self._pon_stats: dict[tuple[str, int], common_pb2.PortStatistics] = {}
        self._onu_counters: dict[str, dict[str, int]] = {}
        self._image_jobs: dict[str, dict[str, _ImageJob]] = {}
        self._image_failures: dict[str, tuple[int, bool]] = {}

    # ---------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def hang(self) -> bool:
        return not self._not_hanging.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._not_hanging.clear()
        else:
            self._not_hanging.set()

    async def start(self, port: int = 0) -> int:
        """Serve on 127.0.0.1:``port`` (0: a port the OS picks); returns the port."""
        if self._server is not None:
            raise RuntimeError("FakeVoltha is already running")
        ms = int(self.keepalive_min_time * 1000)
        server = grpc.aio.server(
            interceptors=[_Interceptor(self)],
            options=[
                ("grpc.so_reuseport", 0),
                # grpc-go's default EnforcementPolicy, in C-core's terms.
                # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS
                ("grpc.http2.min_ping_interval_without_data_ms", ms),
                ("grpc.http2.max_ping_strikes", GRPC_GO_MAX_PING_STRIKES),
                ("grpc.keepalive_permit_without_calls", 0),
            ],
        )
        voltha_pb2_grpc.add_VolthaServiceServicer_to_server(_VolthaServicer(self), server)
        extensions_pb2_grpc.add_ExtensionServicer_to_server(_ExtensionServicer(self), server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        if not bound:
            raise OSError(f"cannot bind 127.0.0.1:{port}")
        await server.start()
        self._server = server
        self.port = bound
        self._resume()
        return int(bound)

    async def stop(self) -> None:
        """VOLTHA goes away: in-flight RPCs are cancelled, new connections refused, adapter
        steps stop. The state stays for ``restart``."""
        if self._server is not None:
            server, self._server = self._server, None  # from now on nothing new is spawned
            await server.stop(None)
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restart(self) -> None:
        """A core restart with its KV store kept: same port, same devices; unfinished adapter
        steps carry on from where they were."""
        port = self.port
        await self.stop()
        await self.start(port)

    async def __aenter__(self) -> FakeVoltha:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true, re-checking it after every state change;
        TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                changed = self._changed
                await changed.wait()

    # ---------------------------------------------------------------- reading state

    def device(self, device_id: str) -> device_pb2.Device:
        """A copy of the device (KeyError if there is none)."""
        return self._copy(self._devices[device_id])

    def devices(self) -> list[device_pb2.Device]:
        return [self._copy(d) for d in self._devices.values()]

    def ports(self, device_id: str) -> list[device_pb2.Port]:
        return [self._copy(p) for p in self._ports.get(device_id, {}).values()]

    def onus(self, olt_id: str) -> list[device_pb2.Device]:
        return [self._copy(d) for d in self._children(olt_id)]

    def find_onu(self, serial: str, olt_id: str | None = None) -> device_pb2.Device | None:
        for d in self._devices.values():
            if not d.root and d.serial_number == serial and olt_id in (None, d.parent_id):
                return self._copy(d)
        return None

    def disabled_serials(self, olt_id: str) -> set[str]:
        """Serial numbers disabled on the OLT (DisableOnuSerialNumber), as the OLT keeps them:
        enabling fails with NOT_FOUND once the ONU device is gone, and the serial stays."""
        return set(self._disabled_serials.get(olt_id, set()))

    def image_state(self, device_id: str, version: str) -> device_pb2.ImageState | None:
        job = self._image_jobs.get(device_id, {}).get(version)
        return self._copy(job.state) if job else None

    def logical_device(self, olt_id: str) -> int:
        """How many logical devices rw_core made for the OLT so far: a new one after each
        reboot (the REBOOTED transition deletes the old one) and each re-enable."""
        return self._generation.get(olt_id, 0)

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (synchronously, from the loop) after every state change."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def onos_device_id(self, olt_id: str) -> str:
        """The ONOS device id of the OLT's logical device: ``of:`` and the datapath id,
        which voltha-go makes from the OLT's MAC address."""
        mac = self._devices[olt_id].mac_address
        if not mac:
            raise ValueError(f"OLT {olt_id} has no MAC address yet (not enabled)")
        return f"of:{int(mac.replace(':', ''), 16):016x}"

    # ---------------------------------------------------------------- test controls

    def set_pon_port_count(self, olt: str, count: int) -> None:
        """PON ports the OLT (device id or host_and_port) gets when it is next enabled."""
        self._pon_port_counts[olt] = count

    def discover_onu(
        self,
        olt_id: str,
        pon_port: int,
        serial: str,
        onu_id: int | None = None,
        *,
        vendor_id: str | None = None,
        uni_ports: int = 1,
    ) -> str:
        """The OLT reports an ONU on a PON: ``pon_port`` is the PON interface id (0..N-1) or
        the PON_OLT port number (``2<<28 | i``). Creates the child device as voltha-go's
        ChildDeviceDetected does (a random UUID id, type ``brcm_openomci_onu``, proxy address
        with the ONU id, the lowest free one from 1 unless given), enabled whatever the OLT
        remembers of its serial, reachable (openolt's "onu-discovered-reachable"), and steps
        it to ACTIVE. An ONU already known under that OLT by serial is re-activated if idle.
        Returns its id. ValueError if the OLT is unknown, not enabled, or has no such PON
        port."""
        olt = self._devices.get(olt_id)
        if olt is None or not olt.root:
            raise ValueError(f"no OLT {olt_id}")
        if olt.admin_state != AdminState.ENABLED:
            raise ValueError(f"OLT {olt_id} is not enabled")
        intf = pon_port - PON_PORT_BASE if pon_port >= PON_PORT_BASE else pon_port
        if pon_port_no(intf) not in self._ports.get(olt_id, {}):
            raise ValueError(f"OLT {olt_id} has no PON port {pon_port}")
        for existing in self._children(olt_id):
            if existing.serial_number == serial:
                self._kick_onu(existing.id)
                return str(existing.id)
        used = {
            d.proxy_address.onu_id
            for d in self._children(olt_id)
            if d.proxy_address.channel_id == intf
        }
        if onu_id is None:
            onu_id = next(i for i in range(1, len(used) + 2) if i not in used)
        elif onu_id in used:
            raise ValueError(f"ONU id {onu_id} is in use on PON {intf} of {olt_id}")
        vendor = vendor_id if vendor_id is not None else serial[:4]
        onu = device_pb2.Device(
            id=str(uuid.uuid4()),
            type=ONU_TYPE,
            root=False,
            parent_id=olt_id,
            parent_port_no=pon_port_no(intf),
            vendor_id=vendor,
            serial_number=serial,
            adapter_endpoint=ONU_ADAPTER_ENDPOINT,
            vlan=intf,
            proxy_address=device_pb2.Device.ProxyAddress(
                device_id=olt_id,
                device_type=olt.type,
                channel_id=intf,
                onu_id=onu_id,
                adapter_endpoint=OLT_ADAPTER_ENDPOINT,
            ),
            admin_state=AdminState.ENABLED,
            oper_status=OperStatus.DISCOVERED,
            connect_status=ConnectStatus.REACHABLE,
            reason=REASON_ACTIVATING_ONU,
        )
        self._devices[onu.id] = onu
        self._ports[onu.id] = {}
        self._uni_counts[onu.id] = uni_ports
        self._notify()
        self._spawn(onu.id, self._onu_activation(onu.id))
        return str(onu.id)

    def flows_changed(self, onu_id: str, pushed: bool) -> None:
        """ONOS programmed (``pushed``) or removed the last of the flows on an ONU's UNI:
        openonu downloads (deletes) the technology profile, then configures the flows over
        OMCI, each step a reason (device_handler.go: DrTechProfileConfigDownloadSuccess, then
        DrOmciFlowsPushed; DrOmciFlowsDeleted, then DrTechProfileConfigDeleteSuccess)."""
        d = self._devices.get(onu_id)
        if d is None or d.oper_status != OperStatus.ACTIVE:
            return
        first, second = (
            (REASON_TP_DOWNLOADED, REASON_FLOWS_PUSHED)
            if pushed
            else (REASON_FLOWS_DELETED, REASON_TP_DELETED)
        )
        if d.reason == second:
            return
        d.reason = first
        self._notify(topology=False)

        async def then() -> None:
            await self._step()
            again = self._devices.get(onu_id)
            if again is not None and again.reason == first:
                again.reason = second
                self._notify(topology=False)

        self._spawn(f"flows:{onu_id}", then())

    def set_onu_optics(
        self,
        onu_id: str,
        rx_dbm: float,
        tx_dbm: float,
        *,
        voltage_v: float = 3.3,
        bias_ma: float = 10.0,
        temperature_c: float = 40.0,
    ) -> None:
        """What ``onuOpticalInfo`` (the ONU's ANI-G self test) reports for ONU device
        ``onu_id``. Unset ONUs report rx -20.0 dBm, tx 2.0 dBm, 3.3 V, 10 mA, 40 C."""
        self._optics[onu_id] = _Optics(rx_dbm, tx_dbm, voltage_v, bias_ma, temperature_c)

    def set_olt_rx_power(
        self,
        olt_id: str,
        onu: str,
        dbm: float,
        *,
        status: str = "success",
        fail_reason: str = "FAIL_REASON_NONE",
    ) -> None:
        """The upstream power the OLT measures from ONU ``onu`` (device id or serial), as
        ``oltRxPower`` and ``rxPower`` report it. Unset ONUs report -22.0 dBm."""
        device = self._devices.get(onu)
        serial = device.serial_number if device is not None else onu
        self._olt_rx[(olt_id, serial)] = _OltRx(dbm, status, fail_reason)

    def set_pon_stats(self, olt_id: str, pon_port: int, **counters: int) -> None:
        """``oltPonStats`` of PON interface ``pon_port`` (id or port number): keyword
        arguments are ``common.PortStatistics`` fields (rx_bytes=..., tx_packets=...)."""
        intf = pon_port - PON_PORT_BASE if pon_port >= PON_PORT_BASE else pon_port
        self._pon_stats[(olt_id, intf)] = common_pb2.PortStatistics(intf_id=intf, **counters)

    def set_onu_pon_counters(self, onu_id: str, **counters: int) -> None:
        """``onuPonInfo`` counters of ONU device ``onu_id``: ``GetOnuCountersResponse``
        fields (bip_errors=..., rx_bytes=...)."""
        extensions_pb2.GetOnuCountersResponse(**counters)  # validates the names
        self._onu_counters[onu_id] = dict(counters)

    def fail_image_download(
        self,
        target: str,
        reason: int = ImageState.OMCI_TRANSFER_ERROR,
        *,
        at_start: bool = False,
    ) -> None:
        """Make downloads fail for ``target``, a device id or an image version: after the
        transfer started (DOWNLOAD_FAILED with ``reason``, IMAGE_DOWNLOADING_ABORTED), or with
        ``at_start`` in DownloadImageToDevice's own answer, as openonu answers a bad URL
        (give ``reason=ImageState.INVALID_URL`` for that)."""
        self._image_failures[target] = (reason, at_start)

    def set_onu_state(
        self,
        device_id: str,
        *,
        admin: int | None = None,
        oper: int | None = None,
        connect: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Overwrite states of a device directly (no adapter steps started or stopped)."""
        d = self._devices[device_id]
        if admin is not None:
            d.admin_state = admin
        if oper is not None:
            d.oper_status = oper
        if connect is not None:
            d.connect_status = connect
        if reason is not None:
            d.reason = reason
        self._notify()

    def drop_port(self, device_id: str, port_no: int) -> None:
        """The device stops reporting port ``port_no`` (a test control: a line card pulled,
        a port missing from the core's answer); the ONUs on it stay listed."""
        self._ports.get(device_id, {}).pop(port_no, None)
        self._notify()

    def lose_onu(self, device_id: str) -> None:
        """The ONU drops off the PON (LOS): connect UNREACHABLE, oper DISCOVERED, reason
        ``stopping-openomci``; ``discover_onu`` with its serial brings it back."""
        self._cancel(device_id)
        d = self._devices[device_id]
        d.connect_status = ConnectStatus.UNREACHABLE
        d.oper_status = OperStatus.DISCOVERED
        d.reason = REASON_STOPPING_OPENOMCI
        self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
        self._notify()

    # ---------------------------------------------------------------- internals: helpers

    @staticmethod
    def _copy(msg: Any) -> Any:
        copy = type(msg)()
        copy.CopyFrom(msg)
        return copy

    def _notify(self, topology: bool = True) -> None:
        """Wake waiters and listeners; ``topology``: devices, ports or their states may have
        changed (``version`` moves), not only a reason."""
        if topology:
            self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for listener in list(self._listeners):
            listener()

    def _get(self, device_id: str) -> device_pb2.Device:
        d = self._devices.get(device_id)
        if d is None:
            raise VolthaError(grpc.StatusCode.NOT_FOUND, device_id)
        return d

    def _children(self, olt_id: str) -> list[device_pb2.Device]:
        return [d for d in self._devices.values() if not d.root and d.parent_id == olt_id]

    def _spawn(self, key: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run one adapter process for ``key`` (a device id), replacing the previous one."""
        self._cancel(key)
        if self._server is None:  # stopped: restart resumes from the state
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is finished:
                del self._tasks[key]

        task.add_done_callback(done)

    def _cancel(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _step(self) -> None:
        await asyncio.sleep(self.step_seconds)

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            changed = self._changed
            await changed.wait()

    def _set_ports_oper(self, device_id: str, oper: int, types: set[int] | None = None) -> None:
        for p in self._ports.get(device_id, {}).values():
            if types is None or p.type in types:
                p.oper_status = oper

    def _olt_active(self, olt_id: str) -> bool:
        olt = self._devices.get(olt_id)
        return olt is not None and olt.oper_status == OperStatus.ACTIVE

    def _resume(self) -> None:
        """After (re)start: carry on with every transition the stored state shows unfinished."""
        for d in list(self._devices.values()):
            if d.root:
                if d.id in self._rebooting:
                    self._spawn(d.id, self._olt_reboot(d.id))
                elif d.admin_state == AdminState.ENABLED and d.oper_status == OperStatus.ACTIVATING:
                    self._spawn(d.id, self._olt_bringup(d.id))
            else:
                self._kick_onu(d.id)
        for device_id, jobs in self._image_jobs.items():
            for version, job in jobs.items():
                s = job.state
                if s.download_state == ImageState.DOWNLOAD_STARTED or s.image_state in (
                    ImageState.IMAGE_ACTIVATING,
                    ImageState.IMAGE_COMMITTING,
                ):
                    self._spawn(f"image:{device_id}", self._image_process(device_id, version))

    def _kick_onu(self, onu_id: str) -> None:
        d = self._devices.get(onu_id)
        if d is None or onu_id in self._tasks:
            return
        if d.admin_state == AdminState.ENABLED and d.oper_status != OperStatus.ACTIVE:
            self._spawn(onu_id, self._onu_activation(onu_id))

    # ---------------------------------------------------------------- adapter processes

    def _olt_connect(self, olt_id: str) -> None:
        """openolt adopting/re-enabling: connected, device info read, ports reported (once)."""
        olt = self._devices[olt_id]
        if olt_id not in self._ports or not self._ports[olt_id]:
            count = self._pon_port_counts.get(
                olt_id, self._pon_port_counts.get(olt.host_and_port, self.default_pon_ports)
            )
            ports: dict[int, device_pb2.Port] = {}
            nni = Port(
                port_no=NNI_PORT_BASE,
                label="nni-0",
                type=Port.ETHERNET_NNI,
                admin_state=AdminState.ENABLED,
                oper_status=OperStatus.ACTIVE,
                device_id=olt_id,
            )
            ports[nni.port_no] = nni
            for i in range(count):
                ports[pon_port_no(i)] = Port(
                    port_no=pon_port_no(i),
                    label=f"pon-{i}",
                    type=Port.PON_OLT,
                    admin_state=AdminState.ENABLED,
                    oper_status=OperStatus.DISCOVERED,
                    device_id=olt_id,
                )
            self._ports[olt_id] = ports
        if not olt.mac_address:
            olt.mac_address = _mac_from_host(olt.host_and_port, olt_id)
        if not olt.serial_number:
            olt.serial_number = "FAKE" + hashlib.sha256(olt_id.encode()).hexdigest()[:8].upper()
        olt.vendor = olt.vendor or "FAKE"
        olt.model = olt.model or "fake-openolt"
        olt.hardware_version = olt.hardware_version or "1.0"
        olt.firmware_version = olt.firmware_version or "1.0.0"
        olt.connect_status = ConnectStatus.REACHABLE
        self._notify()

    async def _olt_bringup(self, olt_id: str) -> None:
        olt = self._devices[olt_id]
        self._olt_connect(olt_id)
        await self._step()
        olt.oper_status = OperStatus.ACTIVE
        self._set_ports_oper(olt_id, OperStatus.ACTIVE)
        pending = self._rediscover.pop(olt_id, [])
        self._notify()
        for child in self._children(olt_id):
            self._kick_onu(child.id)
        # openolt's resource manager starts afresh after a reboot: ONU ids in the order the
        # ONUs are found again (here the reverse of the old order), so new UNI port numbers.
        for intf, serial, _old_id, vendor, unis in reversed(pending):
            self.discover_onu(olt_id, intf, serial, vendor_id=vendor, uni_ports=unis)

    async def _olt_reboot(self, olt_id: str) -> None:
        olt = self._devices[olt_id]
        await self._step()
        # Back up: openolt's updateStateRebooted reports REACHABLE / REBOOTED; rw_core's
        # transition for it deletes the logical device and the child devices, one at a time.
        # The ONUs are still on the PON, so they are discovered again once the OLT is active.
        olt.connect_status = ConnectStatus.REACHABLE
        olt.oper_status = OperStatus.REBOOTED
        self._generation[olt_id] = self._generation.get(olt_id, 0) + 1
        pending = self._rediscover.setdefault(olt_id, [])
        known = {p[1] for p in pending}
        children = self._children(olt_id)
        for child in children:
            if child.serial_number not in known:
                pending.append(
                    (
                        child.proxy_address.channel_id,
                        child.serial_number,
                        child.proxy_address.onu_id,
                        child.vendor_id,
                        self._uni_counts.get(child.id, 1),
                    )
                )
        self._notify()
        for child in children:
            await asyncio.sleep(self.step_seconds / 4)
            self._forget(child.id)
            self._notify()
        self._rebooting.discard(olt_id)
        if olt.admin_state == AdminState.ENABLED:
            olt.oper_status = OperStatus.ACTIVATING
            self._notify()
            await self._olt_bringup(olt_id)
        else:
            olt.oper_status = OperStatus.UNKNOWN
            self._notify()

    async def _onu_activation(self, onu_id: str) -> None:
        """openonu's bring-up, resumable from whatever state the ONU is in."""
        while True:
            d = self._devices.get(onu_id)
            if d is None or d.admin_state != AdminState.ENABLED:
                return
            if d.oper_status == OperStatus.ACTIVE:
                return
            olt_id = d.parent_id
            if not self._olt_active(olt_id):
                await self._until(
                    lambda: onu_id not in self._devices or self._olt_active(olt_id)  # noqa: B023
                )
                continue
            before = (d.oper_status, d.reason)
            await self._step()
            d = self._devices.get(onu_id)
            if d is None or (d.oper_status, d.reason) != before:
                continue
            if d.admin_state != AdminState.ENABLED or not self._olt_active(d.parent_id):
                continue
            if d.oper_status in (OperStatus.DISCOVERED, OperStatus.UNKNOWN):
                d.oper_status = OperStatus.ACTIVATING
                d.connect_status = ConnectStatus.REACHABLE
                d.reason = REASON_STARTING_OPENOMCI
                self._create_onu_ports(d)
            elif d.reason == REASON_STARTING_OPENOMCI:
                d.reason = REASON_MIBSYNC_COMPLETE
            else:
                d.oper_status = OperStatus.ACTIVE
                d.connect_status = ConnectStatus.REACHABLE
                self._create_onu_ports(d)
                if d.reason != REASON_REENABLED:
                    d.reason = REASON_MIB_DOWNLOADED
                self._set_ports_oper(onu_id, OperStatus.ACTIVE)
            self._notify()

    def _create_onu_ports(self, onu: device_pb2.Device) -> None:
        ports = self._ports.setdefault(onu.id, {})
        if ports:
            return
        pon = onu.parent_port_no
        ports[pon] = Port(
            port_no=pon,
            label=f"pon-{pon}",
            type=Port.PON_ONU,
            admin_state=AdminState.ENABLED,
            oper_status=OperStatus.ACTIVE,
            device_id=onu.id,
            peers=[Port.PeerPort(device_id=onu.parent_id, port_no=pon)],
        )
        intf, onu_id = onu.proxy_address.channel_id, onu.proxy_address.onu_id
        for uni in range(self._uni_counts.get(onu.id, 1)):
            no = uni_port_no(intf, onu_id, uni)
            ports[no] = Port(
                port_no=no,
                label=f"uni-{no}",
                type=Port.ETHERNET_UNI,
                admin_state=AdminState.ENABLED,
                oper_status=OperStatus.UNKNOWN,
                device_id=onu.id,
                ofp_port=openflow_13_pb2.ofp_port(
                    port_no=no,
                    name=f"{onu.serial_number}-{uni + 1}",
                    state=openflow_13_pb2.OFPPS_LINK_DOWN,
                    curr_speed=1000,
                    max_speed=1000,
                ),
            )

    def _forget(self, device_id: str) -> None:
        self._cancel(device_id)
        self._cancel(f"flows:{device_id}")
        self._onu_rebooting.discard(device_id)
        self._cancel(f"image:{device_id}")
        self._devices.pop(device_id, None)
        self._ports.pop(device_id, None)
        self._uni_counts.pop(device_id, None)
        self._optics.pop(device_id, None)
        self._onu_counters.pop(device_id, None)
        self._image_jobs.pop(device_id, None)

    # ---------------------------------------------------------------- RPC logic

    def _create_device(self, request: device_pb2.Device) -> device_pb2.Device:
        # manager_nbi.go CreateDevice / manager.go isParentDeviceExist: plain Go errors.
        if not request.mac_address and not request.host_and_port:
            raise VolthaError(grpc.StatusCode.UNKNOWN, "no-device-info-present; MAC or HOSTIP&PORT")
        if request.id:
            exists = request.id in self._devices
        else:
            exists = any(
                d.root
                and (
                    (request.host_and_port and request.host_and_port == d.host_and_port)
                    or (request.mac_address and request.mac_address == d.mac_address)
                )
                for d in self._devices.values()
            )
        if exists:
            raise VolthaError(grpc.StatusCode.UNKNOWN, "device is already pre-provisioned")
        device = self._copy(request)
        device.id = request.id or str(uuid.uuid4())
        device.root = True
        device.admin_state = AdminState.PREPROVISIONED
        self._devices[device.id] = device
        self._notify()
        return self._copy(device)

    def _enable_device(self, device_id: str) -> None:
        d = self._get(device_id)
        # agent.go enableDevice
        if d.admin_state == AdminState.ENABLED and d.oper_status != OperStatus.FAILED:
            raise VolthaError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot-enable-an-already-enabled-device: {device_id}",
            )
        if d.type not in self.device_types:
            raise VolthaError(
                grpc.StatusCode.UNKNOWN, f"adapter-not-registered-for-device-type {d.type}"
            )
        if not d.adapter_endpoint:
            d.adapter_endpoint = OLT_ADAPTER_ENDPOINT if d.root else ONU_ADAPTER_ENDPOINT
        d.admin_state = AdminState.ENABLED
        d.oper_status = OperStatus.ACTIVATING
        if d.root:
            self._olt_connect(device_id)
            self._spawn(device_id, self._olt_bringup(device_id))
        else:
            d.reason = REASON_REENABLED
            self._notify()
            self._kick_onu(device_id)

    def _disable_device(self, device_id: str) -> None:
        d = self._get(device_id)
        # agent.go disableDevice: already disabled is a no-op success.
        if d.admin_state == AdminState.DISABLED:
            return
        if d.admin_state == AdminState.PREPROVISIONED:
            raise VolthaError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"deviceId:{device_id}, invalid-admin-state:PREPROVISIONED",
            )
        self._cancel(device_id)
        d.admin_state = AdminState.DISABLED
        d.oper_status = OperStatus.UNKNOWN
        if d.root:
            # openolt DisableDevice: PON ports down, children notified "unreachable".
            self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.PON_OLT})
            for child in self._children(device_id):
                self._cancel(child.id)
                child.connect_status = ConnectStatus.UNREACHABLE
                child.oper_status = OperStatus.DISCOVERED
                child.reason = REASON_STOPPING_OPENOMCI
                self._set_ports_oper(child.id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
        else:
            d.reason = REASON_ADMIN_LOCK
            self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
        self._notify()

    def _reboot_device(self, device_id: str) -> None:
        d = self._get(device_id)
        if not d.root:
            parent = self._devices.get(d.parent_id)
            if parent is None:
                raise VolthaError(
                    grpc.StatusCode.NOT_FOUND,
                    f"device agent for parent id {d.parent_id} for child {device_id}",
                )
            if parent.connect_status != ConnectStatus.REACHABLE:
                raise VolthaError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"cannot complete operation as parent device :{parent.id} is in operstatus:"
                    f"{OperStatus.Types.Name(parent.oper_status)} ,connect-status:"
                    f"{ConnectStatus.Types.Name(parent.connect_status)}",
                )
        if d.connect_status != ConnectStatus.REACHABLE:
            raise VolthaError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot complete operation as device :{device_id} is in operstatus:"
                f"{OperStatus.Types.Name(d.oper_status)} ,connect-status:"
                f"{ConnectStatus.Types.Name(d.connect_status)}",
            )
        self._cancel(device_id)
        d.connect_status = ConnectStatus.UNREACHABLE
        if d.root:
            d.oper_status = OperStatus.UNKNOWN
            self._set_ports_oper(device_id, OperStatus.UNKNOWN)
            for child in self._children(device_id):
                self._cancel(child.id)
                child.connect_status = ConnectStatus.UNREACHABLE
                child.oper_status = OperStatus.DISCOVERED
                self._set_ports_oper(child.id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
            self._rebooting.add(device_id)
            self._notify()
            self._spawn(device_id, self._olt_reboot(device_id))
        else:
            d.oper_status = OperStatus.DISCOVERED
            d.reason = REASON_REBOOTING
            self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
            self._notify()
            self._kick_onu(device_id)

    def _delete_device(self, device_id: str) -> None:
        d = self._get(device_id)
        if d.root:
            for child in self._children(device_id):
                self._forget(child.id)
            self._rebooting.discard(device_id)
            self._rediscover.pop(device_id, None)
            self._disabled_serials.pop(device_id, None)
            for key in [k for k in self._olt_rx if k[0] == device_id]:
                del self._olt_rx[key]
            for pkey in [k for k in self._pon_stats if k[0] == device_id]:
                del self._pon_stats[pkey]
        self._forget(device_id)
        self._notify()

    def _onu_admin(self, device_id: str, *, enable: bool, by_serial: str | None) -> None:
        """DisableOnuDevice/EnableOnuDevice and the device part of the serial-number RPCs
        (agent.go checkDisableEligibility / checkEnableEligibility)."""
        d = self._get(device_id)
        if d.parent_id not in self._devices:
            raise VolthaError(grpc.StatusCode.NOT_FOUND, d.parent_id)
        if enable:
            if d.admin_state == AdminState.ENABLED and d.oper_status != OperStatus.FAILED:
                raise VolthaError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"device-already-enabled: {device_id}"
                )
        else:
            if d.admin_state == AdminState.DISABLED:
                raise VolthaError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"device-already-disabled: {device_id}"
                )
            if d.admin_state == AdminState.PREPROVISIONED:
                raise VolthaError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"deviceId:{device_id}, invalid-admin-state:PREPROVISIONED",
                )
        serials = self._disabled_serials.setdefault(d.parent_id, set())
        if by_serial is not None:
            # agent.go disableOnuSerialNumber / enableOnuSerialNumber: the adapter is told
            # (the OLT keeps the serial), the core sets the admin state, nothing else.
            if enable:
                serials.discard(by_serial)
                d.admin_state = AdminState.ENABLED
                self._notify()
                self._kick_onu(device_id)
            else:
                serials.add(by_serial)
                self._cancel(device_id)
                d.admin_state = AdminState.DISABLED
                self._notify()
            return
        if enable:
            d.admin_state = AdminState.ENABLED
            if d.oper_status != OperStatus.ACTIVE:
                d.oper_status = OperStatus.ACTIVATING
            d.reason = REASON_REENABLED
            self._notify()
            self._kick_onu(device_id)
        else:
            self._cancel(device_id)
            d.admin_state = AdminState.DISABLED
            d.oper_status = OperStatus.UNKNOWN
            d.reason = REASON_ADMIN_LOCK
            self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
            self._notify()

    def _onu_serial_admin(self, request: device_pb2.OnuSerialNumberOnOLTPon, enable: bool) -> None:
        # manager_nbi.go DisableOnuSerialNumber / EnableOnuSerialNumber.
        olt_id = request.olt_device_id.id
        if olt_id not in self._devices:
            # status.Errorf("%s", device.OltDeviceId): Go prints the *common.ID message.
            text = f'id:"{olt_id}"' if request.HasField("olt_device_id") else "<nil>"
            raise VolthaError(grpc.StatusCode.NOT_FOUND, text)
        onu = next(
            (
                d
                for d in self._devices.values()
                if d.serial_number == request.serial_number and d.parent_id == olt_id
            ),
            None,
        )
        if onu is None:
            raise VolthaError(
                grpc.StatusCode.NOT_FOUND,
                f"onu-device-id-not-found-for-serial-number-{request.serial_number}",
            )
        self._onu_admin(onu.id, enable=enable, by_serial=request.serial_number)

    def _legacy_ext_value(
        self, request: extensions_pb2.ValueSpecifier
    ) -> extensions_pb2.ReturnValues:
        # manager_nbi.go GetExtValue: lookup errors wrapped as ABORTED; openolt's getExtValue
        # answers every value type as unsupported.
        child = self._devices.get(request.id)
        if child is None:
            raise VolthaError(
                grpc.StatusCode.ABORTED, f"rpc error: code = NotFound desc = {request.id}"
            )
        if child.parent_id not in self._devices:
            raise VolthaError(
                grpc.StatusCode.ABORTED, f"rpc error: code = NotFound desc = {child.parent_id}"
            )
        return extensions_pb2.ReturnValues(Unsupported=request.value)

    # ---------------------------------------------------------------- extension values

    @staticmethod
    def _value_error(reason: int) -> extensions_pb2.SingleGetValueResponse:
        return extensions_pb2.SingleGetValueResponse(
            response=GetValueResponse(status=GetValueResponse.ERROR, errReason=reason)
        )

    def _single_get_value(
        self, request: extensions_pb2.SingleGetValueRequest
    ) -> extensions_pb2.SingleGetValueResponse:
        # extension_manager.go GetExtValue, then the owning adapter's GetSingleValue.
        kind = request.request.WhichOneof("request")
        target = self._devices.get(request.targetId)
        if kind in ("onuStatsFromOlt", "subAppsStats"):
            if target is None or not target.parent_id:
                raise VolthaError(grpc.StatusCode.NOT_FOUND, f"target-id {request.targetId}")
            parent = self._devices.get(target.parent_id)
            if parent is None:
                raise VolthaError(
                    grpc.StatusCode.NOT_FOUND,
                    f"target-id {request.targetId}, parent-id {target.parent_id}",
                )
            if parent.oper_status != OperStatus.ACTIVE:
                raise VolthaError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"device not active: {parent.id}"
                )
            return self._value_error(GetValueResponse.UNSUPPORTED)
        if target is None:
            raise VolthaError(grpc.StatusCode.NOT_FOUND, f"target-id {request.targetId}")
        if target.root:
            return self._olt_value(target, request.request)
        return self._onu_value(target, request.request)

    def _known_onus(self, olt_id: str, intf: int) -> list[device_pb2.Device]:
        """ONUs openolt has in its cache: indicated (reachable) on that PON."""
        return [
            d
            for d in self._children(olt_id)
            if d.proxy_address.channel_id == intf and d.connect_status == ConnectStatus.REACHABLE
        ]

    def _pon_label(self, olt: device_pb2.Device, label: str) -> tuple[int, int]:
        """(PON interface id, 0) of a ``pon-<i>`` label, or (-1, the ErrorReason) as openolt
        answers a label it cannot use (it parses the number before the type). A label with no
        "-" at all (an empty one too) is strings.Split(label, "-")[1] out of range: openolt
        panics (no recover in getPONRxPower/getPonPortStats) and the adapter process dies."""
        if "-" not in label:
            self.adapter_crashes += 1
            raise VolthaError(grpc.StatusCode.UNAVAILABLE, "error reading from server: EOF")
        kind, _, number = label.partition("-")
        if not number.isdigit():
            return -1, GetValueResponse.INVALID_REQ_TYPE
        if kind != "pon":
            return -1, GetValueResponse.INVALID_PORT_TYPE
        intf = int(number)
        if pon_port_no(intf) not in self._ports.get(olt.id, {}):
            return -1, GetValueResponse.INVALID_DEVICE
        return intf, 0

    def _olt_value(
        self, olt: device_pb2.Device, req: extensions_pb2.GetValueRequest
    ) -> extensions_pb2.SingleGetValueResponse:
        if olt.admin_state == AdminState.PREPROVISIONED:
            return self._value_error(GetValueResponse.INVALID_DEVICE_ID)
        kind = req.WhichOneof("request")
        ok = GetValueResponse.OK
        if kind == "oltRxPower":
            intf, error = self._pon_label(olt, req.oltRxPower.port_label)
            if error:
                return self._value_error(error)
            onus = self._known_onus(olt.id, intf)
            if req.oltRxPower.onu_sn:
                onus = [d for d in onus if d.serial_number == req.oltRxPower.onu_sn]
                if not onus:
                    return self._value_error(GetValueResponse.INVALID_DEVICE)
            rx = []
            for onu in onus:
                data = self._olt_rx.get((olt.id, onu.serial_number), _OltRx(-22.0))
                rx.append(
                    extensions_pb2.RxPower(
                        onu_sn=onu.serial_number,
                        status=data.status,
                        fail_reason=data.fail_reason,
                        rx_power=data.dbm,
                    )
                )
            value = extensions_pb2.GetOltRxPowerResponse(
                port_label=req.oltRxPower.port_label, rx_power=rx
            )
            return extensions_pb2.SingleGetValueResponse(
                response=GetValueResponse(status=ok, oltRxPower=value)
            )
        if kind == "rxPower":
            r = req.rxPower
            onu = next(
                (
                    d
                    for d in self._known_onus(olt.id, r.intf_id)
                    if d.proxy_address.onu_id == r.onu_id
                ),
                None,
            )
            if onu is None:
                return self._value_error(GetValueResponse.INVALID_DEVICE)
            data = self._olt_rx.get((olt.id, onu.serial_number), _OltRx(-22.0))
            value_rx = extensions_pb2.GetRxPowerResponse(
                intf_id=r.intf_id,
                onu_id=r.onu_id,
                status=data.status,
                fail_reason=data.fail_reason,
                rx_power=data.dbm,
            )
            return extensions_pb2.SingleGetValueResponse(
                response=GetValueResponse(status=ok, rxPower=value_rx)
            )
        if kind == "onuPonInfo":
            r2 = req.onuPonInfo
            onu = next(
                (
                    d
                    for d in self._known_onus(olt.id, r2.intf_id)
                    if d.proxy_address.onu_id == r2.onu_id
                ),
                None,
            )
            if onu is None:
                return self._value_error(GetValueResponse.INVALID_DEVICE)
            counters = extensions_pb2.GetOnuCountersResponse(
                intf_id=r2.intf_id, onu_id=r2.onu_id, **self._onu_counters.get(onu.id, {})
            )
            return extensions_pb2.SingleGetValueResponse(
                response=GetValueResponse(status=ok, onuPonCounters=counters)
            )
        if kind == "oltPonStats":
            intf, error = self._pon_label(olt, req.oltPonStats.portLabel)
            if error:
                return self._value_error(error)
            stats = self._pon_stats.get((olt.id, intf), common_pb2.PortStatistics(intf_id=intf))
            value_pon = extensions_pb2.GetPonStatsResponse(ponPort=intf, portStatistics=stats)
            return extensions_pb2.SingleGetValueResponse(
                response=GetValueResponse(status=ok, oltPonStatsResponse=value_pon)
            )
        return self._value_error(GetValueResponse.UNSUPPORTED)

    def _onu_value(
        self, onu: device_pb2.Device, req: extensions_pb2.GetValueRequest
    ) -> extensions_pb2.SingleGetValueResponse:
        if req.WhichOneof("request") != "onuOpticalInfo":
            return self._value_error(GetValueResponse.UNSUPPORTED)
        if onu.oper_status != OperStatus.ACTIVE:
            # openonu SelfTestRequestStart: a Go error, so UNKNOWN through the core.
            raise VolthaError(
                grpc.StatusCode.UNKNOWN, f"self-test-fsm-not-active-device-id-{onu.id}"
            )
        o = self._optics.get(onu.id, _Optics())
        info = extensions_pb2.GetOnuPonOpticalInfoResponse(
            powerFeedVoltage=o.voltage_v,
            receivedOpticalPower=o.rx_dbm,
            meanOpticalLaunchPower=o.tx_dbm,
            laserBiasCurrent=o.bias_ma,
            temperature=o.temperature_c,
        )
        return extensions_pb2.SingleGetValueResponse(
            response=GetValueResponse(status=GetValueResponse.OK, onuOpticalInfo=info)
        )

    # ---------------------------------------------------------------- ONU images

    @staticmethod
    def _state(
        device_id: str, version: str, download: int, reason: int, image: int
    ) -> device_pb2.DeviceImageState:
        return device_pb2.DeviceImageState(
            device_id=device_id,
            imageState=ImageState(
                version=version, download_state=download, reason=reason, image_state=image
            ),
        )

    def _image_failure(self, device_id: str, version: str) -> tuple[int, bool] | None:
        return self._image_failures.get(device_id) or self._image_failures.get(version)

    def _download_image(
        self, request: device_pb2.DeviceImageDownloadRequest
    ) -> device_pb2.DeviceImageResponse:
        # manager.go validateImageDownloadRequest, then per device (manager_nbi.go
        # DownloadImageToDevice): failures become DOWNLOAD_FAILED states, not RPC errors.
        if not request.HasField("image") or not request.device_id:
            raise VolthaError(grpc.StatusCode.INVALID_ARGUMENT, "invalid argument")
        version = request.image.version
        states = []
        for did in (i.id for i in request.device_id):
            d = self._devices.get(did)
            if d is None or d.root or not version:
                # unknown device; an OLT (FAILED_PRECONDITION from the agent); openonu's
                # "invalid image download parameters": all the same per-device failure.
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_FAILED,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_UNKNOWN,
                    )
                )
                continue
            # openonu DownloadOnuImage: "image download via https not supported" is an error
            # (rw_core makes it DOWNLOAD_FAILED / UNKNOWN_ERROR); a URL its Go HTTP client
            # cannot fetch (file_download_manager.go downloadFile) is INVALID_URL.
            url = request.image.url
            refusal = None
            if "https:" in url:
                refusal = ImageState.UNKNOWN_ERROR
            elif urllib.parse.urlsplit(url).scheme.lower() != "http":
                refusal = ImageState.INVALID_URL
            if refusal is not None:
                states.append(
                    self._state(
                        did, version, ImageState.DOWNLOAD_FAILED, refusal, ImageState.IMAGE_UNKNOWN
                    )
                )
                continue
            failure = self._image_failure(did, version)
            if failure is not None and failure[1]:
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_FAILED,
                        failure[0],
                        ImageState.IMAGE_UNKNOWN,
                    )
                )
                continue
            job = _ImageJob(
                state=ImageState(
                    version=version,
                    download_state=ImageState.DOWNLOAD_STARTED,
                    reason=ImageState.NO_ERROR,
                    image_state=ImageState.IMAGE_UNKNOWN,
                ),
                activate_on_success=request.activateOnSuccess,
                commit_on_success=request.commitOnSuccess,
                fail_reason=failure[0] if failure is not None else None,
            )
            # One upgrade per ONU: a new download replaces any other version's job.
            self._image_jobs[did] = {version: job}
            states.append(
                device_pb2.DeviceImageState(device_id=did, imageState=self._copy(job.state))
            )
            self._notify()
            self._spawn(f"image:{did}", self._image_process(did, version))
        return device_pb2.DeviceImageResponse(device_image_states=states)

    def _image_targets(self, request: device_pb2.DeviceImageRequest) -> list[str]:
        return [i.id for i in request.device_id]

    def _image_status(
        self, request: device_pb2.DeviceImageRequest
    ) -> device_pb2.DeviceImageResponse:
        ids = self._image_targets(request) or [d.id for d in self._devices.values() if not d.root]
        states = []
        version = request.version
        for did in ids:
            d = self._devices.get(did)
            if d is None or d.root or not version:
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_UNKNOWN,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_UNKNOWN,
                    )
                )
                continue
            job = self._image_jobs.get(did, {}).get(version)
            if did in self._onu_rebooting and d.oper_status != OperStatus.ACTIVE:
                # The adapter is busy with the rebooting ONU and rw_core's call to it times
                # out: manager_nbi.go GetImageStatus answers "unknown" for the device.
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_UNKNOWN,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_UNKNOWN,
                    )
                )
            elif job is None:
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_UNKNOWN,
                        ImageState.NO_ERROR,
                        ImageState.IMAGE_UNKNOWN,
                    )
                )
            else:
                states.append(
                    device_pb2.DeviceImageState(device_id=did, imageState=self._copy(job.state))
                )
        return device_pb2.DeviceImageResponse(device_image_states=states)

    def _activate_image(
        self, request: device_pb2.DeviceImageRequest
    ) -> device_pb2.DeviceImageResponse:
        states = []
        version = request.version
        for did in self._image_targets(request):
            d = self._devices.get(did)
            job = self._image_jobs.get(did, {}).get(version)
            usable = job is not None and (
                job.state.download_state == ImageState.DOWNLOAD_STARTED
                or (
                    job.state.download_state == ImageState.DOWNLOAD_SUCCEEDED
                    and job.state.image_state == ImageState.IMAGE_INACTIVE
                )
            )
            if d is None or d.root or not version or job is None or not usable:
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_UNKNOWN,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_ACTIVATION_ABORTED,
                    )
                )
                continue
            job.commit_on_success = request.commitOnSuccess
            if job.state.download_state == ImageState.DOWNLOAD_STARTED:
                job.activate_on_success = True  # relayed to the running upgrade
            else:
                job.state.image_state = ImageState.IMAGE_ACTIVATING
                self._notify()
                self._spawn(f"image:{did}", self._image_process(did, version))
            states.append(
                device_pb2.DeviceImageState(device_id=did, imageState=self._copy(job.state))
            )
        return device_pb2.DeviceImageResponse(device_image_states=states)

    def _commit_image(
        self, request: device_pb2.DeviceImageRequest
    ) -> device_pb2.DeviceImageResponse:
        states = []
        version = request.version
        for did in self._image_targets(request):
            d = self._devices.get(did)
            if d is None or d.root or not version:
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_UNKNOWN,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_COMMIT_ABORTED,
                    )
                )
                continue
            job = self._image_jobs.get(did, {}).get(version)
            if job is None or job.state.image_state not in (
                ImageState.IMAGE_ACTIVE,
                ImageState.IMAGE_ACTIVATING,
            ):
                # openonu CommitOnuImage when onuSwCommitRequest fails.
                states.append(
                    self._state(
                        did,
                        version,
                        ImageState.DOWNLOAD_FAILED,
                        ImageState.UNKNOWN_ERROR,
                        ImageState.IMAGE_COMMIT_ABORTED,
                    )
                )
                continue
            if job.state.image_state == ImageState.IMAGE_ACTIVATING:
                job.commit_on_success = True
            else:
                job.state.image_state = ImageState.IMAGE_COMMITTING
                self._notify()
                self._spawn(f"image:{did}", self._image_process(did, version))
            states.append(
                device_pb2.DeviceImageState(device_id=did, imageState=self._copy(job.state))
            )
        return device_pb2.DeviceImageResponse(device_image_states=states)

    async def _image_process(self, device_id: str, version: str) -> None:
        """openonu's upgrade FSM for one ONU, resumable from the job's state."""
        while True:
            job = self._image_jobs.get(device_id, {}).get(version)
            d = self._devices.get(device_id)
            if job is None or d is None:
                return
            s = job.state
            if s.download_state == ImageState.DOWNLOAD_STARTED:
                await self._step()
                if s.image_state == ImageState.IMAGE_UNKNOWN:
                    s.image_state = ImageState.IMAGE_DOWNLOADING
                elif job.fail_reason is not None or d.oper_status != OperStatus.ACTIVE:
                    s.download_state = ImageState.DOWNLOAD_FAILED
                    s.reason = (
                        job.fail_reason
                        if job.fail_reason is not None
                        else ImageState.CANCELLED_ON_ONU_STATE
                    )
                    s.image_state = ImageState.IMAGE_DOWNLOADING_ABORTED
                else:
                    s.download_state = ImageState.DOWNLOAD_SUCCEEDED
                    s.image_state = ImageState.IMAGE_INACTIVE
                    if job.activate_on_success:
                        s.image_state = ImageState.IMAGE_ACTIVATING
            elif s.image_state == ImageState.IMAGE_ACTIVATING:
                if device_id not in self._onu_rebooting:
                    await self._step()
                    # The ONU reboots onto the new image (openonu rebootDevice: DISCOVERED,
                    # "rebooting"; then its down indication: UNREACHABLE, stopping-openomci).
                    self._onu_rebooting.add(device_id)
                    self._cancel(device_id)
                    d.oper_status = OperStatus.DISCOVERED
                    d.reason = REASON_REBOOTING
                    self._set_ports_oper(device_id, OperStatus.UNKNOWN, {Port.ETHERNET_UNI})
                    self._notify()
                    await self._step()
                    d.connect_status = ConnectStatus.UNREACHABLE
                    d.reason = REASON_STOPPING_OPENOMCI
                    self._notify()
                    await self._step()
                    d.firmware_version = version
                    d.connect_status = ConnectStatus.REACHABLE
                    self._notify()
                self._kick_onu(device_id)  # up again: openonu's bring-up runs once more
                await self._until(
                    lambda: (
                        device_id not in self._devices
                        or self._devices[device_id].oper_status == OperStatus.ACTIVE
                    )
                )
                self._onu_rebooting.discard(device_id)
                if device_id not in self._devices:
                    return
                s.image_state = ImageState.IMAGE_ACTIVE
                if job.commit_on_success:
                    s.image_state = ImageState.IMAGE_COMMITTING
            elif s.image_state == ImageState.IMAGE_COMMITTING:
                await self._step()
                s.image_state = ImageState.IMAGE_COMMITTED
            else:
                return
            self._notify()
