"""TR-069 resources: CPEs, their parameters, tasks, faults, connection requests, presets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from daemons.acs import files
from daemons.acs import presets as acs_presets
from daemons.acs import tasks as acs_tasks
from daemons.acs.engine import TASK_KINDS
from daemons.api import models as m
from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.state import Admin, Operator, State, Viewer, audit
from daemons.core.policies import PolicyError
from daemons.store import acs as store

router = APIRouter(prefix="/api/v1")
TaskKind = Literal[
    "getParameterNames",
    "getParameterValues",
    "getParameterAttributes",
    "setParameterValues",
    "setParameterAttributes",
    "addObject",
    "deleteObject",
    "reboot",
    "factoryReset",
    "download",
    "upload",
    "scheduleInform",
    "refreshObject",
    "runPreset",
]
assert set(TaskKind.__args__) == set(TASK_KINDS)  # type: ignore[attr-defined]
TaskStatus = Literal["queued", "running", "done", "fault", "cancelled", "expired"]


class Cpe(BaseModel):
    id: str = Field(description="OUI-ProductClass-SerialNumber")
    oui: str
    product_class: str
    serial: str
    manufacturer: str
    software_version: str
    root: str
    cwmp_ns: str
    ip: str | None
    connection_request_url: str
    udp_connection_request_address: str = Field(
        default="", description="host:port of its NAT binding (TR-069 Annex G); empty: none"
    )
    stun_enabled: bool = False
    last_inform: datetime | None
    last_events: list[str]
    tags: list[str]
    discovered_at: datetime | None
    refreshed_at: datetime | None
    registered_at: datetime


class Parameter(BaseModel):
    name: str
    object: bool
    writable: bool | None
    value: str | None
    type: str | None
    fault: int | None = Field(
        default=None, description="the CPE's fault code when asked for it alone: unreadable"
    )
    updated_at: datetime


class TaskCreate(m._Body):
    kind: TaskKind
    args: dict[str, Any] = Field(default_factory=dict, description="per kind, see the docs")
    expires_in: float | None = Field(
        default=None, gt=0, le=30 * 86400, description="seconds until the task expires"
    )
    connection_request: bool = Field(default=True, description="poke the CPE now")


class CpeTask(BaseModel):
    id: int
    device_id: str
    kind: str
    args: dict[str, Any]
    status: TaskStatus
    attempts: int
    not_before: datetime
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    result: dict[str, Any] | None
    bulk_id: int | None = Field(default=None, description="the bulk run it belongs to")
    poke: str = Field(default="", description="what the ACS's connection request for it gave")
    deadline_at: datetime | None = Field(
        default=None, description="when a task waiting on the CPE (TransferComplete) fails"
    )


class TaskQueued(BaseModel):
    task: CpeTask
    connection_request: str = Field(
        description="ok, unauthorized, unreachable, no-url, http-<status>, udp-sent, "
        "udp-queued (handed to the ACS, which sends the UDP request), or not-sent"
    )


class ConnectionRequestResult(BaseModel):
    device_id: str
    outcome: str


class CpeFault(BaseModel):
    id: int
    ts: datetime
    device_id: str
    task_id: int | None
    code: int
    message: str
    detail: dict[str, Any]


class Tags(m._Body):
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(max_length=64)


class Preset(BaseModel):
    name: str
    source: str
    spec: dict[str, Any]


async def _device(st: State, device_id: str) -> dict[str, Any]:
    return await ops.get_cpe(st, device_id)


@router.get("/cpes", name="cpes.list", tags=["cpes"])
async def list_cpes(
    st: State,
    _: Viewer,
    q: Annotated[str | None, Query(max_length=128, description="part of the id")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    product_class: Annotated[str | None, Query(max_length=128)] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[Cpe]:
    rows = await ops.list_cpes(st, m.decode_cursor(cursor), limit, q, tag, product_class)
    return m.page([Cpe(**r) for r in rows], limit, lambda c: c.id)


@router.get("/cpes/{device_id}", name="cpes.get", tags=["cpes"])
async def get_cpe(device_id: str, st: State, _: Viewer) -> Cpe:
    return Cpe(**await _device(st, device_id))


@router.put("/cpes/{device_id}/tags", name="cpes.tags", tags=["cpes"])
async def put_tags(device_id: str, request: Request, st: State, _: Operator, body: Tags) -> Cpe:
    audit(request, device_id, tags=body.tags)
    if not await store.set_tags(st.pool, device_id, body.tags):
        raise ApiError(404, f"no CPE {device_id}")
    return Cpe(**await _device(st, device_id))


@router.get("/cpes/{device_id}/parameters", name="cpes.parameters", tags=["cpes"])
async def parameters(
    device_id: str,
    st: State,
    _: Viewer,
    prefix: Annotated[str, Query(max_length=512)] = "",
    limit: m.Limit = 1000,
    cursor: m.Cursor = None,
) -> m.Page[Parameter]:
    """The stored parameter tree, by name (objects end in a dot)."""
    await _device(st, device_id)
    after = m.decode_cursor(cursor)
    rows = await store.device_params_page(st.pool, device_id, prefix, after, limit)
    return m.page([Parameter(**r) for r in rows], limit, lambda p: p.name)


@router.post("/cpes/{device_id}/tasks", name="cpes.tasks.create", tags=["cpes"], status_code=201)
async def create_task(
    device_id: str, request: Request, st: State, who: Operator, body: TaskCreate
) -> TaskQueued:
    """Queue a task for the CPE's next session (in order), and poke it to call in now."""
    audit(request, device_id, kind=body.kind)
    task, outcome = await ops.queue_cpe_task(
        st,
        who.actor,
        device_id,
        body.kind,
        body.args,
        body.expires_in,
        poke=body.connection_request,
    )
    audit(request, device_id, kind=body.kind, task=task["id"], connection_request=outcome)
    return TaskQueued(task=CpeTask(**task), connection_request=outcome)


