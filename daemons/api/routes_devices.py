"""Device configuration: devices (credentials write-only, host keys pinned per key type),
their config backups and diffs (in full for admins; secrets redacted for viewers and
operators), and configuration jobs (dry-run, apply, rollback, cancel) the devices daemon
runs. A job's devices are named, or chosen by tags; what a device's platform cannot do is
refused when the job is created. The CLI calls the same functions (put, queue_job,
cancel, queue_rollback)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from daemons.api import models as m
from daemons.api import ops
from daemons.api.auth import Principal
from daemons.api.errors import ApiError
from daemons.api.state import Admin, Operator, State, Viewer, audit
from daemons.core import validate
from daemons.devices import cliconf, platforms
from daemons.devices.redact import redact
from daemons.devices.xmlconf import text_diff
from daemons.store import devices as store

router = APIRouter(prefix="/api/v1")
# Text answers: documented as text/plain for 200, while errors stay the JSON envelope.
_TEXT: dict[str, Any] = {
    "description": "text",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Tag = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class DeviceView(BaseModel):
    name: str
    address: str
    port: int
    platform: str
    username: str
    tags: list[str]
    vars: dict[str, Any]
    snmp_target: str | None
    host_keys: list[str] = Field(description="the SSH host keys accepted for it, one per key type")
    offered_host_key: str | None = Field(
        description="a different key the device offered: refused until accepted"
    )


class DevicePut(m._Body):
    address: str = Field(max_length=64)
    port: int = Field(default=22, ge=1, le=65535)
    platform: str = Field(
        pattern=r"^[a-z0-9_]{1,64}$",
        description="a platform of the table: " + ", ".join(platforms.names()),
    )
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256, description="write-only")
    secret: str = Field(default="", max_length=256, description="enable secret; write-only")
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables")
    snmp_target: str | None = Field(default=None, max_length=64)


class Backup(BaseModel):
    id: int
    ts: datetime
    sha256: str = Field(
        description="HMAC-SHA256 of the config under a key derived from this netd's secrets "
        "key (equal values: the same config); a plain SHA-256 for a backup stored in clear"
    )
    reason: str
    size: int


class JobCreate(m._Body):
    template: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="policies/config")
    variables: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["dry-run", "apply"] = "dry-run"
    devices: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        default_factory=list, max_length=10_000
    )
    tags: list[Tag] = Field(default_factory=list, max_length=16, description="all must match")
    stop_on_failure: bool = False
    concurrency: int = Field(default=8, ge=1, le=256)


class JobDevice(BaseModel):
    device: str
    state: str
    reason: str = Field(
        default="", description="locked, rejected, drift, timeout, unsupported, cancelled..."
    )
    diff: str = Field(description="secrets redacted; the backups hold the full configs")
    error: str
    error_details: dict[str, Any] = Field(
        default_factory=dict,
        description="the device's own report: error-tag, error-path, error-info...",
    )
    attempts: int = 0
    backup_before: int | None
    backup_after: int | None
    updated_at: datetime


class Job(BaseModel):
    id: int
    template: str
    variables: dict[str, Any] = Field(default_factory=dict)
    mode: str
    state: str
    stop_on_failure: bool = False
    concurrency: int = 8
    rollback_of: int | None
    force: bool = False
    deadline: datetime | None = None
    cancel_requested_by: str | None = None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(default_factory=dict)
    devices: list[JobDevice] = Field(default_factory=list)


def _view(d: store.Device) -> DeviceView:
    return DeviceView(
        name=d.name,
        address=d.address,
        port=d.port,
        platform=d.platform,
        username=d.username,
        tags=list(d.tags),
        vars=d.vars,
        snmp_target=d.snmp_target,
        host_keys=list(d.host_keys),
        offered_host_key=d.offered_host_key,
    )


async def _device(st: Any, name: str) -> store.Device:
    d = await store.get_device(st.pool, st.sealer, name)
    if d is None:
        raise ApiError(404, f"no device {name}")
    return d


@router.get("/devices", name="devices.list", tags=["devices"])
async def list_devices(
    st: State, _: Viewer, tag: Annotated[list[str] | None, Query(max_length=16)] = None
) -> list[DeviceView]:
    """Devices (never their passwords), all of them or those carrying every ``tag``."""
    return [_view(d) for d in await store.list_devices(st.pool, st.sealer, (), tag or ())]


@router.put(
    "/devices/{name}",
    name="devices.put",
    tags=["devices"],
    responses={201: {"model": DeviceView, "description": "Created"}},
)
async def put_device(
    name: Name, request: Request, response: Response, st: State, _: Admin, body: DevicePut
) -> DeviceView:
    """Add or replace a device; an accepted host key is kept."""
    audit(request, name, address=body.address, platform=body.platform, tags=body.tags)
    created = await put(st, name, body)
    response.status_code = 201 if created else 200
    return _view(await _device(st, name))


async def put(st: Any, name: str, body: DevicePut) -> bool:
    """Add or replace a device (the API and ``netd device add``); True if it was added.
    ApiError 422 for a bad address, an unknown platform or an unknown SNMP target."""
    if platforms.get(body.platform) is None:
        raise ApiError(
            422, f"unknown platform {body.platform}; one of {', '.join(platforms.names())}"
        )
    d = store.Device(
        name,
        ops.valid(validate.ip_address, body.address),
        body.port,
        body.platform,
        body.username,
        body.password,
        body.secret,
        tags=tuple(body.tags),
        vars=body.vars,
        snmp_target=body.snmp_target,
    )
    try:
        return await store.put_device(st.pool, st.sealer, d)
    except asyncpg.ForeignKeyViolationError:
        raise ApiError(422, f"no SNMP target {body.snmp_target}") from None


@router.get("/devices/{name}", name="devices.get", tags=["devices"])
async def get_device(name: Name, st: State, _: Viewer) -> DeviceView:
    return _view(await _device(st, name))


@router.delete("/devices/{name}", name="devices.delete", tags=["devices"], status_code=204)
async def delete_device(name: Name, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    if not await store.remove_device(st.pool, name):
        raise ApiError(404, f"no device {name}")
    return Response(status_code=204)


@router.post("/devices/{name}/accept-host-key", name="devices.accept_key", tags=["devices"])
async def accept_host_key(name: Name, request: Request, st: State, _: Admin) -> DeviceView:
    """Accept the SSH host key the device now offers (after it changed)."""
    audit(request, name)
    await _device(st, name)
    if await store.accept_host_key(st.pool, name) is None:
        raise ApiError(409, f"device {name} offered no new host key")
    return _view(await _device(st, name))


@router.post("/devices/{name}/backup", name="devices.backup", tags=["devices"], status_code=202)
async def backup_now(name: Name, request: Request, st: State, _: Operator) -> dict[str, str]:
    """Ask the devices daemon for a backup now; it shows in /backups when done."""
    audit(request, name)
    await _device(st, name)
    await store.request_backup(st.pool, name)
    return {"device": name, "result": "requested"}


@router.get("/devices/{name}/backups", name="devices.backups", tags=["devices"])
async def backups(name: Name, st: State, _: Viewer, limit: m.Limit = 100) -> list[Backup]:
    await _device(st, name)
    return [Backup(**b) for b in await store.list_backups(st.pool, name, limit)]


@router.get(
    "/devices/{name}/backups/{backup_id}",
    name="devices.backup_get",
    tags=["devices"],
    responses={200: _TEXT},
)
async def backup_text(
    name: Name, backup_id: Annotated[int, Path(ge=1, le=2**62)], st: State, who: Viewer
) -> PlainTextResponse:
    """One backup's config, as the device printed it: in full for an admin; for viewers and
    operators with its secrets (passwords, keys, communities, private keys) redacted."""
    b = await store.get_backup(st.pool, st.sealer, backup_id)
    if b is None or b["device"] != name:
        raise ApiError(404, f"no backup {backup_id} of {name}")
    return PlainTextResponse(_shown(who, b["config"]))


def _shown(who: Principal, text: str) -> str:
    return text if who.may("admin") else redact(text)


@router.get("/devices/{name}/diff", name="devices.diff", tags=["devices"], responses={200: _TEXT})
async def diff(
    name: Name,
    st: State,
    who: Viewer,
    from_: Annotated[int, Query(alias="from", ge=1, le=2**62)],
    to: Annotated[int, Query(ge=1, le=2**62)],
) -> PlainTextResponse:
    """A unified diff between two backups of the device (redacted as the backups are)."""
    old = await store.get_backup(st.pool, st.sealer, from_)
    new = await store.get_backup(st.pool, st.sealer, to)
    if old is None or new is None or old["device"] != name or new["device"] != name:
        raise ApiError(404, f"no such backups of {name}")
    d = await _device(st, name)
    if d.platform == "netconf":
        text = text_diff(old["config"], new["config"], name)
    else:
        text = cliconf.diff(cliconf.parse(old["config"]), cliconf.parse(new["config"]), name)
    return PlainTextResponse(_shown(who, text))


@router.post("/config-jobs", name="config_jobs.create", tags=["devices"], status_code=202)
async def create_job(request: Request, st: State, who: Admin, body: JobCreate) -> Job:
    """A configuration job over the named devices and/or those with every tag. Dry-run shows
    each device's diff; apply changes them (backup first, verify, roll back on failure)."""
    audit(request, body.template, mode=body.mode, devices=body.devices, tags=body.tags)
    job_id, _names = await queue_job(st, body, who.actor)
    got = await store.get_job(st.pool, job_id)
    assert got is not None
    return Job(**got)


