"""Bulk work across TR-069 CPEs: one task (or a preset run) for every device a filter
matches, its connection requests paced by the ACS, with progress and per-device results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from daemons.api import models as m
from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.routes_acs import CpeTask, TaskKind
from daemons.api.state import Operator, State, Viewer, audit
from daemons.store import cpe_bulk

router = APIRouter(prefix="/api/v1")
BulkId = Annotated[int, Path(ge=1, le=2**62)]


class ParameterMatch(m._Body):
    name: str = Field(
        max_length=512,
        pattern=r"^(Device|InternetGatewayDevice)\.",
        description="a stored parameter, e.g. Device.DeviceInfo.ModelName",
    )
    value: str = Field(max_length=4096, description="its value, exactly")


class CpeFilter(m._Body):
    """Every key given must match."""

    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        default_factory=list, max_length=64, description="devices with all of these tags"
    )
    oui: str | None = Field(default=None, max_length=6)
    product_class: str | None = Field(default=None, max_length=128)
    software_version: str | None = Field(default=None, max_length=128)
    parameter: ParameterMatch | None = None


class BulkCreate(m._Body):
    filter: CpeFilter
    kind: TaskKind = Field(description="a task kind; runPreset runs the preset args.preset")
    args: dict[str, Any] = Field(default_factory=dict, description="per kind, see the docs")
    rate: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="connection requests a second (default acs.connection_request_rate)",
    )
    expires_in: float | None = Field(default=None, gt=0, le=30 * 86400)


class Bulk(BaseModel):
    id: int
    filter: dict[str, Any]
    kind: str
    args: dict[str, Any]
    rate: float
    devices: int = Field(description="devices the filter matched: one task each")
    status: str = Field(description="running, done (every task ended) or cancelled")
    counts: dict[str, int] = Field(description="its tasks by status")
    poked: int = Field(description="connection requests sent so far")
    last_slot: datetime | None = Field(description="the last paced connection request ahead")
    created_at: datetime
    created_by: str
    finished_at: datetime | None


class BulkCancelled(BaseModel):
    bulk: Bulk
    cancelled: int = Field(description="tasks cancelled (queued or running)")


@router.post("/cpe-bulk", name="cpe_bulk.create", tags=["cpes"], status_code=201)
async def create(request: Request, st: State, who: Operator, body: BulkCreate) -> Bulk:
    """Queue a task for every CPE the filter matches. Connection requests go out at
    ``rate`` a second (the ACS sends them); devices without a way to be reached run theirs
    at their next Inform. Per-device results: GET /api/v1/cpe-tasks?bulk={id}."""
    f = body.filter.model_dump(exclude_none=True)
    audit(request, body.kind, filter=f)
    bulk = await ops.queue_cpe_bulk(
        st, who.actor, f, body.kind, body.args, body.rate, body.expires_in
    )
    audit(request, body.kind, filter=f, bulk=bulk["id"], devices=bulk["devices"])
    return Bulk(**bulk)


@router.get("/cpe-bulk", name="cpe_bulk.list", tags=["cpes"])
async def list_bulk(
    st: State, _: Viewer, limit: m.Limit = 100, cursor: m.Cursor = None
) -> m.Page[Bulk]:
    """Bulk runs, newest first, with their progress."""
    rows = await cpe_bulk.list_bulk(st.pool, m.decode_int_cursor(cursor), limit)
    return m.page([Bulk(**r) for r in rows], limit, lambda b: b.id)


@router.get("/cpe-bulk/{bulk_id}", name="cpe_bulk.get", tags=["cpes"])
async def get_bulk(bulk_id: BulkId, st: State, _: Viewer) -> Bulk:
    found = await cpe_bulk.get_bulk(st.pool, bulk_id)
    if found is None:
        raise ApiError(404, f"no bulk run {bulk_id}")
    return Bulk(**found)


@router.delete("/cpe-bulk/{bulk_id}", name="cpe_bulk.cancel", tags=["cpes"])
async def cancel_bulk(bulk_id: BulkId, request: Request, st: State, _: Operator) -> BulkCancelled:
    """Cancel a bulk run: its queued and running tasks are cancelled (see DELETE
    /api/v1/cpe-tasks/{id} for what a CPE may still do with one already sent)."""
    audit(request, str(bulk_id))
    count = await cpe_bulk.cancel_bulk(st.pool, bulk_id)
    found = await cpe_bulk.get_bulk(st.pool, bulk_id)
    if count is None or found is None:
        raise ApiError(404, f"no bulk run {bulk_id}")
    return BulkCancelled(bulk=Bulk(**found), cancelled=count)


__all__ = ["CpeTask", "router"]
