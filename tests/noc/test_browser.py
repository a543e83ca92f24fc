"""What NOC staff see, in Debian's headless Chromium with the network limited to loopback:
the API docs (Swagger UI and ReDoc from the wheel, Authorize and Try it out with a viewer
token), and the console (sign-in, the state of the network, a subscriber's session started
and stopped by radclient followed live, a device's SNMP, CPE and ONU, a viewer's write
refused, sign-out). Screenshots go to var/test-artefacts/noc/ (not committed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from daemons import __version__
from tests.noc.browser import SinkProxy, chromium, off_host, requested_urls, screenshot, wait
from tests.noc.conftest import ARTEFACTS, CPE_ADDRESS, Noc, until

pytestmark = pytest.mark.timeout(300)
COOKIE = "netd_console"  # the console's sign-in cookie (README)


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[WebDriver, SinkProxy]]:
    with chromium() as got:
        yield got


def _no_request_left(driver: WebDriver, proxy: SinkProxy, base: str) -> list[str]:
    urls = requested_urls(driver)
    assert not off_host(urls, base), f"requests off the host: {off_host(urls, base)}"
    assert not proxy.from_pages(), f"pages' requests reached the sink: {proxy.from_pages()}"
    return urls


def test_docs_offline_authorize_and_try_it_out(
    noc: Noc, browser: tuple[WebDriver, SinkProxy]
) -> None:
    driver, proxy = browser
    requested_urls(driver)
    driver.get(noc.url + "/docs")
    ops = wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert len(ops) > 50, len(ops)  # every operation of the API, rendered
    assert driver.find_elements(By.CSS_SELECTOR, "button.authorize")  # the bearer scheme
    screenshot(driver, ARTEFACTS / "docs.png", full=False)
    # Authorize with a viewer token, then Try it out on GET /api/v1/status.
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper button.authorize").click()
    field = wait(driver).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".modal-ux input[type=text], .modal-ux input")
    )
    field.send_keys(noc.tokens["viewer"])
    driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper button.authorize").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".modal-ux button.btn-done"))
    driver.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()
    op = driver.find_element(By.CSS_SELECTOR, "#operations-status-status_get_api_v1_status_get")
    op.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait(driver).until(lambda d: op.find_elements(By.CSS_SELECTOR, ".try-out__btn")).pop().click()
    wait(driver).until(lambda d: op.find_elements(By.CSS_SELECTOR, ".execute")).pop().click()
    status = wait(driver).until(
        lambda d: op.find_elements(
            By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"
        )
    )
    assert status[0].text.strip().startswith("200"), status[0].text
    curl = op.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert f"Authorization: Bearer {noc.tokens['viewer']}" in curl
    body = op.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description")
    assert '"live_sessions"' in body.text
    driver.set_window_size(1440, 1000)
    driver.execute_script("arguments[0].scrollIntoView()", op)
    screenshot(driver, ARTEFACTS / "docs-try-it-out.png", full=False)
    driver.get(noc.url + "/redoc")
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id]"))
    assert "dotmac-netd" in driver.find_element(By.CSS_SELECTOR, "h1").text
    screenshot(driver, ARTEFACTS / "redoc.png", full=False)
    urls = _no_request_left(driver, proxy, noc.url)
    assert noc.url + "/docs/static/swagger-ui-bundle.js" in urls
    assert noc.url + "/docs/static/redoc.standalone.js" in urls


def click(driver: WebDriver, by: str, what: str) -> None:
    """Click the element once it is there; found again if the page's live updates replaced
    it in between (a stale element)."""

    def clicked(d: WebDriver) -> bool:
        found = d.find_elements(by, what)
        if not found:
            return False
        try:
            found[0].click()
        except StaleElementReferenceException:
            return False
        return True

    wait(driver).until(clicked)


def _text(driver: WebDriver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    try:
        return found[0].text if found else ""
    except StaleElementReferenceException:  # replaced by a live update meanwhile
        return ""


async def test_console_follows_a_session_and_refuses_a_viewers_write(
    stocked: Noc, browser: tuple[WebDriver, SinkProxy]
) -> None:
    noc = stocked
    driver, proxy = browser
    requested_urls(driver)
    driver.delete_all_cookies()
    await asyncio.to_thread(driver.get, noc.url + "/")
    assert "/console/login" in driver.current_url
    screenshot(driver, ARTEFACTS / "console-sign-in.png")
    # A wrong token: refused on the page, no cookie.
    driver.find_element(By.ID, "token").send_keys("not-a-token")
    click(driver, By.CSS_SELECTOR, "form[action='/console/login'] button")
    wait(driver).until(lambda d: _text(d, ".error"))  # the form's answer has loaded
    assert "unknown or revoked" in _text(driver, ".error")
    assert driver.get_cookie(COOKIE) is None
    driver.find_element(By.ID, "token").send_keys(noc.tokens["viewer"])
    click(driver, By.CSS_SELECTOR, "form[action='/console/login'] button")
    wait(driver).until(lambda d: d.find_elements(By.ID, "daemons"))
    cookie = driver.get_cookie(COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP here; Secure over TLS (tests/security/test_console.py)
    assert _text(driver, "#live-sessions") == "0"
    wait(driver).until(lambda d: _text(d, "#live-state") == "live")
    # radclient logs alice in and starts her session: the page follows without a reload.
    session = f"noc-{time.monotonic_ns()}"
    acct = {
        "User-Name": "alice",
        "Acct-Session-Id": session,
        "NAS-Port-Id": "pon-0/1",
        "Framed-IP-Address": CPE_ADDRESS,
        "NAS-IP-Address": "127.0.0.1",
    }
    reply = await asyncio.to_thread(
        noc.radclient, "auth", {"User-Name": "alice", "User-Password": "pw-alice"}
    )
    assert "Access-Accept" in reply
    await asyncio.to_thread(noc.radclient, "acct", {**acct, "Acct-Status-Type": "Start"})
    try:
        await until(lambda: _text(driver, "#live-sessions") == "1", what="the live count at 1")
    except AssertionError:
        async with noc.client("viewer") as c:
            print("STATUS", (await c.get("/api/v1/status")).json()["live_sessions"])
        print("DATASET", driver.execute_script("return JSON.stringify(document.body.dataset)"))
        print("LIVE", _text(driver, "#live-state"), _text(driver, "#live-sessions"))
        print("LOGS", driver.get_log("browser"))
        print("OUT", noc.proc.output()[-3000:])
        raise
    assert driver.execute_script("return performance.navigation.type") == 0  # no reload
    daemons = _text(driver, "#daemons")
    for name in ("radius", "acs", "voltha", "poller", "devices", "api"):
        assert name in daemons and __version__ in daemons, daemons
    screenshot(driver, ARTEFACTS / "console-network.png")
    # alice's page: her live session, her CPE (it informs from her address), her ONU.
    driver.find_element(By.NAME, "q").send_keys("alice")
    click(driver, By.CSS_SELECTOR, "form.find button")
    click(driver, By.LINK_TEXT, "alice")
    rows = wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.session"))
    unique = rows[0].get_attribute("data-session")
    assert unique and "pon-0/1" in rows[0].text and CPE_ADDRESS in rows[0].text
    assert noc.shared["cpe"] in _text(driver, "main")
    assert "BRCM00000001" in _text(driver, "main") and "-21.50" in _text(driver, "main")
    wait(driver).until(lambda d: _text(d, "#live-state") == "live")
    # her login, from the authentication history (written in batches: reload until it is)
    wait(driver).until(lambda d: "accept" in _text(d, "#auth") or d.refresh())
    assert "bng1" in _text(driver, "#auth") and "pap" in _text(driver, "#auth")
    wait(driver).until(lambda d: _text(d, "#live-state") == "live")
    screenshot(driver, ARTEFACTS / "console-subscriber-live.png")
    # A viewer's write, from the signed-in page: refused for the role, and audited.
    answer = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/api/v1/sessions/' + arguments[0] + '/disconnect', {method: 'POST',
              credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
              body: '{}'})
          .then(r => r.text().then(t => done([r.status, t])));""",
        unique,
    )
    assert answer[0] == 403 and "needs the operator role" in answer[1], answer
    row = await noc.pool.fetchrow(
        "SELECT actor, result, status FROM audit_log WHERE action = 'sessions.disconnect' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert dict(row) == {"actor": "api:noc-viewer", "result": "denied", "status": 403}
    async with noc.client("viewer") as c:
        assert (await c.get(f"/api/v1/sessions/{unique}")).json()["live"] is True
    # radclient stops it: the page follows.
    mark = driver.execute_script("return document.body.dataset.refreshed || '0'")
    stop = {**acct, "Acct-Status-Type": "Stop", "Acct-Session-Time": 42}
    stop |= {"Acct-Input-Octets": 1_000_000, "Acct-Output-Octets": 25_000_000}
    stop |= {"Acct-Terminate-Cause": "User-Request"}
    await asyncio.to_thread(noc.radclient, "acct", stop)
    await until(lambda: driver.find_elements(By.ID, "no-live"), what="no live session shown")
    assert driver.execute_script("return document.body.dataset.refreshed") != mark
    assert "25.0 MB" in _text(driver, "main")  # the stopped session's download, in the ledger
    screenshot(driver, ARTEFACTS / "console-subscriber-stopped.png")
    # Devices: the SNMP target with its interfaces, the CPE with tasks and faults, the ONU.
    await asyncio.to_thread(driver.get, noc.url + "/console/devices/core-sw1")
    table = _text(driver, "#interfaces")
    assert "lo" in table and "up" in table, table
    screenshot(driver, ARTEFACTS / "console-device-snmp.png")
    await asyncio.to_thread(driver.get, noc.url + f"/console/devices/{noc.shared['cpe']}")
    assert "getParameterValues" in _text(driver, "#tasks")
    assert "9005" in _text(driver, "#cpe") and "alice" in _text(driver, "#cpe")
    screenshot(driver, ARTEFACTS / "console-device-cpe.png")
    await asyncio.to_thread(driver.get, noc.url + "/console/devices/BRCM00000001")
    assert "rx_dbm" in _text(driver, "#optics") and "alice" in _text(driver, "#pon")
    screenshot(driver, ARTEFACTS / "console-device-onu.png")
    # Sign-out: back to the sign-in page, the cookie gone, the console closed again.
    click(driver, By.CSS_SELECTOR, "form[action='/console/logout'] button")
    wait(driver).until(lambda d: "/console/login" in d.current_url)
    assert driver.get_cookie(COOKIE) is None
    await asyncio.to_thread(driver.get, noc.url + "/")
    assert "/console/login" in driver.current_url
    actions = [
        (r["action"], r["actor"], r["result"])
        for r in await noc.pool.fetch(
            "SELECT action, actor, result FROM audit_log WHERE path LIKE '/console/%' ORDER BY id"
        )
    ]
    assert actions == [
        ("sign_in", "anonymous", "denied"),
        ("sign_in", "api:noc-viewer", "ok"),
        ("sign_out", "api:noc-viewer", "ok"),
    ], actions
    # The page's scripts raised nothing (the 401 of the wrong token is a network entry).
    logs = [e for e in driver.get_log("browser") if e["source"] in ("javascript", "console-api")]
    assert not logs, json.dumps(logs)[:2000]
    _no_request_left(driver, proxy, noc.url)