async def queue_job(st: Any, body: JobCreate, actor: str) -> tuple[int, list[str]]:
    """Queue a job (the API and ``netd config-job create``); (its id, its devices). ApiError
    422 for an unknown template or device, none at all, or a device whose platform cannot do
    the job (one line per device: platforms.refusals)."""
    folder = st.config.policies.root / "config"
    if not any((folder / f"{body.template}.{kind}.j2").is_file() for kind in ("cli", "netconf")):
        raise ApiError(422, f"no template {body.template} in policies/config")
    names = set(body.devices)
    if body.tags:
        names |= {d.name for d in await store.list_devices(st.pool, st.sealer, (), body.tags)}
    found = await store.list_devices(st.pool, st.sealer, sorted(names))
    known = {d.name for d in found}
    if not names or names - known:
        missing = sorted(names - known)
        raise ApiError(422, f"no such devices: {', '.join(missing)}" if missing else "no devices")
    problems = platforms.refusals(
        folder, body.template, body.mode, [(d.name, d.platform) for d in found]
    )
    if problems:
        raise ApiError(422, "; ".join(problems))
    job_id = await store.create_job(
        st.pool,
        body.template,
        body.variables,
        body.mode,
        sorted(names),
        stop_on_failure=body.stop_on_failure,
        concurrency=body.concurrency,
        created_by=actor,
        lifetime=st.config.devices.job_timeout,
    )
    return job_id, sorted(names)


