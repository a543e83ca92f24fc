"""CPE authentication with Digest (and preemptive Basic refused under Digest), and the
policy for unknown devices."""

from __future__ import annotations

import httpx

from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, load_model, model_files, run_session

ACS_ENV = {
    "NETD_ACS_AUTH": "digest",
    "NETD_ACS_USERNAME": "cpe",
    "NETD_ACS_PASSWORD": "cpe-secret-pw",
    "NETD_ACS_AUTO_REGISTER": "false",
}


async def test_digest_auth_and_unknown_devices_refused(acs: AcsServer) -> None:
    model = load_model(model_files()[0])
    stranger = Cpe(model, serial_suffix="-auth", username="cpe", password="cpe-secret-pw")
    # Digest challenge, then the right answer: but auto_register is off, so 403.
    assert await run_session(stranger, "127.0.0.1", acs.port) == [401, 403]
    await acs.pool.execute(
        "INSERT INTO cpe_devices (id, oui, product_class, serial) VALUES ($1, $2, $3, $4)",
        stranger.device_id,
        stranger.oui,
        stranger.product_class,
        stranger.serial,
    )
    statuses = await run_session(stranger, "127.0.0.1", acs.port)
    assert statuses[:2] == [401, 200] and statuses[-1] == 204
    wrong = Cpe(model, serial_suffix="-auth", username="cpe", password="nope")
    assert await run_session(wrong, "127.0.0.1", acs.port) == [401, 401]
    basic = Cpe(model, serial_suffix="-auth", username="cpe", password="cpe-secret-pw")
    basic.preemptive_basic = True  # Basic is not accepted when Digest is configured
    assert (await run_session(basic, "127.0.0.1", acs.port))[0] == 401
    async with httpx.AsyncClient() as c:
        resp = await c.post(f"http://127.0.0.1:{acs.port}/", content=stranger.inform())
    assert resp.status_code == 401
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Digest ") and 'qop="auth"' in challenge
