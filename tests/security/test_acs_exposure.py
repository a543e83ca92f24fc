"""Issue 26: the ACS refuses an insecure exposure.

Attacks tried against real `netd acs` processes:
- an ACS with no CPE authentication bound off loopback: refused at start (exit 2, one line,
  the same line from `netd check-config`), unless acs.allow_insecure says so (one line);
- downloading every file of the file store without credentials, with wrong ones, with
  another device's: 401; the global or the device's own credentials: 200;
- registering a device from outside the auto-registration limits (OUI, product class,
  source network): 403, nothing written.
"""

# ruff: noqa: F811 - the ACS fixtures are imported from tests/acs and used by name
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daemons.acs import guard
from daemons.acs.files import FileStore
from daemons.core.secrets import Sealer
from daemons.store import acs as store
from tests.acs.conftest import AcsServer, acs  # noqa: F401 - the fixture: a process
from tests.acs.sim import Cpe, load_model, model_files, run_session
from tests.support import NetdProcess, free_port

MODEL = load_model(model_files()[0])
OUI = Cpe(MODEL).oui
PRODUCT_CLASS = Cpe(MODEL).product_class

ACS_ENV = {
    "NETD_ACS_AUTH": "digest",
    "NETD_ACS_USERNAME": "cpe",
    "NETD_ACS_PASSWORD": "global-cpe-pw-26",
    "NETD_ACS_AUTO_REGISTER_OUIS": OUI,
    "NETD_ACS_AUTO_REGISTER_PRODUCT_CLASSES": PRODUCT_CLASS,
    "NETD_ACS_AUTO_REGISTER_NETWORKS": "127.0.0.0/8",
}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_auth_off_loopback_is_refused_and_allow_insecure_says_so(
    tmp_path: Path, acs: AcsServer
) -> None:
    env = {
        **acs.env,
        "NETD_ACS_AUTH": "none",
        "NETD_ACS_PORT": str(free_port()),
        "NETD_ACS_STATUS_PORT": str(free_port()),
        "NETD_STATE_DIR": str(tmp_path / "state"),
        # A spelling of 127.0.0.1 the check cannot prove is loopback: it counts as exposed
        # (as 0.0.0.0 would), while the test still binds only loopback.
        "NETD_ACS_HOST": "127.1",
    }
    for args in (["acs"], ["check-config"]):
        out = _run(args, env, tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert 'acs.auth = "none" with acs.host = "127.1" (not loopback)' in lines[0]
        assert "acs.allow_insecure = true" in lines[0]
    insecure = _run(["check-config"], {**env, "NETD_ACS_ALLOW_INSECURE": "true"}, tmp_path)
    assert insecure.returncode == 0, insecure.stderr
    assert "none on 127.1 (INSECURE: acs.allow_insecure)" in insecure.stdout
    proc = NetdProcess(["acs"], {**env, "NETD_ACS_ALLOW_INSECURE": "true"}, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{env['NETD_ACS_STATUS_PORT']}/health/ready")
        said = [line for line in proc.output().splitlines() if "INSECURE" in line]
        assert len(said) == 1 and "acs.allow_insecure = true" in said[0], proc.output()
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()
    # On loopback, no authentication is a lab: it starts (the other fixtures run so).
    ok = _run(["check-config"], {**env, "NETD_ACS_HOST": "127.0.0.1"}, tmp_path)
    assert ok.returncode == 0, ok.stderr


async def test_files_only_to_authenticated_cpes_with_their_own_credentials(
    acs: AcsServer, tmp_path: Path
) -> None:
    files = FileStore(Path(acs.env["NETD_STATE_DIR"]) / "acs-files", 1024 * 1024)
    await files.put(acs.pool, "fw-26.bin", b"firmware" * 100, file_type="1 Firmware Upgrade Image")
    sealer = Sealer(bytes.fromhex(acs.env["NETD_SECRETS_KEY"]))
    await store.set_credentials(acs.pool, sealer, "dev-a-26", "dev-a", "dev-a-pw")
    await store.set_credentials(acs.pool, sealer, "dev-b-26", "dev-b", "dev-b-pw")
    url = f"http://127.0.0.1:{acs.port}/files/fw-26.bin"
    async with httpx.AsyncClient(timeout=10) as c:
        anonymous = await c.get(url)
        assert (
            anonymous.status_code == 401
            and "digest" in anonymous.headers["www-authenticate"].lower()
        )
        assert (await c.head(url)).status_code == 401
        for user, password in (("cpe", "wrong"), ("dev-a", "dev-b-pw"), ("nobody", "x")):
            got = await c.get(url, auth=httpx.DigestAuth(user, password))
            assert got.status_code == 401, (user, password)
        # Basic is not accepted when the ACS asks for Digest, even with good credentials
        assert (await c.get(url, auth=httpx.BasicAuth("dev-a", "dev-a-pw"))).status_code == 401
        for user, password in (
            ("cpe", "global-cpe-pw-26"),
            ("dev-a", "dev-a-pw"),
            ("dev-b", "dev-b-pw"),
        ):
            got = await c.get(url, auth=httpx.DigestAuth(user, password))
            assert got.status_code == 200 and got.content == b"firmware" * 100, user


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("Device.DeviceInfo.ManufacturerOUI", "A1B2C3", "acs.auto_register_ouis"),
        ("Device.DeviceInfo.ProductClass", "Rogue", "acs.auto_register_product_classes"),
    ],
)
async def test_auto_registration_is_limited(
    acs: AcsServer, field: str, value: str, why: str
) -> None:
    allowed = Cpe(MODEL, serial_suffix="-lim", username="cpe", password="global-cpe-pw-26")
    statuses = await run_session(allowed, "127.0.0.1", acs.port)
    assert statuses[:2] == [401, 200], statuses
    stranger = Cpe(
        load_model(model_files()[0]),
        serial_suffix="-rogue",
        username="cpe",
        password="global-cpe-pw-26",
    )
    key = field if field in stranger.tree else field.replace("Device.", "InternetGatewayDevice.")
    stranger.tree[key].value = value
    assert await run_session(stranger, "127.0.0.1", acs.port) == [401, 403]
    assert await store.get_device(acs.pool, stranger.device_id) is None
    # the reason is logged (rate-limited per status: the first refusal of the run says it)
    assert "is not in acs.auto_register_" in acs.proc.output()
    limits = guard.Limits(frozenset([OUI]), frozenset([PRODUCT_CLASS]))
    refusal = guard.may_register(limits, stranger.oui, stranger.product_class, "127.0.0.1")
    assert refusal is not None and why in refusal


def test_auto_registration_from_another_network_is_refused(tmp_path: Path, acs: AcsServer) -> None:
    port, status = free_port(), free_port()
    env = {
        **acs.env,
        "NETD_ACS_PORT": str(port),
        "NETD_ACS_STATUS_PORT": str(status),
        "NETD_STATE_DIR": str(tmp_path / "state"),
        "NETD_ACS_AUTO_REGISTER_NETWORKS": "10.0.0.0/8,2001:db8::/32",
    }
    proc = NetdProcess(["acs"], env, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
        cpe = Cpe(MODEL, serial_suffix="-net", username="cpe", password="global-cpe-pw-26")
        statuses = asyncio.run(run_session(cpe, "127.0.0.1", port))
        assert statuses == [401, 403], statuses
        assert "acs.auto_register_networks" in proc.output()
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()