class JobSummary(BaseModel):
    id: int
    template: str
    mode: str
    state: str
    rollback_of: int | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    devices: int


@router.get("/config-jobs", name="config_jobs.list", tags=["devices"])
async def list_jobs(st: State, _: Viewer, limit: m.Limit = 100) -> list[JobSummary]:
    """The newest jobs first, with how many devices each has."""
    return [JobSummary(**j) for j in await store.list_jobs(st.pool, limit)]


@router.get("/config-jobs/{job_id}", name="config_jobs.get", tags=["devices"])
async def get_job(job_id: Annotated[int, Path(ge=1, le=2**62)], st: State, _: Viewer) -> Job:
    """A job with each device's state, reason, (redacted) diff, error and the device's own
    error report."""
    got = await store.get_job(st.pool, job_id)
    if got is None:
        raise ApiError(404, f"no config job {job_id}")
    return Job(**got)


@router.post(
    "/config-jobs/{job_id}/cancel", name="config_jobs.cancel", tags=["devices"], status_code=202
)
async def cancel_job(
    job_id: Annotated[int, Path(ge=1, le=2**62)], request: Request, st: State, who: Admin
) -> Job:
    """Cancel a job: a pending one ends at once; a running one stops between two steps (a
    device being changed finishes its change, the devices not begun end cancelled)."""
    audit(request, str(job_id))
    await cancel(st, job_id, who.actor)
    got = await store.get_job(st.pool, job_id)
    assert got is not None
    return Job(**got)


async def cancel(st: Any, job_id: int, actor: str) -> str:
    """Cancel a job (the API and ``netd config-job cancel``); its state after the request.
    ApiError 404 for no such job, 409 for a job that has ended."""
    state = await store.cancel_job(st.pool, job_id, actor)
    if state is None:
        raise ApiError(404, f"no config job {job_id}")
    if state in ("done", "failed"):
        raise ApiError(409, f"job {job_id} has ended ({state}): nothing to cancel")
    return state


class RollbackBody(m._Body):
    force: bool = Field(
        default=False,
        description="put the job's parts back even where the device changed them since",
    )


@router.post(
    "/config-jobs/{job_id}/rollback",
    name="config_jobs.rollback",
    tags=["devices"],
    status_code=202,
)
async def rollback(
    job_id: Annotated[int, Path(ge=1, le=2**62)],
    request: Request,
    st: State,
    who: Admin,
    body: RollbackBody | None = None,
) -> Job:
    """Undo what an apply job changed on its devices, and only that (a new job). A device
    that changed those same parts since is refused with the drift as its diff, unless
    ``force``."""
    force = body.force if body is not None else False
    audit(request, str(job_id), force=force)
    new_id, _devices = await queue_rollback(st, job_id, force, who.actor)
    new = await store.get_job(st.pool, new_id)
    assert new is not None
    return Job(**new)


async def queue_rollback(st: Any, job_id: int, force: bool, actor: str) -> tuple[int, list[str]]:
    """Queue the rollback of an apply job (the API and ``netd config-job rollback``); (its
    id, its devices). ApiError 404 for no such job, 409 for one that changed no device."""
    got = await store.get_job(st.pool, job_id)
    if got is None:
        raise ApiError(404, f"no config job {job_id}")
    if got["mode"] != "apply":
        raise ApiError(409, f"job {job_id} is a {got['mode']} job: nothing to roll back")
    devices = [d["device"] for d in got["devices"] if d["backup_before"] is not None]
    if not devices:
        raise ApiError(409, f"job {job_id} changed no device")
    new_id = await store.create_job(
        st.pool,
        got["template"],
        {},
        "rollback",
        devices,
        concurrency=got["concurrency"],
        rollback_of=job_id,
        created_by=actor,
        force=force,
        lifetime=st.config.devices.job_timeout,
    )
    return new_id, devices
