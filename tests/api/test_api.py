"""The admin API against a real `netd api` process: roles, the error envelope, the audit
trail, pagination under concurrent inserts, the event stream, Disconnect and CoA."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from daemons.core.secrets import Sealer
from daemons.poller.engine import Sample
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.radius.authlog import AuthEvent
from daemons.store import accounting, pools
from daemons.store import api as api_store
from daemons.store import authlog as authlog_store
from daemons.store import devices as devices_store
from daemons.store import radius as store
from daemons.store import snmp as snmp_store
from daemons.store import voltha as voltha_store
from daemons.store.cache import pack
from daemons.store.events import append_event
from tests.api.conftest import NAS_SECRET, ApiServer
from tests.radius.nas_sim import NasSimulator

API_ENV = {"NETD_API_SSE_KEEPALIVE": "0.5", "NETD_API_TOKEN_CACHE_TTL": "0.5"}
ORDER = ("viewer", "operator", "admin")


async def start_session(
    api: ApiServer, uid: str, user: str, ip: str | None = None, nas: str = "bng1"
) -> AcctRecord:
    """A session as accounting leaves it: in the ledger, the sessions table and Redis."""
    rec = AcctRecord(
        nas=nas,
        status=AcctStatus.START,
        acct_session_id="a-" + uid,
        unique_id=uid,
        idem_key="k-" + uid,
        event_time=time.time(),
        username=user,
        framed_ip=ip,
        attributes={"NAS-IP-Address": "127.0.0.1"},
    )
    await accounting.append_accounting(api.pool, [rec])
    await accounting.update_live_sessions(api.cache, [rec], [])
    return rec


async def stop_session(api: ApiServer, rec: AcctRecord) -> None:
    stop = AcctRecord(
        nas=rec.nas,
        status=AcctStatus.STOP,
        acct_session_id=rec.acct_session_id,
        unique_id=rec.unique_id,
        idem_key="stop-" + rec.unique_id,
        event_time=time.time(),
        username=rec.username,
        framed_ip=rec.framed_ip,
        session_time=5,
        input_octets=1000,
        output_octets=2000,
    )
    await accounting.append_accounting(api.pool, [stop])
    await accounting.update_live_sessions(api.cache, [stop], [])


@pytest.fixture(scope="module")
async def nas_sim(api: ApiServer) -> AsyncIterator[NasSimulator]:
    sim = NasSimulator(NAS_SECRET.encode())
    await api.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'bng1'", sim.port)
    yield sim
    sim.close()


# --- RBAC: every operation, every kind of caller ------------------------------------------


@dataclass
class Call:
    method: str
    template: str  # as in the OpenAPI document
    role: str  # the least role allowed
    ok: int  # the status when allowed
    path: Callable[[], str] | None = None
    body: Callable[[], Any] | None = None
    content: Callable[[], bytes] | None = None


def _uniq() -> str:
    return uuid.uuid4().hex[:8]


CALLS = [
    Call("GET", "/api/v1/status", "viewer", 200),
    Call("GET", "/api/v1/events", "viewer", 200),
    Call("GET", "/api/v1/events/stream", "viewer", 200),
    Call("GET", "/api/v1/audit", "admin", 200),
    Call("GET", "/api/v1/tokens", "admin", 200),
    Call(
        "POST",
        "/api/v1/tokens",
        "admin",
        201,
        body=lambda: {"name": "t" + _uniq(), "role": "viewer"},
    ),
    Call(
        "DELETE", "/api/v1/tokens/{name}", "admin", 204, path=lambda: "/api/v1/tokens/rbac-victim"
    ),
    Call(
        "POST",
        "/api/v1/tokens/{name}/rotate",
        "admin",
        201,
        path=lambda: "/api/v1/tokens/rbac-rotated/rotate",
    ),
    Call("GET", "/api/v1/nas", "viewer", 200),
    Call(
        "POST",
        "/api/v1/nas",
        "admin",
        201,
        body=lambda: {"name": "n" + _uniq(), "network": f"10.9.{_octet()}.0/24", "secret": "x"},
    ),
    Call("GET", "/api/v1/nas/{name}", "viewer", 200, path=lambda: "/api/v1/nas/bng1"),
    Call(
        "PATCH",
        "/api/v1/nas/{name}",
        "admin",
        200,
        path=lambda: "/api/v1/nas/bng1",
        body=lambda: {"description": "edge router"},
    ),
    Call("DELETE", "/api/v1/nas/{name}", "admin", 204, path=lambda: "/api/v1/nas/rbac-nas"),
    Call("GET", "/api/v1/subscribers", "viewer", 200),
    Call(
        "POST",
        "/api/v1/subscribers",
        "admin",
        201,
        body=lambda: {"username": "u" + _uniq(), "password": "pw", "plan": "default"},
    ),
    Call(
        "POST",
        "/api/v1/subscribers/batch",
        "admin",
        200,
        body=lambda: {"subscribers": [{"username": "v" + _uniq(), "plan": "default"}]},
    ),
    Call(
        "GET",
        "/api/v1/subscribers/{username}",
        "viewer",
        200,
        path=lambda: "/api/v1/subscribers/alice",
    ),
    Call(
        "PATCH",
        "/api/v1/subscribers/{username}",
        "admin",
        200,
        path=lambda: "/api/v1/subscribers/bob",
        body=lambda: {"state": "active"},
    ),
    Call(
        "DELETE",
        "/api/v1/subscribers/{username}",
        "admin",
        204,
        path=lambda: "/api/v1/subscribers/rbac-sub",
    ),
    Call("GET", "/api/v1/plans", "viewer", 200),
    Call("GET", "/api/v1/plans/{name}", "viewer", 200, path=lambda: "/api/v1/plans/default"),
    Call(
        "PUT",
        "/api/v1/plans/{name}",
        "admin",
        201,
        path=lambda: "/api/v1/plans/p" + _uniq(),
        body=lambda: {"download": "50M", "upload": "10M"},
    ),
    Call("DELETE", "/api/v1/plans/{name}", "admin", 204, path=lambda: "/api/v1/plans/rbac-plan"),
    Call("GET", "/api/v1/realms", "viewer", 200),
    Call(
        "PUT",
        "/api/v1/realms/{name}",
        "admin",
        201,
        path=lambda: f"/api/v1/realms/r{_uniq()}.example",
        body=lambda: {"action": "reject", "reason": "not here"},
    ),
    Call(
        "DELETE",
        "/api/v1/realms/{name}",
        "admin",
        204,
        path=lambda: "/api/v1/realms/rbac.example",
    ),
    Call("GET", "/api/v1/home-servers", "viewer", 200),
    Call("GET", "/api/v1/sessions", "viewer", 200),
    Call(
        "GET",
        "/api/v1/sessions/{session_id}",
        "viewer",
        200,
        path=lambda: "/api/v1/sessions/rbac-s1",
    ),
    Call(
        "POST",
        "/api/v1/sessions/{session_id}/disconnect",
        "operator",
        200,
        path=lambda: "/api/v1/sessions/rbac-s1/disconnect",
        body=lambda: {},
    ),
    Call(
        "POST",
        "/api/v1/sessions/{session_id}/coa",
        "operator",
        200,
        path=lambda: "/api/v1/sessions/rbac-s1/coa",
        body=lambda: {"plan": "fiber-1000"},
    ),
    Call(
        "POST",
        "/api/v1/sessions/{session_id}/clear",
        "operator",
        200,
        path=lambda: f"/api/v1/sessions/{next(_clearable)}/clear",
    ),
    Call("GET", "/api/v1/pools", "viewer", 200),
    Call("GET", "/api/v1/pools/{name}", "viewer", 200, path=lambda: "/api/v1/pools/rbac-pool"),
    Call(
        "POST",
        "/api/v1/pools",
        "admin",
        201,
        body=lambda: {"name": "p" + _uniq(), "ranges": ["100.127.0.0/30"]},
    ),
    Call("DELETE", "/api/v1/pools/{name}", "admin", 204, path=lambda: "/api/v1/pools/rbac-gone"),
    Call(
        "GET",
        "/api/v1/accounting/records",
        "viewer",
        200,
        path=lambda: "/api/v1/accounting/records?user=alice",
    ),
    Call("GET", "/api/v1/auth-log", "viewer", 200, path=lambda: "/api/v1/auth-log?user=alice"),
    Call("GET", "/api/v1/pools6", "viewer", 200),
    Call(
        "PUT",
        "/api/v1/pools6/{name}",
        "admin",
        200,
        path=lambda: "/api/v1/pools6/pd" + _uniq(),
        body=lambda: {"prefix": "2001:db8:" + str(len(_uniq())) + "::/48", "length": 56},
    ),
    Call(
        "GET",
        "/api/v1/accounting/usage",
        "viewer",
        200,
        path=lambda: "/api/v1/accounting/usage?user=alice",
    ),
]
CALLS += [
    Call("GET", "/api/v1/cpes", "viewer", 200),
    Call("GET", "/api/v1/cpes/{device_id}", "viewer", 200, path=lambda: f"/api/v1/cpes/{CPE}"),
    Call(
        "PUT",
        "/api/v1/cpes/{device_id}/tags",
        "operator",
        200,
        path=lambda: f"/api/v1/cpes/{CPE}/tags",
        body=lambda: {"tags": ["lab"]},
    ),
    Call(
        "GET",
        "/api/v1/cpes/{device_id}/parameters",
        "viewer",
        200,
        path=lambda: f"/api/v1/cpes/{CPE}/parameters",
    ),
    Call(
        "POST",
        "/api/v1/cpes/{device_id}/tasks",
        "operator",
        201,
        path=lambda: f"/api/v1/cpes/{CPE}/tasks",
        body=lambda: {"kind": "reboot"},
    ),
    Call(
        "POST",
        "/api/v1/cpes/{device_id}/connection-request",
        "operator",
        200,
        path=lambda: f"/api/v1/cpes/{CPE}/connection-request",
    ),
    Call("GET", "/api/v1/cpe-tasks", "viewer", 200),
    Call("GET", "/api/v1/cpe-tasks/{task_id}", "viewer", 200, path=lambda: "/api/v1/cpe-tasks/1"),
    Call(
        "DELETE",
        "/api/v1/cpe-tasks/{task_id}",
        "operator",
        200,
        path=lambda: f"/api/v1/cpe-tasks/{next(_cancellable)}",
    ),
    Call(
        "POST",
        "/api/v1/cpe-bulk",
        "operator",
        201,
        body=lambda: {"filter": {"oui": "00259E"}, "kind": "reboot", "rate": 1},
    ),
    Call("GET", "/api/v1/cpe-bulk", "viewer", 200),
    Call("GET", "/api/v1/cpe-bulk/{bulk_id}", "viewer", 200, path=lambda: "/api/v1/cpe-bulk/1"),
    Call(
        "DELETE",
        "/api/v1/cpe-bulk/{bulk_id}",
        "operator",
        200,
        path=lambda: "/api/v1/cpe-bulk/1",
    ),
    Call("GET", "/api/v1/cpe-faults", "viewer", 200),
    Call("GET", "/api/v1/presets", "viewer", 200),
    Call(
        "PUT",
        "/api/v1/cpes/{device_id}/credentials",
        "admin",
        204,
        path=lambda: f"/api/v1/cpes/{CPE}/credentials",
        body=lambda: {"username": "cpe", "password": "cpe-pw"},
    ),
    Call("GET", "/api/v1/files", "viewer", 200),
    Call("GET", "/api/v1/files/{name}", "viewer", 200, path=lambda: "/api/v1/files/rbac.bin"),
    Call(
        "PUT",
        "/api/v1/files/{name}",
        "admin",
        201,
        path=lambda: f"/api/v1/files/fw-{_uniq()}.bin?version=1.0",
        content=lambda: b"firmware image",
    ),
    Call("DELETE", "/api/v1/files/{name}", "admin", 204, path=lambda: "/api/v1/files/rbac.bin"),
    Call(
        "DELETE",
        "/api/v1/cpes/{device_id}/credentials",
        "admin",
        204,
        path=lambda: f"/api/v1/cpes/{CPE}/credentials",
    ),
]
CALLS += [
    Call("GET", "/api/v1/snmp/targets", "viewer", 200),
    Call(
        "GET",
        "/api/v1/snmp/targets/{name}",
        "viewer",
        200,
        path=lambda: "/api/v1/snmp/targets/rbac-olt",
    ),
    Call(
        "PUT",
        "/api/v1/snmp/targets/{name}",
        "admin",
        201,
        path=lambda: f"/api/v1/snmp/targets/t{_uniq()}",
        body=lambda: {"address": "127.0.0.1", "community": "c", "profiles": ["system"]},
    ),
    Call(
        "GET",
        "/api/v1/snmp/targets/{name}/latest",
        "viewer",
        200,
        path=lambda: "/api/v1/snmp/targets/rbac-olt/latest",
    ),
    Call(
        "GET",
        "/api/v1/snmp/targets/{name}/samples",
        "viewer",
        200,
        path=lambda: "/api/v1/snmp/targets/rbac-olt/samples",
    ),
    Call(
        "GET",
        "/api/v1/snmp/targets/{name}/events",
        "viewer",
        200,
        path=lambda: "/api/v1/snmp/targets/rbac-olt/events",
    ),
    Call("GET", "/api/v1/snmp/traps", "viewer", 200),
    Call(
        "DELETE",
        "/api/v1/snmp/targets/{name}",
        "admin",
        204,
        path=lambda: "/api/v1/snmp/targets/rbac-olt",
    ),
]
CALLS += [
    Call("GET", "/api/v1/voltha/olts", "viewer", 200),
    Call(
        "POST",
        "/api/v1/voltha/olts",
        "admin",
        404,  # no such stack in this API's config
        body=lambda: {"stack": "lab", "host_and_port": "10.0.0.1:9191"},
    ),
    Call(
        "GET",
        "/api/v1/voltha/olts/{key}",
        "viewer",
        200,
        path=lambda: "/api/v1/voltha/olts/RBACOLT1",
    ),
    Call(
        "DELETE",
        "/api/v1/voltha/olts/{key}",
        "admin",
        404,
        path=lambda: "/api/v1/voltha/olts/RBACOLT1",
    ),
    Call(
        "POST",
        "/api/v1/voltha/devices/{key}/{action}",
        "operator",
        404,
        path=lambda: "/api/v1/voltha/devices/RBACONU1/reboot",
    ),
    Call("GET", "/api/v1/voltha/onus", "viewer", 200),
    Call(
        "GET",
        "/api/v1/voltha/onus/{key}",
        "viewer",
        200,
        path=lambda: "/api/v1/voltha/onus/RBACONU1",
    ),
    Call(
        "GET",
        "/api/v1/voltha/onus/{key}/optics",
        "viewer",
        200,
        path=lambda: "/api/v1/voltha/onus/RBACONU1/optics",
    ),
    Call(
        "PUT",
        "/api/v1/voltha/onus/{serial}/binding",
        "admin",
        201,
        path=lambda: f"/api/v1/voltha/onus/RB{_uniq()}/binding",
        body=lambda: {"subscriber": "alice", "s_tag": 10, "c_tag": 21},
    ),
    Call(
        "DELETE",
        "/api/v1/voltha/onus/{serial}/binding",
        "admin",
        204,
        path=lambda: "/api/v1/voltha/onus/RBACBIND1/binding",
    ),
    Call(
        "POST",
        "/api/v1/voltha/firmware-jobs",
        "admin",
        404,
        body=lambda: {
            "stack": "lab",
            "version": "v2",
            "url": "http://f/v2.bin",
            "onus": ["RBACONU1"],
        },
    ),
    Call("GET", "/api/v1/voltha/firmware-jobs", "viewer", 200),
    Call(
        "GET",
        "/api/v1/voltha/firmware-jobs/{job_id}",
        "viewer",
        200,
        path=lambda: "/api/v1/voltha/firmware-jobs/1",
    ),
]
IDS: dict[str, int] = {}
CALLS += [
    Call("GET", "/api/v1/devices", "viewer", 200),
    Call(
        "PUT",
        "/api/v1/devices/{name}",
        "admin",
        201,
        path=lambda: f"/api/v1/devices/dev-{_uniq()}",
        body=lambda: {
            "address": "192.0.2.10",
            "platform": "cisco_ios",
            "username": "admin",
            "password": "device-secret",
        },
    ),
    Call("GET", "/api/v1/devices/{name}", "viewer", 200, path=lambda: "/api/v1/devices/rbac-dev"),
    Call(
        "DELETE", "/api/v1/devices/{name}", "admin", 204, path=lambda: "/api/v1/devices/rbac-gone"
    ),
    Call(
        "POST",
        "/api/v1/devices/{name}/accept-host-key",
        "admin",
        409,  # it offered no new key
        path=lambda: "/api/v1/devices/rbac-dev/accept-host-key",
    ),
    Call(
        "POST",
        "/api/v1/devices/{name}/backup",
        "operator",
        202,
        path=lambda: "/api/v1/devices/rbac-dev/backup",
    ),
    Call(
        "GET",
        "/api/v1/devices/{name}/backups",
        "viewer",
        200,
        path=lambda: "/api/v1/devices/rbac-dev/backups",
    ),
    Call(
        "GET",
        "/api/v1/devices/{name}/backups/{backup_id}",
        "viewer",
        200,
        path=lambda: f"/api/v1/devices/rbac-dev/backups/{IDS['backup']}",
    ),
    Call(
        "GET",
        "/api/v1/devices/{name}/diff",
        "viewer",
        200,
        path=lambda: f"/api/v1/devices/rbac-dev/diff?from={IDS['backup']}&to={IDS['backup2']}",
    ),
    Call(
        "POST",
        "/api/v1/config-jobs",
        "admin",
        202,
        body=lambda: {"template": "access-vlan", "devices": ["rbac-dev"]},
    ),
    Call("GET", "/api/v1/config-jobs", "viewer", 200),
    Call(
        "GET",
        "/api/v1/config-jobs/{job_id}",
        "viewer",
        200,
        path=lambda: f"/api/v1/config-jobs/{IDS['job']}",
    ),
    Call(
        "POST",
        "/api/v1/config-jobs/{job_id}/rollback",
        "admin",
        409,  # a dry-run job: nothing to roll back
        path=lambda: f"/api/v1/config-jobs/{IDS['job']}/rollback",
    ),
    Call(
        "POST",
        "/api/v1/config-jobs/{job_id}/cancel",
        "admin",
        202,  # pending: cancelled at once (the admin's call is the first that succeeds)
        path=lambda: f"/api/v1/config-jobs/{IDS['job']}/cancel",
    ),
]
CPE = "00259E-EG8145V5-RBAC0001"
_cancellable = iter(range(2, 10))
_clearable = (f"rbac-c{i}" for i in range(1, 6))
_octets = iter(range(1, 250))


def _octet() -> int:
    return next(_octets)


async def _prepare_rbac(api: ApiServer) -> None:
    """What the single successful admin call of each DELETE removes."""
    await api_store.create_token(api.pool, "rbac-victim", "viewer", "test")
    await api_store.create_token(api.pool, "rbac-rotated", "viewer", "test")
    async with api.client("admin") as c:
        (
            await c.post(
                "/api/v1/nas", json={"name": "rbac-nas", "network": "10.8.0.1", "secret": "s"}
            )
        ).raise_for_status()
        (await c.post("/api/v1/subscribers", json={"username": "rbac-sub"})).raise_for_status()
        (await c.put("/api/v1/plans/rbac-plan", json={"session_timeout": 60})).raise_for_status()
        (await c.put("/api/v1/realms/rbac.example", json={"action": "local"})).raise_for_status()
    await start_session(api, "rbac-s1", "alice", "100.64.9.1")
    for i in range(1, 6):  # one for each caller of POST .../clear (two of them clear one)
        await start_session(api, f"rbac-c{i}", "bob")
    for i, name in enumerate(("rbac-pool", "rbac-gone")):
        await pools.add_pool(api.pool, name, [f"100.126.{i}.0/30"])
    async with api.client("admin") as c:
        up = await c.put("/api/v1/files/rbac.bin", content=b"x" * 1000)
        assert up.status_code == 201, up.text
        olt = await c.put(
            "/api/v1/snmp/targets/rbac-olt",
            json={"address": "127.0.0.1", "community": "rbac-community", "profiles": ["if-mib"]},
        )
        assert olt.status_code == 201, olt.text
    await api.pool.execute(
        "INSERT INTO cpe_devices (id, oui, product_class, serial) VALUES ($1, '00259E', "
        "'EG8145V5', 'RBAC0001')",
        CPE,
    )
    # Task 1 to read; DELETE takes the next id on each of its 5 calls (ids 2 to 6: the
    # operator's 5 and the admin's 6 are queued, the first made by the POST row above).
    for _ in range(5):
        await api.pool.execute("INSERT INTO cpe_tasks (device_id, kind) VALUES ($1, 'reboot')", CPE)
    # A synced OLT and ONU of a stack this API has no client for, a binding, a job.
    for dev_id, kind, parent, serial in (
        ("rbac-olt-id", "olt", "", "RBACOLT1"),
        ("rbac-onu-id", "onu", "rbac-olt-id", "RBACONU1"),
    ):
        await api.pool.execute(
            "INSERT INTO voltha_devices (stack, id, kind, parent_id, serial, admin_state, "
            "oper_status, connect_status) VALUES ('lab', $1, $2, $3, $4, 'ENABLED', 'ACTIVE', "
            "'REACHABLE')",
            dev_id,
            kind,
            parent,
            serial,
        )
    await voltha_store.put_binding(api.pool, voltha_store.Binding("RBACBIND1", "alice", 10, 20))
    await voltha_store.create_job(
        api.pool, "lab", "v1", "http://f/v1.bin", [("rbac-onu-id", "RBACONU1")]
    )
    sealer = Sealer(api.key)
    for name in ("rbac-dev", "rbac-gone"):
        await devices_store.put_device(
            api.pool,
            sealer,
            devices_store.Device(name, "192.0.2.11", 22, "cisco_ios", "admin", "pw"),
        )
    IDS["backup"], _ = await devices_store.save_backup(
        api.pool, sealer, "rbac-dev", "hostname a\n", "t"
    )
    IDS["backup2"], _ = await devices_store.save_backup(
        api.pool, sealer, "rbac-dev", "hostname b\n", "t"
    )
    IDS["job"] = await devices_store.create_job(
        api.pool, "access-vlan", {}, "dry-run", ["rbac-dev"]
    )


async def _call(c: httpx.AsyncClient, call: Call, headers: dict[str, str]) -> int:
    path = call.path() if call.path else call.template
    body = call.body() if call.body else None
    if call.template.endswith("/stream"):
        async with c.stream("GET", path, headers=headers) as resp:
            return resp.status_code  # the stream is left at once
    if call.content is not None:
        resp = await c.request(call.method, path, content=call.content(), headers=headers)
    else:
        resp = await c.request(call.method, path, json=body, headers=headers)
    if resp.status_code >= 400:
        err = resp.json()["error"]
        assert err["code"] and err["request_id"] == resp.headers["x-request-id"], resp.text
    return resp.status_code


async def test_rbac_matrix_covers_every_operation(api: ApiServer, nas_sim: NasSimulator) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=15) as c:
        spec = (await c.get("/openapi.json")).json()
        operations = {
            (method.upper(), path)
            for path, item in spec["paths"].items()
            if path.startswith("/api/")
            for method in item
        }
        assert operations == {(x.method, x.template) for x in CALLS}, (
            "an operation lacks an RBAC row"
        )
        await _prepare_rbac(api)
        got: dict[tuple[str, str], dict[str, int]] = {}
        for call in CALLS:
            row = got.setdefault((call.method, call.template), {})
            row["none"] = await _call(c, call, {})
            row["bad"] = await _call(c, call, {"Authorization": "Bearer netd_not-a-token"})
            for role in ORDER:
                row[role] = await _call(c, call, api.headers(role))
    want = {
        (x.method, x.template): {
            "none": 401,
            "bad": 401,
            **{r: (x.ok if ORDER.index(r) >= ORDER.index(x.role) else 403) for r in ORDER},
        }
        for x in CALLS
    }
    assert got == want


async def test_health_and_metrics_need_no_token(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as c:
        for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await c.get(path)).status_code == 200, path
        await c.get("/api/v1/status", headers=api.headers("viewer"))
        await c.get("/api/v1/status")
        metrics = (await c.get("/metrics")).text
    assert 'netd_api_requests_total{operation="status.get",status="200"}' in metrics
    assert 'netd_api_requests_total{operation="status.get",status="401"}' in metrics
    assert 'netd_api_request_seconds_count{operation="status.get"}' in metrics


# --- the error envelope ---------------------------------------------------------------------


async def test_errors_share_one_envelope(api: ApiServer) -> None:
    async with api.client("admin") as c:
        cases = {
            404: await c.get("/api/v1/nope"),
            405: await c.put("/api/v1/status"),
            422: await c.post("/api/v1/nas", json={"name": "bad name!", "coa_port": 0}),
            400: await c.get("/api/v1/events?cursor=!!!"),
        }
        unknown = await c.get("/api/v1/nas/none-such", headers={"X-Request-ID": "noc-ticket-42"})
    for status, resp in cases.items():
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details", "request_id"}
        assert "Traceback" not in resp.text
    fields = {d["field"] for d in cases[422].json()["error"]["details"]}
    assert {"body.name", "body.network", "body.secret", "body.coa_port"} <= fields
    assert unknown.status_code == 404
    assert unknown.json()["error"]["request_id"] == "noc-ticket-42"
    assert unknown.json()["error"]["code"] == "not_found"


# --- audit ---------------------------------------------------------------------------------


async def test_every_mutating_call_is_audited(api: ApiServer) -> None:
    name = "aud-" + _uniq()
    async with api.client("admin") as c:
        created = await c.post(
            "/api/v1/nas", json={"name": name, "network": "10.77.0.1", "secret": "very-secret-1"}
        )
        patched = await c.patch(f"/api/v1/nas/{name}", json={"secret": "very-secret-2"})
        invalid = await c.post("/api/v1/nas", json={"name": name})
        deleted = await c.delete(f"/api/v1/nas/{name}")
    async with api.client("viewer") as c:
        denied = await c.delete("/api/v1/nas/bng1")
    rows = await api.pool.fetch(
        "SELECT * FROM audit_log WHERE path LIKE $1 "
        "OR (path = '/api/v1/nas/bng1' AND method = 'DELETE') ORDER BY id",
        f"%{name}%",
    )
    by_request = {r["request_id"]: r for r in rows}
    creation = await api.pool.fetchrow(
        "SELECT * FROM audit_log WHERE request_id = $1", created.headers["x-request-id"]
    )
    assert creation is not None
    assert (creation["actor"], creation["role"], creation["action"], creation["target"]) == (
        "api:test-admin",
        "admin",
        "nas.create",
        name,
    )
    assert (creation["status"], creation["result"], creation["method"]) == (201, "ok", "POST")
    expected = {
        patched: ("nas.update", 200, "ok"),
        deleted: ("nas.delete", 204, "ok"),
        denied: ("nas.delete", 403, "denied"),
    }
    for resp, (action, status, result) in expected.items():
        row = by_request[resp.headers["x-request-id"]]
        assert (row["action"], row["status"], row["result"]) == (action, status, result)
    assert by_request[denied.headers["x-request-id"]]["actor"] == "api:test-viewer"
    bad = await api.pool.fetchrow(
        "SELECT * FROM audit_log WHERE request_id = $1", invalid.headers["x-request-id"]
    )
    assert bad is not None and (bad["status"], bad["result"]) == (422, "invalid")
    dump = json.dumps([dict(r) for r in await api.pool.fetch("SELECT details FROM audit_log")])
    assert "very-secret" not in dump
    assert json.loads(by_request[patched.headers["x-request-id"]]["details"]) == {
        "fields": ["secret"]
    }
    async with api.client("admin") as c:
        page = (await c.get("/api/v1/audit", params={"action": "nas.create", "limit": 1000})).json()
    assert any(i["request_id"] == created.headers["x-request-id"] for i in page["items"])


async def test_anonymous_mutation_is_audited_as_anonymous(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as c:
        resp = await c.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"})
    assert resp.status_code == 401
    row = await api.pool.fetchrow(
        "SELECT * FROM audit_log WHERE request_id = $1", resp.headers["x-request-id"]
    )
    assert row is not None and (row["actor"], row["result"]) == ("anonymous", "denied")


# --- tokens --------------------------------------------------------------------------------


async def test_token_lifecycle_through_the_api(api: ApiServer) -> None:
    async with api.client("admin") as c:
        made = await c.post("/api/v1/tokens", json={"name": "noc-" + _uniq(), "role": "operator"})
        assert made.status_code == 201
        secret = made.json()["token"]
        assert secret.startswith("netd_")
        listed = (await c.get("/api/v1/tokens", params={"limit": 1000})).json()["items"]
        assert all("token" not in t for t in listed)
        stored = await api.pool.fetchval(
            "SELECT count(*) FROM api_tokens WHERE token_hash = $1", api_store.hash_token(secret)
        )
        assert stored == 1
        dump = json.dumps(
            [dict(r) for r in await api.pool.fetch("SELECT * FROM api_tokens")], default=str
        )
        assert secret not in dump
        headers = {"Authorization": f"Bearer {secret}"}
        assert (await c.get("/api/v1/status", headers=headers)).status_code == 200
        assert (await c.delete(f"/api/v1/tokens/{made.json()['name']}")).status_code == 204
        # Revoked on this process at once (its cache is dropped).
        assert (await c.get("/api/v1/status", headers=headers)).status_code == 401


# --- pagination ----------------------------------------------------------------------------


async def _walk(
    c: httpx.AsyncClient,
    path: str,
    key: str,
    limit: int,
    between: Callable[[], Any],
    **filters: str,
) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor:
            params["cursor"] = cursor
        resp = await c.get(path, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += [item[key] for item in body["items"]]
        await between()
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


async def test_pagination_neither_misses_nor_repeats_while_rows_are_inserted(
    api: ApiServer,
) -> None:
    tag = _uniq()
    before = [f"pg{tag}-{i:03d}" for i in range(0, 120, 2)]
    await store.bulk_upsert_subscribers(
        api.pool, api.cache, [store.SubscriberRow(u) for u in before]
    )
    inserts = iter(f"pg{tag}-{i:03d}" for i in range(1, 120, 2))  # between existing names

    async def insert_more() -> None:
        for _ in range(3):
            name = next(inserts, None)
            if name:
                await store.upsert_subscriber(api.pool, api.cache, store.SubscriberRow(name))

    async with api.client("viewer") as c:
        seen = await _walk(c, "/api/v1/subscribers", "username", 7, insert_more)
    mine = [u for u in seen if u.startswith(f"pg{tag}-")]
    assert len(mine) == len(set(mine)), "a row came twice"
    assert set(before) <= set(mine), "a row present throughout was missed"
    assert seen == sorted(seen, key=lambda u: u)  # one stable order

    # Live sessions: the same while sessions start and stop.
    base = [await start_session(api, f"ls{tag}-{i:03d}", f"lsu{i}") for i in range(0, 80, 2)]
    extra = iter(range(1, 80, 2))
    gone: list[AcctRecord] = []

    async def churn() -> None:
        i = next(extra, None)
        if i is not None:
            rec = await start_session(api, f"ls{tag}-{i:03d}", f"lsu{i}")
            gone.append(rec)
            if len(gone) > 2:
                await stop_session(api, gone.pop(0))

    async with api.client("viewer") as c:
        ids = await _walk(c, "/api/v1/sessions", "unique_id", 9, churn)
    mine = [i for i in ids if i.startswith(f"ls{tag}-")]
    assert len(mine) == len(set(mine))
    assert {r.unique_id for r in base} <= set(mine)

    # Events: newest first, by id, while events are appended.
    for i in range(30):
        await append_event(api.pool, "test", "test.page", subject=f"{tag}-{i}")
    first = await api.pool.fetchval("SELECT max(id) FROM events")

    async def more_events() -> None:
        await append_event(api.pool, "test", "test.page", subject=f"{tag}-late")

    async with api.client("viewer") as c:
        got = await _walk(c, "/api/v1/events", "id", 4, more_events, kind="test.page")
    assert len(got) == len(set(got))
    assert [i for i in got if i <= first] == sorted([i for i in got if i <= first], reverse=True)
    present = {
        r["id"]
        for r in await api.pool.fetch(
            "SELECT id FROM events WHERE id <= $1 AND kind = 'test.page'", first
        )
    }
    assert {i for i in got if i <= first} == present


async def test_limit_is_capped(api: ApiServer) -> None:
    async with api.client("viewer") as c:
        resp = await c.get("/api/v1/sessions", params={"limit": 1001})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "query.limit"


async def test_live_sessions_filter_by_user_nas_and_ip(api: ApiServer) -> None:
    tag = _uniq()
    await start_session(api, f"f{tag}-1", f"fu{tag}", "100.65.0.1")
    await start_session(api, f"f{tag}-2", f"fu{tag}", "100.65.0.2", nas="bng2")
    async with api.client("viewer") as c:
        by_user = (await c.get("/api/v1/sessions", params={"user": f"fu{tag}"})).json()["items"]
        by_nas = (
            await c.get("/api/v1/sessions", params={"user": f"fu{tag}", "nas": "bng2"})
        ).json()
        by_ip = (await c.get("/api/v1/sessions", params={"ip": "100.65.0.1"})).json()["items"]
        one = (await c.get(f"/api/v1/sessions/f{tag}-1")).json()
    assert [s["unique_id"] for s in by_user] == [f"f{tag}-1", f"f{tag}-2"]
    assert [s["unique_id"] for s in by_nas["items"]] == [f"f{tag}-2"]
    assert [s["unique_id"] for s in by_ip] == [f"f{tag}-1"]
    assert one["live"] is True and one["framed_ip"] == "100.65.0.1"


async def test_live_session_found_by_an_ipv6_address_inside_its_prefixes(api: ApiServer) -> None:
    """Issue 21: GET /api/v1/sessions?ip= with an IPv6 address inside a session's
    Delegated-IPv6-Prefix or Framed-IPv6-Prefix; the session shows its prefixes."""
    tag = _uniq()
    n = int(tag[:4], 16)
    rec = AcctRecord(
        nas="bng1",
        status=AcctStatus.START,
        acct_session_id="v6-" + tag,
        unique_id="v6" + tag,
        idem_key="k-v6" + tag,
        event_time=time.time(),
        username="v6u" + tag,
        framed_ipv6_prefix=f"2001:db8:{n:x}:1::/64",
        delegated_ipv6_prefix=f"2001:db9:{n:x}:100::/56",
    )
    await accounting.append_accounting(api.pool, [rec])
    await accounting.update_live_sessions(api.cache, [rec], [])
    async with api.client("viewer") as c:
        inside = (await c.get("/api/v1/sessions", params={"ip": f"2001:db9:{n:x}:1ab::7"})).json()[
            "items"
        ]
        wan = (await c.get("/api/v1/sessions", params={"ip": f"2001:db8:{n:x}:1::9"})).json()
        outside = (await c.get("/api/v1/sessions", params={"ip": f"2001:db9:{n:x}:200::1"})).json()
        one = (await c.get(f"/api/v1/sessions/v6{tag}")).json()
    assert [x["unique_id"] for x in inside] == ["v6" + tag]
    assert inside[0]["delegated_ipv6_prefix"] == f"2001:db9:{n:x}:100::/56"
    assert [x["unique_id"] for x in wan["items"]] == ["v6" + tag]
    assert outside["items"] == []
    assert one["framed_ipv6_prefix"] == f"2001:db8:{n:x}:1::/64"


# --- the event stream ------------------------------------------------------------------------


async def _read_events(resp: httpx.Response, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(10):
        async for line in resp.aiter_lines():
            if line.startswith(":") or line.startswith("retry:"):
                continue
            if not line:
                if "event" in current:
                    events.append(current)
                    if len(events) == count:
                        return events
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    raise AssertionError(f"the stream ended after {len(events)} events")


async def test_event_stream_resumes_from_last_event_id(api: ApiServer) -> None:
    tag = _uniq()
    async with api.client("viewer") as c:
        async with c.stream("GET", "/api/v1/events/stream", params={"kinds": "session."}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            await asyncio.sleep(0.2)  # the stream's starting point is fixed when it opens
            recs = [await start_session(api, f"sse{tag}-{i}", f"sseu{tag}") for i in range(5)]
            first = await _read_events(resp, 3)
        assert [e["data"]["session"] for e in first] == [r.unique_id for r in recs[:3]]
        assert {e["event"] for e in first} == {"session.start"}
        await stop_session(api, recs[0])
        more = [await start_session(api, f"sse{tag}-{i}", f"sseu{tag}") for i in range(5, 7)]
        async with c.stream(
            "GET",
            "/api/v1/events/stream",
            params={"kinds": "session."},
            headers={"Last-Event-ID": first[-1]["id"]},
        ) as resp:
            rest = await _read_events(resp, 5)
    assert [(e["event"], e["data"]["session"]) for e in rest] == [
        ("session.start", recs[3].unique_id),
        ("session.start", recs[4].unique_id),
        ("session.stop", recs[0].unique_id),
        ("session.start", more[0].unique_id),
        ("session.start", more[1].unique_id),
    ]
    ids = [e["id"] for e in first + rest]
    assert len(set(ids)) == len(ids)


async def test_event_stream_rejects_a_bad_last_event_id(api: ApiServer) -> None:
    async with api.client("viewer") as c:
        resp = await c.get("/api/v1/events/stream", headers={"Last-Event-ID": "yesterday"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_request"


async def test_event_stream_says_when_it_cannot_resume_everything(api: ApiServer) -> None:
    async with (
        api.client("viewer") as c,
        c.stream("GET", "/api/v1/events/stream", headers={"Last-Event-ID": "1-0"}) as resp,
    ):
        await start_session(api, "gap-" + _uniq(), "gapper")
        got = await _read_events(resp, 1)
    assert got[0]["event"] == "gap"


# --- Disconnect and CoA ----------------------------------------------------------------------


async def test_disconnect_and_coa_reach_the_nas_and_are_audited(
    api: ApiServer, nas_sim: NasSimulator
) -> None:
    rec = await start_session(api, "dc-" + _uniq(), "carol", "100.64.7.7")
    async with api.client("operator") as c:
        nas_sim.mode = "ack"
        ack = await c.post(f"/api/v1/sessions/{rec.unique_id}/disconnect")
        nas_sim.mode = "nak"
        nak = await c.post(f"/api/v1/sessions/{rec.unique_id}/coa", json={"plan": "fiber-100"})
        nas_sim.mode = "silent"
        silent = await c.post(
            f"/api/v1/sessions/{rec.unique_id}/coa",
            json={"attributes": {"Session-Timeout": 600}, "retries": 2},
        )
        unknown = await c.post("/api/v1/sessions/none-such/disconnect")
        bad_attr = await c.post(
            f"/api/v1/sessions/{rec.unique_id}/coa", json={"attributes": {"No-Such-Attr": 1}}
        )
    assert (ack.status_code, ack.json()["result"]) == (200, "ack")
    assert nak.json()["result"] == "nak" and nak.json()["error_cause"] == 503
    assert silent.json()["result"] == "timeout" and silent.json()["attempts"] == 2
    assert unknown.status_code == 404 and bad_attr.status_code == 422
    sent = [s for s in nas_sim.seen if s.get("Acct-Session-Id") == [rec.acct_session_id]]
    assert len(sent) >= 3
    rows = await api.pool.fetch(
        "SELECT kind, result, error_cause, actor FROM coa_requests WHERE unique_id = $1 "
        "ORDER BY id",
        rec.unique_id,
    )
    assert [(r["kind"], r["result"], r["error_cause"]) for r in rows] == [
        ("disconnect", "ack", None),
        ("coa", "nak", 503),
        ("coa", "timeout", None),
    ]
    assert {r["actor"] for r in rows} == {"api:test-operator"}
    audit = await api.pool.fetchrow(
        "SELECT * FROM audit_log WHERE request_id = $1", ack.headers["x-request-id"]
    )
    assert audit is not None
    assert (audit["action"], audit["target"], audit["result"]) == (
        "sessions.disconnect",
        rec.unique_id,
        "ok",
    )
    assert json.loads(audit["details"])["result"] == "ack"


# --- plans, subscribers, the ledger ------------------------------------------------------------


async def test_subscribers_batch_upsert_all_or_none(api: ApiServer) -> None:
    tag = _uniq()
    async with api.client("admin") as c:
        made = await c.post(
            "/api/v1/subscribers/batch",
            json={
                "subscribers": [
                    {"username": f"bt{tag}-{i}", "password": f"pw{i}", "plan": "fiber-100"}
                    for i in range(50)
                ]
            },
        )
        changed = await c.post(
            "/api/v1/subscribers/batch",
            json={"subscribers": [{"username": f"bt{tag}-0", "state": "suspended"}]},
        )
        bad = await c.post(
            "/api/v1/subscribers/batch",
            json={
                "subscribers": [
                    {"username": f"bx{tag}-0"},
                    {"username": f"bx{tag}-1", "mac": "zz:zz:zz:zz:zz:zz"},
                ]
            },
        )
        one = (await c.get(f"/api/v1/subscribers/bt{tag}-0")).json()
    assert made.json() == {"upserted": 50, "created": 50}
    assert changed.json() == {"upserted": 1, "created": 0}
    assert (one["state"], one["plan"], one["credentials"]) == (
        "suspended",
        "fiber-100",
        ["cleartext", "nt-hash"],
    )
    assert bad.status_code == 422
    # The MAC rule is the request model's (daemons/core/validate.py): the field is named.
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["body.subscribers.1.mac"]
    assert await store.fetch_subscriber_db(api.pool, f"bx{tag}-0") is None
    row = await api.pool.fetchrow(
        "SELECT * FROM audit_log WHERE request_id = $1", made.headers["x-request-id"]
    )
    assert row is not None and (row["action"], row["target"]) == (
        "subscribers.batch",
        "50 subscribers",
    )


async def test_plans_managed_through_the_api(api: ApiServer) -> None:
    name = "gold-" + _uniq()
    async with api.client("admin") as c:
        made = await c.put(
            f"/api/v1/plans/{name}",
            json={"download": "500M", "upload": "50M", "class": "plan=gold"},
        )
        again = await c.put(f"/api/v1/plans/{name}", json={"download": "600M", "upload": "60M"})
        bad = await c.put("/api/v1/plans/broken", json={"download": "fast", "upload": "1M"})
        half = await c.put("/api/v1/plans/half", json={"download": "1M"})
        filed = await c.put("/api/v1/plans/default", json={"download": "1M", "upload": "1M"})
        got = (await c.get(f"/api/v1/plans/{name}")).json()
        sub = await c.post("/api/v1/subscribers", json={"username": "g" + _uniq(), "plan": name})
        nosuch = await c.post(
            "/api/v1/subscribers", json={"username": "h" + _uniq(), "plan": "nope"}
        )
        gone = await c.delete(f"/api/v1/plans/{name}")
        file_delete = await c.delete("/api/v1/plans/default")
    assert (made.status_code, again.status_code) == (201, 200)
    assert bad.status_code == 422 and "fast" in bad.json()["error"]["message"]
    assert half.status_code == 422
    assert filed.status_code == 409 and file_delete.status_code == 409
    assert got == {"name": name, "source": "api", "spec": {"download": "600M", "upload": "60M"}}
    assert sub.status_code == 201 and sub.json()["plan"] == name
    assert nosuch.status_code == 422
    assert gone.status_code == 204


async def test_subscriber_secrets_are_never_returned(api: ApiServer) -> None:
    user = "s" + _uniq()
    async with api.client("admin") as c:
        made = await c.post(
            "/api/v1/subscribers",
            json={
                "username": user,
                "password": "hunter2-pw",
                "mac": "AA-BB-CC-00-11-22",
                "framed_ip": "100.66.0.1",
            },
        )
        hashed = await c.patch(
            f"/api/v1/subscribers/{user}", json={"password": "other-pw", "hash": "bcrypt"}
        )
        bad_mac = await c.patch(f"/api/v1/subscribers/{user}", json={"mac": "not-a-mac"})
    assert made.status_code == 201, made.text
    assert made.json()["mac"] == "aa:bb:cc:00:11:22"
    assert made.json()["credentials"] == ["cleartext", "nt-hash"]
    assert hashed.json()["credentials"] == ["hash"]
    assert "hunter2" not in made.text and "other-pw" not in hashed.text
    assert bad_mac.status_code == 422


async def test_ledger_records_and_usage(api: ApiServer) -> None:
    user = "led" + _uniq()
    recs = [await start_session(api, f"{user}-{i}", user) for i in range(3)]
    for rec in recs:
        await stop_session(api, rec)
    async with api.client("viewer") as c:
        page1 = (
            await c.get("/api/v1/accounting/records", params={"user": user, "limit": 4})
        ).json()
        page2 = (
            await c.get(
                "/api/v1/accounting/records",
                params={"user": user, "limit": 4, "cursor": page1["next_cursor"]},
            )
        ).json()
        usage = (await c.get("/api/v1/accounting/usage", params={"user": user})).json()
        empty = await c.get(
            "/api/v1/accounting/usage",
            params={"user": user, "since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
        )
        backwards = await c.get(
            "/api/v1/accounting/usage",
            params={"user": user, "since": "2021-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
        )
    ids = [r["id"] for r in page1["items"] + page2["items"]]
    assert len(ids) == 6 and ids == sorted(ids) and page2["next_cursor"] is None
    assert (usage["sessions"], usage["records"]) == (3, 6)
    assert (usage["input_octets"], usage["output_octets"], usage["session_time"]) == (
        3000,
        6000,
        15,
    )
    assert empty.json()["records"] == 0
    assert backwards.status_code == 422


async def test_auth_log(api: ApiServer) -> None:
    """Issue 21: GET /api/v1/auth-log, filtered and paged, newest first."""
    user = "al" + _uniq()
    now = time.time()
    events = [
        AuthEvent(
            now - 60 + i,
            user,
            "bng1" if i % 2 else "bng2",
            "p1",
            "",
            "pap",
            "reject" if i < 3 else "accept",
            "bad_password" if i < 3 else "ok",
            None if i < 3 else "fiber-100",
            {} if i < 3 else {"Framed-Pool": "fiber"},
        )
        for i in range(5)
    ]
    await authlog_store.append_auth_events(api.pool, events)
    async with api.client("viewer") as c:
        page1 = (await c.get("/api/v1/auth-log", params={"user": user, "limit": 3})).json()
        page2 = (
            await c.get(
                "/api/v1/auth-log",
                params={"user": user, "limit": 3, "cursor": page1["next_cursor"]},
            )
        ).json()
        rejects = (
            await c.get("/api/v1/auth-log", params={"user": user, "result": "reject"})
        ).json()
        on_nas = (await c.get("/api/v1/auth-log", params={"user": user, "nas": "bng1"})).json()
        late = (
            await c.get(
                "/api/v1/auth-log",
                params={"user": user, "since": datetime.fromtimestamp(now - 58, UTC).isoformat()},
            )
        ).json()
        bad = await c.get("/api/v1/auth-log", params={"result": "maybe"})
    items = page1["items"] + page2["items"]
    assert [x["reason"] for x in items] == [
        "ok",
        "ok",
        "bad_password",
        "bad_password",
        "bad_password",
    ]
    assert page2["next_cursor"] is None and items[0]["given"] == {"Framed-Pool": "fiber"}
    assert len(rejects["items"]) == 3 and {x["nas"] for x in on_nas["items"]} == {"bng1"}
    assert len(late["items"]) == 3
    assert bad.status_code == 422


async def test_ipv6_pools(api: ApiServer) -> None:
    """Issue 21: an IPv6 pool by the API, checked by the same rules as the CLI."""
    name = "pd" + _uniq()
    async with api.client("admin") as c:
        made = await c.put(
            f"/api/v1/pools6/{name}", json={"prefix": "2001:db8:a00::/40", "length": 56}
        )
        listed = (await c.get("/api/v1/pools6")).json()
        host_bits = await c.put(
            f"/api/v1/pools6/{name}x", json={"prefix": "2001:db8:a00::1/40", "length": 56}
        )
        too_long = await c.put(
            f"/api/v1/pools6/{name}y", json={"prefix": "2001:db8:a00::/40", "length": 96}
        )
        moved = await c.put(
            f"/api/v1/pools6/{name}", json={"prefix": "2001:db8:b00::/40", "length": 56}
        )
    assert made.status_code == 200, made.text
    assert (made.json()["capacity"], made.json()["leased"]) == (65536, 0)
    assert name in [p["name"] for p in listed]
    assert host_bits.status_code == 422 and "host bits" in host_bits.text
    assert too_long.status_code == 422 and "/48 to /64" in too_long.text
    assert moved.status_code == 409


async def test_status_lists_the_daemon_instances(api: ApiServer) -> None:
    async with api.client("viewer") as c:
        body = (await c.get("/api/v1/status")).json()
    assert body["stores"] == {"postgres": "ok", "redis": "ok"}
    (me,) = [i for i in body["instances"] if i["daemon"] == "api"]
    assert me["pid"] == api.proc.proc.pid and me["uptime"] >= 0 and me["status"] == "running"
    assert body["live_sessions"] == await accounting.live_session_count(api.cache)


async def test_snmp_targets_keep_their_secrets(api: ApiServer) -> None:
    name = "olt-" + _uniq()
    async with api.client("admin") as c:
        made = await c.put(
            f"/api/v1/snmp/targets/{name}",
            json={
                "address": "192.0.2.7",
                "version": "3",
                "user": "noc",
                "auth": "sha256",
                "auth_key": "auth-secret-xyz",
                "priv": "aes",
                "priv_key": "priv-secret-xyz",
                "context": "vrf-red",
                "profiles": ["system", "if-mib"],
                "tags": ["olt"],
            },
        )
        v2c_context = await c.put(
            f"/api/v1/snmp/targets/{name}x",
            json={"address": "192.0.2.8", "community": "c", "context": "vrf-red"},
        )
        again = await c.put(
            f"/api/v1/snmp/targets/{name}",
            json={"address": "192.0.2.7", "community": "community-two-xyz", "profiles": ["system"]},
        )
        bad_profile = await c.put(
            f"/api/v1/snmp/targets/{name}",
            json={"address": "192.0.2.7", "community": "c", "profiles": ["nope"]},
        )
        no_auth = await c.put(
            f"/api/v1/snmp/targets/{name}",
            json={
                "address": "192.0.2.7",
                "version": "3",
                "user": "u",
                "priv": "aes",
                "priv_key": "k",
            },
        )
        shown = await c.get(f"/api/v1/snmp/targets/{name}")
        latest = await c.get(f"/api/v1/snmp/targets/{name}/latest")
    assert made.status_code == 201 and again.status_code == 200
    assert made.json()["context"] == "vrf-red"  # SNMPv3 context name (Cisco per-VRF)
    assert v2c_context.status_code == 422 and "SNMPv3 only" in v2c_context.text
    assert bad_profile.status_code == 422 and no_auth.status_code == 422
    body = shown.json()
    assert body["version"] == "2c" and body["profiles"] == ["system"]
    assert "secret" not in made.text and "community-two" not in shown.text
    assert latest.json() == {"target": name, "ts": None, "samples": []}
    sealed = await api.pool.fetchval(
        "SELECT credentials_enc FROM snmp_targets WHERE name = $1", name
    )
    assert b"community-two" not in sealed


async def test_snmp_status_samples_events_and_traps(api: ApiServer) -> None:
    """What the poller leaves (a status in Redis, samples in PostgreSQL, events) as the API
    serves it."""
    name = "sw-" + _uniq()
    async with api.client("admin") as c:
        made = await c.put(
            f"/api/v1/snmp/targets/{name}",
            json={"address": "192.0.2.9", "community": "c", "profiles": ["if-mib"]},
        )
        assert made.status_code == 201, made.text
    status = {
        "state": "down",
        "reason": "tooBig",
        "message": "192.0.2.9:161: the agent answers tooBig",
        "last_poll": 1_700_000_100.0,
        "last_ok": 1_700_000_000.0,
        "duration": 0.02,
        "lateness": 0.001,
        "failures": 2,
        "varbinds": 0,
        "samples": 0,
    }
    await api.cache.client.set(api.cache.key("snmp:" + name, "status"), pack(status))
    big = 18446744073709551000  # a Counter64 past 2^53: a float would make it ...616
    latest_record = snmp_store.latest_record(
        1_700_000_000.0, [Sample("ifHCInOctets", (("ifIndex", "1"),), big, "counter")]
    )
    await api.cache.client.set(api.cache.key("snmp:" + name, "latest"), latest_record)
    now = datetime.now(UTC)
    await snmp_store.ensure_partitions(api.pool, now, 30)
    rows = [
        (
            now - timedelta(minutes=m_),
            name,
            Sample(metric, (("ifIndex", i), ("ifName", f"ge{i}")), float(m_), "rate"),
        )
        for m_ in (1, 2, 3)
        for i in ("1", "2")
        for metric in ("ifHCInOctets_rate", "ifHCOutOctets_rate")
    ]
    await snmp_store.write_samples(api.pool, rows)
    await append_event(api.pool, "poller", "snmp.error", subject=name, data={"reason": "tooBig"})
    await append_event(
        api.pool, "poller", "snmp.trap", subject="192.0.2.9", data={"trap": "linkDown"}
    )
    async with api.client("viewer") as c:
        shown = (await c.get(f"/api/v1/snmp/targets/{name}")).json()
        listed = (await c.get("/api/v1/snmp/targets")).json()
        got = (
            await c.get(
                f"/api/v1/snmp/targets/{name}/samples",
                params={"metric": "ifHCInOctets_rate", "label": ["ifName=ge2"]},
            )
        ).json()
        cut = (await c.get(f"/api/v1/snmp/targets/{name}/samples", params={"limit": 5})).json()
        narrow = (
            await c.get(
                f"/api/v1/snmp/targets/{name}/samples",
                params={"since": (now - timedelta(seconds=90)).isoformat()},
            )
        ).json()
        bad = await c.get(f"/api/v1/snmp/targets/{name}/samples", params={"label": "nolabel"})
        events = (await c.get(f"/api/v1/snmp/targets/{name}/events")).json()
        trapped = (await c.get("/api/v1/snmp/traps", params={"source": "192.0.2.9"})).json()
        latest = (await c.get(f"/api/v1/snmp/targets/{name}/latest")).json()
    assert [s["value"] for s in latest["samples"]] == [big]
    assert shown["status"] == status
    assert [t["status"] for t in listed if t["name"] == name] == [status]
    assert [(r["metric"], r["labels"]["ifName"], r["value"]) for r in got["samples"]] == [
        ("ifHCInOctets_rate", "ge2", 3.0),
        ("ifHCInOctets_rate", "ge2", 2.0),
        ("ifHCInOctets_rate", "ge2", 1.0),
    ]
    assert got["truncated"] is False
    assert len(cut["samples"]) == 5 and cut["truncated"] is True
    assert {r["value"] for r in narrow["samples"]} == {1.0}
    assert bad.status_code == 422
    assert [e["kind"] for e in events["items"]] == ["snmp.error"]
    assert [e["data"]["trap"] for e in trapped["items"]] == ["linkDown"]


async def test_realms_managed_through_the_api(api: ApiServer) -> None:
    name = f"r{_uniq()}.example"
    async with api.client("admin") as c:
        made = await c.put(f"/api/v1/realms/{name}", json={"action": "reject", "reason": "no"})
        again = await c.put(f"/api/v1/realms/{name}", json={"action": "local", "strip": True})
        nopool = await c.put("/api/v1/realms/x.example", json={"action": "proxy", "pool": "nope"})
        badname = await c.put("/api/v1/realms/bad name", json={"action": "local"})
        badkey = await c.put("/api/v1/realms/y.example", json={"action": "local", "x": 1})
        listed = (await c.get("/api/v1/realms")).json()
        servers = await c.get("/api/v1/home-servers")
        gone = await c.delete(f"/api/v1/realms/{name}")
        missing = await c.delete(f"/api/v1/realms/{name}")
    assert made.status_code == 201 and again.status_code == 200, (made.text, again.text)
    assert nopool.status_code == 422 and "no home server pool 'nope'" in nopool.text
    assert badname.status_code == 422 and "realm" in badname.text
    assert badkey.status_code == 422
    assert {"name": name, "source": "api", "spec": {"action": "local", "strip": True}} in listed
    assert servers.status_code == 200 and servers.json() == []
    assert gone.status_code == 204 and missing.status_code == 404
