"""VOLTHA resources: OLTs (register, actions, delete), ONUs and their allow-list bindings
and optics, ports, and ONU firmware jobs. Actions go to the stack's core at once, through
the same client the voltha daemon uses; reads come from the inventory it syncs.

voltha-go's answers map to HTTP: NOT_FOUND 404; FAILED_PRECONDITION, ALREADY_EXISTS and
UNKNOWN "device is already pre-provisioned" 409; INVALID_ARGUMENT 422; a core that is
away or slow 503; anything else 502. The error's details carry VOLTHA's code and text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, field_validator

from daemons.api import models as m
from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.state import Admin, ApiState, Operator, State, Viewer, audit
from daemons.store import voltha as store
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.policy import image_url_problem, normalize_serial

router = APIRouter(prefix="/api/v1")
DeviceKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="id or serial")]
Serial = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9]{4,32}$",
        description="ONU serial; kept in openolt's form (vendor id upper case, hex lower)",
    ),
    AfterValidator(normalize_serial),
]
StackName = Annotated[str | None, Query(max_length=32)]


class VolthaDevice(BaseModel):
    stack: str
    id: str
    kind: Literal["olt", "onu"]
    type: str
    parent_id: str
    pon_port: int
    onu_id: int
    serial: str
    vendor: str
    model: str
    firmware: str
    host_and_port: str
    admin_state: str
    oper_status: str
    connect_status: str
    reason: str
    mac_address: str = Field(default="", description="OLT: its MAC (ONOS's datapath id)")
    updated_at: datetime
    subscriber: str | None = Field(default=None, description="ONU: the bound subscriber")


class VolthaPort(BaseModel):
    port_no: int
    label: str
    type: str
    admin_state: str
    oper_status: str
    updated_at: datetime


class VolthaDeviceDetail(VolthaDevice):
    ports: list[VolthaPort]
    binding: OnuBinding | None = None
    optics: dict[str, Any] | None = Field(default=None, description="ONU: the last optics read")


class OltCreate(m._Body):
    stack: str = Field(max_length=32)
    host_and_port: str = Field(pattern=r"^[A-Za-z0-9_.:\[\]-]{1,253}:[0-9]{1,5}$")
    type: str = Field(default="openolt", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    enable: bool = Field(default=True, description="EnableDevice after CreateDevice")


class OnuBinding(m._Body):
    subscriber: str = Field(min_length=1, max_length=253)
    s_tag: int = Field(ge=1, le=4094)
    c_tag: int = Field(ge=1, le=4094)
    tp_id: int = Field(default=64, ge=64, le=255, description="technology profile")
    uni: int = Field(default=1, ge=1, le=16)


VolthaDeviceDetail.model_rebuild()


class FirmwareJobCreate(m._Body):
    stack: str = Field(max_length=32)
    version: str = Field(min_length=1, max_length=128)
    url: str = Field(
        pattern=r"^\S{1,2000}$",
        description="http:// only: openonu refuses https, tftp, sftp and any other scheme",
    )
    vendor: str = Field(default="", max_length=64)
    crc32: int = Field(default=0, ge=0, le=2**32 - 1)
    activate: bool = True
    commit: bool = True
    concurrency: int = Field(default=4, ge=1, le=256)
    onus: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        min_length=1, max_length=10_000, description="ONU ids or serials"
    )

    @field_validator("url")
    @classmethod
    def _fetchable(cls, value: str) -> str:
        problem = image_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class FirmwareJobDevice(BaseModel):
    device_id: str
    serial: str
    state: str
    reason: str
    updated_at: datetime


class FirmwareJob(BaseModel):
    id: int
    stack: str
    version: str
    url: str
    vendor: str
    crc32: int
    activate: bool
    commit: bool
    concurrency: int
    state: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(default_factory=dict)
    devices: list[FirmwareJobDevice] = Field(default_factory=list)


def _client(st: ApiState, stack: str) -> VolthaClient:
    cfg = st.config.voltha.stacks.get(stack)
    if cfg is None:
        raise ApiError(404, f"no VOLTHA stack {stack} in voltha.stacks")
    clients: dict[str, VolthaClient] = st.extra.setdefault("voltha", {})  # type: ignore[assignment]
    if stack not in clients:
        clients[stack] = VolthaClient(stack, cfg)
    return clients[stack]


def _voltha_error(exc: VolthaError) -> ApiError:
    details = [{"stack": exc.stack, "code": exc.code, "message": exc.details}]
    if exc.code == "NOT_FOUND":
        status = 404
    elif (
        exc.code in ("FAILED_PRECONDITION", "ALREADY_EXISTS")
        or "already pre-provisioned" in exc.details
    ):
        status = 409
    elif exc.code == "INVALID_ARGUMENT":
        status = 422
    elif exc.unavailable:
        status = 503
    else:
        status = 502
    return ApiError(status, f"VOLTHA {exc.stack}: {exc.code}: {exc.details}", details=details)


async def _device(st: ApiState, key: str, kind: str | None = None) -> dict[str, Any]:
    return await ops.voltha_device(st, key, kind)


# --- OLTs and devices ---


@router.get("/voltha/olts", name="voltha.olts.list", tags=["voltha"])
async def list_olts(st: State, _: Viewer, stack: StackName = None) -> list[VolthaDevice]:
    return [VolthaDevice(**r) for r in await store.list_devices(st.pool, "olt", stack)]


@router.post("/voltha/olts", name="voltha.olts.create", tags=["voltha"], status_code=201)
async def create_olt(request: Request, st: State, _: Admin, body: OltCreate) -> dict[str, Any]:
    """Register an OLT: CreateDevice with its host_and_port, then EnableDevice. The
    inventory shows it after the voltha daemon's next sync."""
    audit(request, body.host_and_port, stack=body.stack, type=body.type)
    client = _client(st, body.stack)
    try:
        device = await client.create_olt(body.host_and_port, body.type)
        if body.enable:
            await client.enable(device.id)
    except VolthaError as exc:
        raise _voltha_error(exc) from None
    return {
        "stack": body.stack,
        "id": device.id,
        "host_and_port": body.host_and_port,
        "enabled": body.enable,
    }


