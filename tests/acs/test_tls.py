"""The ACS over HTTPS (acs.tls_cert/tls_key), sessions ended with an empty 200 for CPEs set
up that way, and HoldRequests."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import httpx

from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, load_model, model_files
from tests.certs import write_self_signed

CERTS = Path(tempfile.mkdtemp(prefix="netd-acs-tls-"))


def _self_signed() -> tuple[Path, Path]:
    return write_self_signed(CERTS, "acs")


CERT, KEY = _self_signed()
ACS_ENV = {
    "NETD_ACS_TLS_CERT": str(CERT),
    "NETD_ACS_TLS_KEY": str(KEY),
    "NETD_ACS_END_WITH_200": "true",
}


async def test_cwmp_over_https_ends_with_an_empty_200_and_holds_requests(
    acs: AcsServer,
) -> None:
    cpe = Cpe(load_model(model_files()[0]), serial_suffix="-tls")
    url = f"https://127.0.0.1:{acs.port}/"
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(CERT))) as c:
        inform = await c.post(url, content=cpe.inform())
        assert inform.status_code == 200 and b"InformResponse" in inform.content
        # HoldRequests: the answer to a CPE request is only its response.
        held = cpe.envelope("<cwmp:GetRPCMethods/>").replace(
            b"</soap:Header>", b"<cwmp:HoldRequests>1</cwmp:HoldRequests></soap:Header>"
        )
        answer = await c.post(url, content=held)
        assert answer.status_code == 200 and b"GetRPCMethodsResponse" in answer.content
        body = b""
        status = 0
        for _ in range(1000):  # discovery, then the end
            resp = await c.post(url, content=cpe.answer(body) if body else b"")
            status, body = resp.status_code, resp.content
            if not body:
                break
        assert (status, body) == (200, b"")  # acs.end_with_200
    async with httpx.AsyncClient() as plain:
        try:
            await plain.post(f"http://127.0.0.1:{acs.port}/", content=b"")
            raise AssertionError("plain HTTP was answered on the TLS port")
        except httpx.HTTPError:
            pass
