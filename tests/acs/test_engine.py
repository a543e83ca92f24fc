"""The session engine against the CPE simulator, in-process (no network): every shared
model, both roots, every RPC, discovery in batches, faults."""

from __future__ import annotations

import pytest

from daemons.acs import cwmp
from daemons.acs import engine as eng
from tests.acs.sim import Cpe, load_model, model_files


def drive(
    cpe: Cpe, tasks: list[eng.Task], discovered: bool, batch: int = 100
) -> tuple[eng.Session, list[eng.Effect]]:
    inform = cwmp.parse(cpe.inform())
    session = eng.Session(eng.EngineConfig(batch=batch), inform)
    effects = list(session.first(inform).effects)
    session.plan(tasks, discovered)
    step = session.receive(cwmp.parse(b""))
    for _ in range(10_000):
        effects += step.effects
        if step.body is None:
            return session, effects
        request = cwmp.envelope(session.ns, "1", step.body)
        step = session.receive(cwmp.parse(cpe.answer(request)))
    raise AssertionError("no end")


@pytest.mark.parametrize("model", model_files(), ids=lambda p: p.stem[:40])
def test_discovery_reads_every_parameter_of_every_model_in_batches(model: object) -> None:
    cpe = Cpe(load_model(model))  # type: ignore[arg-type]
    session, effects = drive(cpe, [], discovered=False, batch=200)
    values = {v.name: v.value for e in effects if isinstance(e, eng.Params) for v in e.values}
    leaves = {  # GenieACS dumps also hold its own DeviceID.* entries: not the CPE's tree
        n: p.value for n, p in cpe.tree.items() if not n.endswith(".") and n.startswith(cpe.root)
    }
    assert values == leaves
    assert any(isinstance(e, eng.Params) and e.discovered for e in effects)
    seen = next(e for e in effects if isinstance(e, eng.DeviceSeen))
    assert seen.device.key == cpe.device_id and session.root == cpe.root
    assert session.rpcs_sent == 1 + -(-len(leaves) // 200)


def test_every_rpc_as_a_task() -> None:
    cpe = Cpe(load_model(model_files()[0]))
    root = cpe.root
    writable = next(n for n, p in cpe.tree.items() if p.writable and not p.object)
    table = next(n for n, p in cpe.tree.items() if p.object and p.writable and n.count(".") >= 2)
    tasks = [
        eng.Task(1, "getParameterNames", {"path": root, "next_level": True}),
        eng.Task(2, "getParameterValues", {"names": [writable]}),
        eng.Task(3, "getParameterAttributes", {"names": [writable]}),
        eng.Task(4, "setParameterValues", {"values": [[writable, "netd", "xsd:string"]]}),
        eng.Task(
            5, "setParameterAttributes", {"attributes": [{"name": writable, "notification": 2}]}
        ),
        eng.Task(6, "addObject", {"name": table}),
        eng.Task(7, "refreshObject", {"path": table}),
        eng.Task(8, "deleteObject", {"name": table + "1."}),
        eng.Task(9, "download", {"url": "http://acs/fw.bin", "file_size": 10}),
        eng.Task(10, "upload", {"url": "http://acs/up"}),
        eng.Task(11, "scheduleInform", {"delay": 5}),
        eng.Task(12, "reboot"),
        eng.Task(13, "factoryReset"),
        eng.Task(14, "setParameterValues", {"values": [["Nope.Nope", "1", "xsd:string"]]}),
        eng.Task(15, "nonsense"),
    ]
    _session, effects = drive(cpe, tasks, discovered=True)
    results = {e.task_id: e for e in effects if isinstance(e, eng.TaskResult)}
    assert set(results) == set(range(1, 16))
    assert cpe.tree[writable].value == "netd"
    assert results[9].status == "running" and results[10].status == "running"
    assert results[14].status == "fault" and results[14].result["code"] == 9005
    assert results[15].status == "fault"
    assert all(results[i].status == "done" for i in range(1, 9)) and results[11].status == "done"
    assert cpe.seen[:4] == [
        "GetParameterNames",
        "GetParameterValues",
        "GetParameterAttributes",
        "SetParameterValues",
    ]
    faults = [e for e in effects if isinstance(e, eng.Fault)]
    assert [(f.code, f.task_id) for f in faults] == [(9005, 14)]
    # The firmware and the upload complete in a later session, by TransferComplete (this
    # simulated CPE forgets the FactoryReset of task 13: a reset one forgets its transfers).
    cpe._reset = False
    inform = cwmp.parse(cpe.inform())
    later = eng.Session(eng.EngineConfig(), inform)
    assert "M Download" in later.events
    done = later.receive(cwmp.parse(cpe.transfer_complete("netd-task-9")))
    (transfer,) = done.effects
    assert isinstance(transfer, eng.TransferDone) and transfer.command_key == "netd-task-9"
    assert done.body is not None and "TransferCompleteResponse" in done.body


def test_cpe_requests_and_unknown_methods() -> None:
    cpe = Cpe(load_model(model_files()[0]))
    session = eng.Session(eng.EngineConfig(), cwmp.parse(cpe.inform()))
    rpc = cpe.envelope("<cwmp:GetRPCMethods/>")
    step = session.receive(cwmp.parse(rpc))
    assert step.body is not None and "<string>TransferComplete</string>" in step.body
    odd = session.receive(cwmp.parse(cpe.envelope("<cwmp:Kick><Command>x</Command></cwmp:Kick>")))
    assert odd.body is not None and "<FaultCode>8000</FaultCode>" in odd.body
    with pytest.raises(eng.SessionError):
        session.receive(cwmp.parse(cpe.envelope("<cwmp:GetParameterValuesResponse/>")))


def test_autonomous_transfer_complete_and_request_download() -> None:
    cpe = Cpe(load_model(model_files()[0]))
    session = eng.Session(eng.EngineConfig(), cwmp.parse(cpe.inform()))
    atc = cpe.envelope(
        "<cwmp:AutonomousTransferComplete><AnnounceURL></AnnounceURL>"
        "<TransferURL>http://x/fw.bin</TransferURL><IsDownload>1</IsDownload>"
        "<FileType>1 Firmware Upgrade Image</FileType><FileSize>42</FileSize>"
        "<TargetFileName></TargetFileName><FaultStruct><FaultCode>9010</FaultCode>"
        "<FaultString>failed</FaultString></FaultStruct><StartTime>2026-01-01T00:00:00Z"
        "</StartTime><CompleteTime>2026-01-01T00:00:01Z</CompleteTime>"
        "</cwmp:AutonomousTransferComplete>"
    )
    step = session.receive(cwmp.parse(atc))
    assert step.body == "<cwmp:AutonomousTransferCompleteResponse/>"
    (done,) = step.effects
    assert isinstance(done, eng.TransferDone) and done.autonomous and done.fault_code == 9010
    assert done.detail["file_size"] == 42 and done.detail["is_download"] is True
    ask = cpe.envelope(
        "<cwmp:RequestDownload><FileType>3 Vendor Configuration File</FileType>"
        '<FileTypeArg soap-enc:arrayType="cwmp:ArgStruct[9]"><ArgStruct><Name>Version</Name>'
        "<Value>2</Value></ArgStruct></FileTypeArg></cwmp:RequestDownload>"
    ).replace(b"xmlns:soapenc=", b"xmlns:soap-enc=")
    step = session.receive(cwmp.parse(ask))
    assert step.body == "<cwmp:RequestDownloadResponse/>"
    (asked,) = step.effects
    assert isinstance(asked, eng.DownloadRequested)
    assert (asked.file_type, asked.args) == ("3 Vendor Configuration File", {"Version": "2"})


def test_a_faulted_batch_is_halved_down_to_the_name_that_faults() -> None:
    cpe = Cpe(load_model(model_files()[0]))
    leaves = sorted(n for n in cpe.tree if n.startswith(cpe.root) and not n.endswith("."))
    bad = leaves[150]  # in the second batch of 100
    cpe.unreadable = {bad}
    session, effects = drive(cpe, [], discovered=False, batch=100)
    unreadable = [u for e in effects if isinstance(e, eng.Params) for u in e.unreadable]
    assert unreadable == [(bad, 9005)]
    values = {v.name for e in effects if isinstance(e, eng.Params) for v in e.values}
    assert values == set(leaves) - {bad}
    assert any(isinstance(e, eng.Params) and e.discovered for e in effects)
    batches = -(-len(leaves) // 100)
    # 1 GetParameterNames, the batches, and two halves a level from 100 down to the one bad
    # name (here 12 more calls; asking each of the 100 alone would be 100)
    assert session.rpcs_sent - 1 - batches <= 2 * 7


def test_a_fault_not_about_names_leaves_the_rest_for_the_next_session() -> None:
    cpe = Cpe(load_model(model_files()[0]))
    leaves = sorted(n for n in cpe.tree if n.startswith(cpe.root) and not n.endswith("."))
    cpe.unreadable, cpe.unreadable_fault = {leaves[150]}, 9002  # "internal error"
    session, effects = drive(cpe, [], discovered=False, batch=100)
    assert not any(isinstance(e, eng.Params) and (e.discovered or e.unreadable) for e in effects)
    faults = [e for e in effects if isinstance(e, eng.Fault)]
    assert [f.code for f in faults] == [9002]
    assert session.rpcs_sent == 1 + 2  # GetParameterNames, batch 1, batch 2 faulted: stop
