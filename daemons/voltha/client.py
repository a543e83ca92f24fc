"""A northbound client of one VOLTHA core: grpc.aio on the voltha-protos wheel's stubs.

One channel per stack, with grpc's own reconnection with exponential backoff; calls never
wait for the channel to be ready, so a core that is away fails a call at once with
UNAVAILABLE and the caller backs off. Every call has a deadline: that, not keepalive, is how
a dead or hung core is noticed (the sync loop calls every ``voltha.sync_interval``).

Keepalive stays within what rw_core's gRPC server accepts. voltha-lib-go's server sets no
enforcement policy, so grpc-go's defaults hold (keepalive/keepalive.go,
internal/transport/http2_server.go ``handlePing``): a ping less than 5 minutes after the
last one, or any ping while no call is open, is a strike, and the third strike closes the
connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", failing the calls on it. So the
channel pings only while a call is open, at most every 6 minutes (calls are far shorter: in
practice it never pings). With keepalive set, gRPC also sets TCP_USER_TIMEOUT to the
keepalive timeout (gRFC A18), so a connection whose sent data goes unacknowledged for 20 s
is dropped and the next call reconnects. A gRPC failure becomes ``VolthaError``
with the status code's name and voltha-go's own text (``NOT_FOUND``, ``UNKNOWN`` "device is
already pre-provisioned", ``FAILED_PRECONDITION``...), which the API passes on.

Optics and PON counters are read like voltctl reads them: the ``extension.Extension``
service's GetExtValue, served by the core's northbound, with a ``SingleGetValueRequest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from voltha_protos import (
    common_pb2,
    device_pb2,
    extensions_pb2,
    extensions_pb2_grpc,
    voltha_pb2_grpc,
)

from daemons.core.config import VolthaStack

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 360_000),  # grpc-go servers refuse pings under 5 minutes
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),  # ... and any ping with no call open
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 30_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class VolthaError(Exception):
    """A call failed: ``code`` is the gRPC status name, ``details`` VOLTHA's text."""

    def __init__(self, stack: str, code: str, details: str) -> None:
        super().__init__(f"VOLTHA {stack}: {code}: {details}")
        self.stack = stack
        self.code = code
        self.details = details

    @property
    def unavailable(self) -> bool:
        """The core is away or slow (not an answer about the request)."""
        return self.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


class VolthaClient:
    def __init__(self, name: str, cfg: VolthaStack) -> None:
        self.name = name
        self.cfg = cfg
        if cfg.tls:
            roots = Path(cfg.ca_file).read_bytes() if cfg.ca_file else None
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            self.channel = grpc.aio.secure_channel(cfg.address, creds, options=CHANNEL_OPTIONS)
        else:
            self.channel = grpc.aio.insecure_channel(cfg.address, options=CHANNEL_OPTIONS)
        self.stub = voltha_pb2_grpc.VolthaServiceStub(self.channel)
        self.ext = extensions_pb2_grpc.ExtensionStub(self.channel)

    async def close(self) -> None:
        await self.channel.close(grace=None)

    async def _call(self, method: Any, request: Any, deadline: float | None = None) -> Any:
        try:
            return await method(request, timeout=deadline or self.cfg.deadline)
        except grpc.aio.AioRpcError as exc:
            raise VolthaError(self.name, exc.code().name, exc.details() or "") from None

    # --- devices ---

    async def devices(self) -> list[Any]:
        got = await self._call(self.stub.ListDevices, empty_pb2.Empty())
        return list(got.items)

    async def device(self, device_id: str) -> Any:
        return await self._call(self.stub.GetDevice, common_pb2.ID(id=device_id))

    async def ports(self, device_id: str) -> list[Any]:
        got = await self._call(self.stub.ListDevicePorts, common_pb2.ID(id=device_id))
        return list(got.items)

    async def create_olt(self, host_and_port: str, device_type: str = "openolt") -> Any:
        return await self._call(
            self.stub.CreateDevice, device_pb2.Device(type=device_type, host_and_port=host_and_port)
        )

    async def enable(self, device_id: str) -> None:
        await self._call(self.stub.EnableDevice, common_pb2.ID(id=device_id))

    async def disable(self, device_id: str) -> None:
        await self._call(self.stub.DisableDevice, common_pb2.ID(id=device_id))

    async def reboot(self, device_id: str) -> None:
        await self._call(self.stub.RebootDevice, common_pb2.ID(id=device_id))

    async def delete(self, device_id: str) -> None:
        await self._call(self.stub.DeleteDevice, common_pb2.ID(id=device_id))

    async def onu_serial(self, enable: bool, olt_id: str, pon_port: int, serial: str) -> None:
        """Enable or disable an ONU serial number on an OLT's PON port (voltctl's
        ``device onus enable/disable``)."""
        request = device_pb2.OnuSerialNumberOnOLTPon(
            olt_device_id=common_pb2.ID(id=olt_id),
            port=device_pb2.Port(port_no=pon_port, type=device_pb2.Port.PON_OLT),
            serial_number=serial,
        )
        method = self.stub.EnableOnuSerialNumber if enable else self.stub.DisableOnuSerialNumber
        await self._call(method, request)

    # --- optics and counters ---

    async def ext_value(self, target_id: str, request: Any) -> Any:
        """GetValueResponse for one GetValueRequest about ``target_id`` (a device id)."""
        got = await self._call(
            self.ext.GetExtValue,
            extensions_pb2.SingleGetValueRequest(targetId=target_id, request=request),
        )
        return got.response

    # --- ONU images ---

    async def download_image(
        self, device_ids: Sequence[str], image: Any, activate: bool, commit: bool
    ) -> Any:
        return await self._call(
            self.stub.DownloadImageToDevice,
            device_pb2.DeviceImageDownloadRequest(
                device_id=[common_pb2.ID(id=d) for d in device_ids],
                image=image,
                activateOnSuccess=activate,
                commitOnSuccess=commit,
            ),
        )

    def _image_request(self, device_ids: Sequence[str], version: str, commit: bool) -> Any:
        return device_pb2.DeviceImageRequest(
            device_id=[common_pb2.ID(id=d) for d in device_ids],
            version=version,
            commitOnSuccess=commit,
        )

    async def image_status(self, device_ids: Sequence[str], version: str) -> Any:
        return await self._call(
            self.stub.GetImageStatus, self._image_request(device_ids, version, False)
        )

    async def activate_image(self, device_ids: Sequence[str], version: str) -> Any:
        return await self._call(
            self.stub.ActivateImage, self._image_request(device_ids, version, False)
        )

    async def commit_image(self, device_ids: Sequence[str], version: str) -> Any:
        return await self._call(
            self.stub.CommitImage, self._image_request(device_ids, version, False)
        )


def clients(stacks: dict[str, VolthaStack]) -> dict[str, VolthaClient]:
    return {name: VolthaClient(name, cfg) for name, cfg in stacks.items()}
