"""Realms and home servers (issue 28): the HTTP routes of ``daemons/api/ops_realms.py``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from daemons.api import models as m
from daemons.api import ops_realms as ops
from daemons.api.state import Admin, State, Viewer, audit

router = APIRouter(prefix="/api/v1")


@router.get("/realms", name="realms.list", tags=["realms"])
async def list_realms(st: State, _: Viewer) -> list[m.Realm]:
    return await ops.list_realms(st)


@router.put(
    "/realms/{name}",
    name="realms.put",
    tags=["realms"],
    responses={201: {"model": m.Realm, "description": "Created"}},
)
async def put_realm(
    name: str, request: Request, response: Response, st: State, _: Admin, body: m.RealmSpec
) -> m.Realm:
    audit(request, name)
    realm, created = await ops.put_realm(st, name, body)
    response.status_code = 201 if created else 200
    return realm


@router.delete("/realms/{name}", name="realms.delete", tags=["realms"], status_code=204)
async def delete_realm(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    await ops.delete_realm(st, name)
    return Response(status_code=204)


@router.get("/home-servers", name="home_servers.list", tags=["realms"])
async def list_home_servers(st: State, _: Viewer) -> list[m.HomeServer]:
    return await ops.home_servers(st)