@router.post("/cpes/{device_id}/connection-request", name="cpes.connection_request", tags=["cpes"])
async def poke(device_id: str, request: Request, st: State, _: Operator) -> ConnectionRequestResult:
    """Ask the CPE to open a session now (TR-069 §3.2.2)."""
    audit(request, device_id)
    device = await _device(st, device_id)
    outcome = await acs_tasks.poke_device(
        st.pool, st.config.acs, device, refused=st.connreq_refused
    )
    audit(request, device_id, outcome=outcome)
    return ConnectionRequestResult(device_id=device_id, outcome=outcome)


@router.get("/cpe-tasks", name="cpe_tasks.list", tags=["cpes"])
async def list_tasks(
    st: State,
    _: Viewer,
    device: Annotated[str | None, Query(max_length=256)] = None,
    status: TaskStatus | None = None,
    bulk: Annotated[int | None, Query(ge=1, le=2**62, description="a bulk run's tasks")] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[CpeTask]:
    rows = await store.list_tasks(
        st.pool,
        device_id=device,
        status=status,
        after=m.decode_int_cursor(cursor),
        limit=limit,
        bulk_id=bulk,
    )
    return m.page([CpeTask(**r) for r in rows], limit, lambda t: t.id)


@router.get("/cpe-tasks/{task_id}", name="cpe_tasks.get", tags=["cpes"])
async def get_task(task_id: Annotated[int, Path(ge=1, le=2**62)], st: State, _: Viewer) -> CpeTask:
    task = await store.get_task(st.pool, task_id)
    if task is None:
        raise ApiError(404, f"no task {task_id}")
    return CpeTask(**task)


class Cancelled(BaseModel):
    task: CpeTask
    was: TaskStatus = Field(description="queued or running")
    note: str = Field(description="what the CPE may still do")


@router.delete("/cpe-tasks/{task_id}", name="cpe_tasks.cancel", tags=["cpes"])
async def cancel_task(
    task_id: Annotated[int, Path(ge=1, le=2**62)], request: Request, st: State, _: Operator
) -> Cancelled:
    """Cancel a queued or running task: the ACS sends it no more. A running task's RPC may
    already have reached the CPE (a transfer it accepted may still complete): ``note`` says
    so, and any later answer is recorded in the task's result. 409 once it has ended."""
    audit(request, str(task_id))
    try:
        was, note = await acs_tasks.cancel(st.pool, task_id)
    except acs_tasks.TaskError as exc:
        raise ApiError(404 if str(exc).startswith("no task") else 409, str(exc)) from None
    task = await store.get_task(st.pool, task_id)
    assert task is not None
    audit(request, str(task_id), was=was["status"])
    return Cancelled(task=CpeTask(**task), was=was["status"], note=note)


@router.get("/cpe-faults", name="cpe_faults.list", tags=["cpes"])
async def faults(
    st: State,
    _: Viewer,
    device: Annotated[str | None, Query(max_length=256)] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[CpeFault]:
    """Faults CPEs answered with (9000-9032 with their text), newest first."""
    rows = await store.list_faults(
        st.pool, device_id=device, before=m.decode_int_cursor(cursor), limit=limit
    )
    return m.page([CpeFault(**r) for r in rows], limit, lambda f: f.id)


@router.get("/presets", name="presets.list", tags=["cpes"])
async def list_presets(st: State, _: Viewer) -> list[Preset]:
    """The presets of policies/cwmp/ in force (edit the files and SIGHUP to change them)."""
    try:
        found = acs_presets.load_presets(st.policies)
    except PolicyError as exc:
        raise ApiError(409, str(exc)) from None
    return [Preset(name=p.name, source=p.source, spec=p.spec()) for p in found]


class Credentials(m._Body):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=256)


@router.put(
    "/cpes/{device_id}/credentials", name="cpes.credentials.put", tags=["cpes"], status_code=204
)
async def put_credentials(
    device_id: str, request: Request, st: State, _: Admin, body: Credentials
) -> Response:
    """The CPE's own CWMP credentials (Digest), sealed at rest. The device need not have
    called in yet."""
    audit(request, device_id, username=body.username)
    if not m.re_device(device_id):
        raise ApiError(422, "a device id is OUI-ProductClass-SerialNumber")
    await store.set_credentials(st.pool, st.sealer, device_id, body.username, body.password)
    return Response(status_code=204)


@router.delete(
    "/cpes/{device_id}/credentials",
    name="cpes.credentials.delete",
    tags=["cpes"],
    status_code=204,
)
async def delete_credentials(device_id: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, device_id)
    if not await store.delete_credentials(st.pool, device_id):
        raise ApiError(404, f"no credentials for {device_id}")
    return Response(status_code=204)


class StoredFile(BaseModel):
    name: str
    file_type: str
    oui: str
    product_class: str
    version: str
    size: int
    sha256: str
    created_at: datetime
    created_by: str
    url_path: str = Field(description="where CPEs fetch it on the ACS: /files/<name>")


def _files(st: State) -> files.FileStore:
    assert st.files is not None
    return st.files


def _stored(info: files.FileInfo) -> StoredFile:
    return StoredFile(**info.as_dict(), url_path=f"/files/{info.name}")


@router.get("/files", name="files.list", tags=["files"])
async def list_files(
    st: State, _: Viewer, limit: m.Limit = 100, cursor: m.Cursor = None
) -> m.Page[StoredFile]:
    """The ACS file store: firmware images and configuration files for Download."""
    rows = await _files(st).list(st.pool, m.decode_cursor(cursor), limit)
    return m.page([_stored(r) for r in rows], limit, lambda f: f.name)


@router.get("/files/{name}", name="files.get", tags=["files"])
async def get_file(name: str, st: State, _: Viewer) -> StoredFile:
    info = await _files(st).get(st.pool, name)
    if info is None:
        raise ApiError(404, f"no file {name}")
    return _stored(info)


@router.put(
    "/files/{name}",
    name="files.put",
    tags=["files"],
    responses={201: {"model": StoredFile, "description": "Created"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_file(
    name: str,
    request: Request,
    response: Response,
    st: State,
    who: Admin,
    file_type: Annotated[str, Query(max_length=64)] = files.FIRMWARE,
    version: Annotated[str, Query(max_length=128)] = "",
    oui: Annotated[str, Query(max_length=6)] = "",
    product_class: Annotated[str, Query(max_length=128)] = "",
) -> StoredFile:
    """Upload (or replace) a file: the raw body is its content."""
    audit(request, name, file_type=file_type, version=version)
    store_ = _files(st)
    existed = await store_.get(st.pool, name) is not None
    try:
        info = await store_.put(
            st.pool,
            name,
            request.stream(),
            file_type=file_type,
            oui=oui,
            product_class=product_class,
            version=version,
            created_by=who.actor,
        )
    except files.FileError as exc:
        raise ApiError(413 if "file over" in str(exc) else 422, str(exc)) from None
    audit(request, name, file_type=file_type, version=version, sha256=info.sha256)
    response.status_code = 200 if existed else 201
    return _stored(info)


@router.delete("/files/{name}", name="files.delete", tags=["files"], status_code=204)
async def delete_file(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    if not await _files(st).delete(st.pool, name):
        raise ApiError(404, f"no file {name}")
    return Response(status_code=204)
