"""Debian's headless Chromium driven by its chromedriver (selenium), with the network
limited to loopback: every request that is not for 127.0.0.1 goes to a proxy of the
test's own that records it and answers 502, and the browser's own network log is kept
(CDP ``Network.requestWillBeSent``), so a test can say that no request left the host."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import tool

# The browser's own services (clock, updates, account, autofill, the default search
# engine's preconnect), which it calls whatever the page: they reach the sink and no
# further. Anything else there came from a page.
BROWSER_SERVICES = ("google.com", "googleapis.com", "gvt1.com", "duckduckgo.com")


class SinkProxy:
    """An HTTP proxy on 127.0.0.1 that forwards nothing: it records each request line
    (``CONNECT host:443`` or ``GET http://host/...``) and answers 502."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0]
                    self.requests.append(first.decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def from_pages(self) -> list[str]:
        """The requests that did not come from the browser's own services."""
        out = []
        for line in self.requests:
            if not line.strip():  # a connection opened and closed unused (a preconnect)
                continue
            target = line.split(" ")[1] if " " in line else line
            host = target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if not any(host == s or host.endswith("." + s) for s in BROWSER_SERVICES):
                out.append(line)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator[tuple[WebDriver, SinkProxy]]:
    binary = tool("chromium", "chromium")
    driver_path = tool("chromedriver", "chromium-driver")
    proxy = SinkProxy()
    profile = tempfile.TemporaryDirectory(prefix="noc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=OptimizationHints,AutofillServerCommunication,Translate,MediaRouter",
        "--no-pings",
        f"--user-data-dir={profile.name}",
        f"--window-size={width},{height}",
        # Loopback goes direct (Chromium never proxies it); anything else reaches the sink.
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver, proxy
    finally:
        driver.quit()
        proxy.close()
        profile.cleanup()


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page asked for since the last call (the performance log), less the
    requests the page's Content-Security-Policy blocked before they were sent (ReDoc's
    bundle asks for its vendor's logo on cdn.redoc.ly: CSP stops it)."""
    sent: dict[str, str] = {}
    blocked: set[str] = set()
    for entry in driver.get_log("performance"):
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            sent[params["requestId"]] = str(params["request"]["url"])
        elif (
            message.get("method") == "Network.loadingFailed"
            and params.get("blockedReason") == "csp"
        ):
            blocked.add(params["requestId"])
    return [url for rid, url in sent.items() if rid not in blocked]


def off_host(urls: list[str], base: str) -> list[str]:
    """The URLs that are neither on ``base`` nor data:/blob:/about: ones, nor the
    browser's own pages (chrome://, its new-tab page)."""
    return [
        u for u in urls if not u.startswith((base + "/", "data:", "blob:", "about:", "chrome:"))
    ]


def wait(driver: WebDriver, seconds: float = 20.0) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds, poll_frequency=0.1)


def screenshot(driver: WebDriver, path: Path, full: bool = True) -> Path:
    """A PNG of the page: the whole document (the window grown to its height, at most
    4,000 px), or with ``full=False`` what a 1440x1000 window shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = 1000
    if full:
        driver.set_window_size(1440, 900)  # the document's own height, not the window's
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        height = min(max(height + 140, 900), 4000)
    driver.set_window_size(1440, height)
    driver.save_screenshot(str(path))
    return path
