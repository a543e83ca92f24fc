"""The stored tree follows the device (issue 24), on real data models against a real
`netd acs`: DeleteObject removes the subtree, a refresh removes what the CPE no longer
reports, a BOOTSTRAP re-reads the tree; a discovery one of whose batches faults resumes
and marks only the names that fault as unreadable; every answer to a CPE request echoes
its cwmp:ID."""

from __future__ import annotations

from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, Http, cwmp_id, load_model, model_files, request, run_session

MODELS = {p.stem: p for p in model_files()}
ZTE = MODELS["device-C0B101-ZXHN_H199A-ZTEYH86LCN10105-2023-03-28T154022233Z"]  # WLAN 1-8
TR181 = MODELS["device-1C61B4-EX220-2226469000523"]
WLAN = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."


async def _stored(acs: AcsServer, cpe: Cpe, prefix: str = "") -> set[str]:
    return set(await store.device_params(acs.pool, cpe.device_id, prefix or cpe.root))


def _tree(cpe: Cpe, prefix: str = "") -> set[str]:
    """The CPE's names under ``prefix`` (the root object itself is not listed by a CPE)."""
    return {n for n in cpe.tree if n.startswith(prefix or cpe.root) and n != cpe.root}


async def _task(acs: AcsServer, cpe: Cpe, kind: str, args: dict[str, object]) -> dict[str, object]:
    tid = await store.queue_task(acs.pool, cpe.device_id, kind, args, "test")
    await run_session(cpe, "127.0.0.1", acs.port)
    task = await store.get_task(acs.pool, tid)
    assert task is not None
    return task


async def test_delete_object_removes_the_subtree(acs: AcsServer) -> None:
    cpe = Cpe(load_model(ZTE), serial_suffix="-del")
    await run_session(cpe, "127.0.0.1", acs.port)
    added = await _task(acs, cpe, "addObject", {"name": WLAN})
    assert added["status"] == "done" and added["result"]["instance"] == 9  # type: ignore[index]
    nine = f"{WLAN}9."
    # The new instance is read into the stored tree: the object and its 81 parameters.
    assert await _stored(acs, cpe, nine) == _tree(cpe, nine) and len(_tree(cpe, nine)) == 82
    deleted = await _task(acs, cpe, "deleteObject", {"name": nine})
    assert deleted["status"] == "done"
    assert _tree(cpe, nine) == set()
    assert await _stored(acs, cpe, nine) == set()  # main kept the 82 rows
    assert await _stored(acs, cpe) == _tree(cpe)


async def test_a_refresh_removes_what_the_cpe_no_longer_has(acs: AcsServer) -> None:
    cpe = Cpe(load_model(ZTE), serial_suffix="-refresh")
    await run_session(cpe, "127.0.0.1", acs.port)
    eight = f"{WLAN}8."
    assert len(await _stored(acs, cpe, eight)) == 82  # the object and its 81 parameters
    for name in [n for n in cpe.tree if n.startswith(eight)]:  # gone behind the ACS's back
        del cpe.tree[name]
    task = await _task(acs, cpe, "refreshObject", {"path": WLAN})
    assert task["status"] == "done"
    assert await _stored(acs, cpe, eight) == set()
    assert await _stored(acs, cpe, WLAN) == _tree(cpe, WLAN)
    # A refresh of one leaf removes nothing else.
    leaf = f"{WLAN}1.SSID"
    assert (await _task(acs, cpe, "refreshObject", {"path": leaf}))["status"] == "done"
    assert await _stored(acs, cpe, WLAN) == _tree(cpe, WLAN)


