"""A Download whose TransferComplete never comes ends (issue 24): `fault` with the reason
after acs.download_deadline, not `running` for ever."""

from __future__ import annotations

import asyncio

from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, load_model, model_files, run_session

ACS_ENV = {"NETD_ACS_DOWNLOAD_DEADLINE": "1"}


async def test_a_transfer_that_never_completes_fails_at_its_deadline(acs: AcsServer) -> None:
    cpe = Cpe(load_model(model_files()[0]), serial_suffix="-notc", complete_transfers=False)
    await run_session(cpe, "127.0.0.1", acs.port)
    tid = await store.queue_task(
        acs.pool, cpe.device_id, "download", {"url": "http://127.0.0.1:9/fw.bin"}, "test"
    )
    await run_session(cpe, "127.0.0.1", acs.port)
    task = await store.get_task(acs.pool, tid)
    assert task is not None and task["status"] == "running"
    for _ in range(60):
        await asyncio.sleep(0.1)
        task = await store.get_task(acs.pool, tid)
        assert task is not None
        if task["status"] != "running":
            break
    assert task["status"] == "fault", task
    assert "no TransferComplete within 1 s" in task["result"]["string"]
    assert task["finished_at"] is not None
    # The CPE may still finish it later: recorded, and the task says so.
    cpe.complete_transfers = True
    await run_session(cpe, "127.0.0.1", acs.port)
    task = await store.get_task(acs.pool, tid)
    assert task is not None and task["status"] == "done"
    assert task["result"]["transfer"]["fault_code"] == 0