@router.get("/voltha/olts/{key}", name="voltha.olts.get", tags=["voltha"])
async def get_olt(key: DeviceKey, st: State, _: Viewer) -> VolthaDeviceDetail:
    return await _detail(st, await _device(st, key, "olt"))


@router.delete("/voltha/olts/{key}", name="voltha.olts.delete", tags=["voltha"], status_code=204)
async def delete_olt(key: DeviceKey, request: Request, st: State, _: Admin) -> Response:
    audit(request, key)
    dev = await _device(st, key, "olt")
    try:
        await _client(st, dev["stack"]).delete(dev["id"])
    except VolthaError as exc:
        raise _voltha_error(exc) from None
    return Response(status_code=204)


@router.post(
    "/voltha/devices/{key}/{action}", name="voltha.devices.action", tags=["voltha"], status_code=202
)
async def device_action(
    key: DeviceKey,
    action: Literal["enable", "disable", "reboot"],
    request: Request,
    st: State,
    _: Operator,
) -> dict[str, str]:
    """Enable, disable or reboot an OLT or ONU (by id or serial)."""
    audit(request, key, action=action)
    dev = await _device(st, key)
    client = _client(st, dev["stack"])
    call = {"enable": client.enable, "disable": client.disable, "reboot": client.reboot}[action]
    try:
        await call(dev["id"])
    except VolthaError as exc:
        raise _voltha_error(exc) from None
    return {"id": dev["id"], "action": action, "result": "accepted"}


# --- ONUs ---


@router.get("/voltha/onus", name="voltha.onus.list", tags=["voltha"])
async def list_onus(
    st: State,
    _: Viewer,
    stack: StackName = None,
    olt: Annotated[str | None, Query(max_length=64, description="an OLT's id")] = None,
) -> list[VolthaDevice]:
    return [VolthaDevice(**r) for r in await ops.list_voltha_devices(st, "onu", stack, olt)]


@router.get("/voltha/onus/{key}", name="voltha.onus.get", tags=["voltha"])
async def get_onu(key: DeviceKey, st: State, _: Viewer) -> VolthaDeviceDetail:
    return await _detail(st, await _device(st, key, "onu"))


