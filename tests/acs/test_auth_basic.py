"""CPE authentication with Basic: preemptive (the quirk of many stacks) and after a
challenge; the file store asks for the same credentials."""

from __future__ import annotations

import httpx

from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, load_model, model_files, run_session

ACS_ENV = {
    "NETD_ACS_AUTH": "basic",
    "NETD_ACS_USERNAME": "cpe",
    "NETD_ACS_PASSWORD": "basic-secret-pw",
}


async def test_preemptive_and_challenged_basic(acs: AcsServer) -> None:
    model = load_model(model_files()[2])
    eager = Cpe(model, serial_suffix="-basic", username="cpe", password="basic-secret-pw")
    eager.preemptive_basic = True
    statuses = await run_session(eager, "127.0.0.1", acs.port)
    assert statuses[0] == 200 and statuses[-1] == 204  # no challenge needed
    polite = Cpe(model, serial_suffix="-basic", username="cpe", password="basic-secret-pw")
    assert (await run_session(polite, "127.0.0.1", acs.port))[:2] == [401, 200]
    wrong = Cpe(model, serial_suffix="-basic", username="cpe", password="nope")
    wrong.preemptive_basic = True
    assert (await run_session(wrong, "127.0.0.1", acs.port))[0] == 401
    async with httpx.AsyncClient() as c:
        refused = await c.get(f"http://127.0.0.1:{acs.port}/files/none.bin")
        allowed = await c.get(
            f"http://127.0.0.1:{acs.port}/files/none.bin", auth=("cpe", "basic-secret-pw")
        )
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert allowed.status_code == 404