async def test_a_bootstrap_rereads_the_tree(acs: AcsServer) -> None:
    cpe = Cpe(load_model(TR181), serial_suffix="-boot")
    await run_session(cpe, "127.0.0.1", acs.port)
    ssid = "Device.WiFi.SSID.1.SSID"
    done = await _task(acs, cpe, "setParameterValues", {"values": [[ssid, "x", "xsd:string"]]})
    assert done["status"] == "done"
    extra = await _task(acs, cpe, "addObject", {"name": "Device.WiFi.SSID."})
    inst = f"Device.WiFi.SSID.{extra['result']['instance']}."  # type: ignore[index]
    assert await _stored(acs, cpe, inst)
    before = await acs.pool.fetchval(
        "SELECT discovered_at FROM cpe_devices WHERE id = $1", cpe.device_id
    )
    # A factory reset (by the CPE's button): the tree is the factory one again.
    cpe.factory_reset()
    statuses = await run_session(cpe, "127.0.0.1", acs.port)
    assert statuses[-1] == 204
    assert await _stored(acs, cpe, inst) == set()
    stored = await store.device_params(acs.pool, cpe.device_id, ssid)
    assert stored[ssid]["value"] == cpe.tree[ssid].value != "x"
    assert await _stored(acs, cpe) == _tree(cpe)
    after = await acs.pool.fetchval(
        "SELECT discovered_at FROM cpe_devices WHERE id = $1", cpe.device_id
    )
    assert after > before


async def test_a_faulted_discovery_batch_is_retried_and_the_name_marked(acs: AcsServer) -> None:
    cpe = Cpe(load_model(TR181), serial_suffix="-fault")
    leaves = sorted(n for n in _tree(cpe) if not n.endswith("."))
    bad = leaves[len(leaves) // 2]  # in a middle batch of 200
    cpe.unreadable = {bad}
    await run_session(cpe, "127.0.0.1", acs.port)
    row = await acs.pool.fetchrow(
        "SELECT discovered_at FROM cpe_devices WHERE id = $1", cpe.device_id
    )
    assert row["discovered_at"] is not None
    stored = await store.device_params(acs.pool, cpe.device_id, cpe.root)
    # Every other name of the faulted batch was read; the bad one is marked unreadable.
    assert {n for n, r in stored.items() if r["value"] is not None} == set(leaves) - {bad}
    assert stored[bad]["fault"] == 9005
    # The next session reads nothing again.
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == []


async def test_discovery_resumes_where_it_stopped(acs: AcsServer) -> None:
    cpe = Cpe(load_model(TR181), serial_suffix="-resume")
    leaves = sorted(n for n in _tree(cpe) if not n.endswith("."))
    batches = -(-len(leaves) // 200)
    cpe.drop = {"GetParameterValues"}  # the first session dies at its first batch...
    await run_session(cpe, "127.0.0.1", acs.port)
    cpe.drop = set()
    conn = await Http.open("127.0.0.1", acs.port)  # ...and a few batches into the second
    _, got, _ = await conn.post("/", cpe.inform(), {})
    headers = {"Cookie": got["set-cookie"].split(";", 1)[0]}
    _, _, data = await conn.post("/", b"", headers)
    for _ in range(3):
        reply = cpe.answer(data)
        assert reply is not None
        _, _, data = await conn.post("/", reply, headers)
    await conn.close()
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    # The rest only: no GetParameterNames again, and the batches not read yet.
    assert "GetParameterNames" not in cpe.seen
    assert cpe.seen.count("GetParameterValues") == batches - 3
    stored = await store.device_params(acs.pool, cpe.device_id, cpe.root)
    assert {n for n, r in stored.items() if r["value"] is not None} == set(leaves)


async def test_every_answer_to_a_cpe_request_echoes_its_id(acs: AcsServer) -> None:
    cpe = Cpe(load_model(TR181), serial_suffix="-ids")
    await run_session(cpe, "127.0.0.1", acs.port)
    await _task(acs, cpe, "download", {"url": "http://127.0.0.1:9/fw.bin"})
    await run_session(cpe, "127.0.0.1", acs.port)  # its TransferComplete
    conn = await Http.open("127.0.0.1", acs.port)
    status, got, _ = await conn.post("/", cpe.inform(), {})
    headers = {"Cookie": got["set-cookie"].split(";", 1)[0]}
    await request(cpe, conn, "/", headers, cpe.envelope("<cwmp:GetRPCMethods/>", "rpc-42"))
    odd = cpe.envelope("<cwmp:Kick><Command>x</Command></cwmp:Kick>", "kick 7")
    await request(cpe, conn, "/", headers, odd)
    status, _, data = await conn.post("/", b"", headers)
    assert status == 204 and cwmp_id(data) == ""
    await conn.close()
    methods = [m for m, _, _ in cpe.echoes]
    assert methods == ["TransferComplete", "GetRPCMethods", "Kick"]
    assert [(sent, got) for _, sent, got in cpe.echoes if sent != got] == []