async def _detail(st: ApiState, dev: dict[str, Any]) -> VolthaDeviceDetail:
    ports, b, optics = await ops.voltha_detail(st, dev)
    binding = None
    if b is not None:
        binding = OnuBinding(
            subscriber=b.subscriber, s_tag=b.s_tag, c_tag=b.c_tag, tp_id=b.tp_id, uni=b.uni
        )
    return VolthaDeviceDetail(
        **dev, ports=[VolthaPort(**p) for p in ports], binding=binding, optics=optics
    )


@router.get("/voltha/onus/{key}/optics", name="voltha.onus.optics", tags=["voltha"])
async def onu_optics(key: DeviceKey, st: State, _: Viewer) -> dict[str, Any]:
    """The last optics and PON counters read for this ONU ({} before the first read)."""
    dev = await _device(st, key, "onu")
    return await ops.onu_optics(st, dev["serial"]) or {}


@router.put("/voltha/onus/{serial}/binding", name="voltha.bindings.put", tags=["voltha"])
async def put_binding(
    serial: Serial, request: Request, response: Response, st: State, _: Admin, body: OnuBinding
) -> OnuBinding:
    """Bind an ONU serial to a subscriber (the allow-list), with its service tags. An ONU
    the allow-list refused is enabled again at once."""
    audit(request, serial, subscriber=body.subscriber, s_tag=body.s_tag, c_tag=body.c_tag)
    try:
        created = await store.put_binding(
            st.pool,
            store.Binding(serial, body.subscriber, body.s_tag, body.c_tag, body.tp_id, body.uni),
        )
    except asyncpg.ForeignKeyViolationError:
        raise ApiError(422, f"no subscriber {body.subscriber}") from None
    response.status_code = 201 if created else 200
    return body


@router.delete(
    "/voltha/onus/{serial}/binding", name="voltha.bindings.delete", tags=["voltha"], status_code=204
)
async def delete_binding(serial: Serial, request: Request, st: State, _: Admin) -> Response:
    audit(request, serial)
    if not await store.remove_binding(st.pool, serial):
        raise ApiError(404, f"ONU {serial} is not bound")
    return Response(status_code=204)


# --- firmware ---


@router.post(
    "/voltha/firmware-jobs", name="voltha.firmware.create", tags=["voltha"], status_code=202
)
async def create_firmware_job(
    request: Request, st: State, who: Admin, body: FirmwareJobCreate
) -> FirmwareJob:
    """Download, activate and commit an image on a set of ONUs; the voltha daemon runs it
    with at most ``concurrency`` ONUs at once. Follow it at /voltha/firmware-jobs/{id}."""
    audit(request, body.version, stack=body.stack, url=body.url, onus=len(body.onus))
    if body.stack not in st.config.voltha.stacks:
        raise ApiError(404, f"no VOLTHA stack {body.stack} in voltha.stacks")
    devices: list[tuple[str, str]] = []
    for key in dict.fromkeys(body.onus):
        dev = await store.find_device(st.pool, key)
        if dev is None or dev["kind"] != "onu" or dev["stack"] != body.stack:
            raise ApiError(422, f"no ONU {key} in stack {body.stack}")
        devices.append((dev["id"], dev["serial"]))
    job_id = await store.create_job(
        st.pool,
        body.stack,
        body.version,
        body.url,
        devices,
        vendor=body.vendor,
        crc32=body.crc32,
        activate=body.activate,
        commit=body.commit,
        concurrency=body.concurrency,
        created_by=who.actor,
    )
    got = await store.get_job(st.pool, job_id)
    assert got is not None
    return FirmwareJob(**got)


@router.get("/voltha/firmware-jobs", name="voltha.firmware.list", tags=["voltha"])
async def list_firmware_jobs(st: State, _: Viewer, limit: m.Limit = 100) -> list[FirmwareJob]:
    return [FirmwareJob(**j) for j in await store.list_jobs(st.pool, limit)]


@router.get("/voltha/firmware-jobs/{job_id}", name="voltha.firmware.get", tags=["voltha"])
async def get_firmware_job(
    job_id: Annotated[int, Path(ge=1, le=2**62)], st: State, _: Viewer
) -> FirmwareJob:
    """A job, each ONU's state and reason, and the counts by state."""
    got = await store.get_job(st.pool, job_id)
    if got is None:
        raise ApiError(404, f"no firmware job {job_id}")
    return FirmwareJob(**got)
