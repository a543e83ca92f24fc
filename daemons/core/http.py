"""HTTP plumbing shared by the API and the per-daemon status listeners."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from daemons.core.health import Health
from daemons.core.portclaim import PortTaken, probe
from daemons.core.tlsreload import reload_context

log = logging.getLogger("netd.http")


def hostport(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, for URLs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def health_router(
    health: Health,
    registry: CollectorRegistry,
    collect: Callable[[], Awaitable[None]] | None = None,
) -> APIRouter:
    """``/health/live``, ``/health/ready``, ``/health/startup`` and ``/metrics``.

    A scrape checks readiness as ``/health/ready`` does (``netd_ready``, ``netd_store_up``),
    so Prometheus alerts on a process that runs but should get no traffic; ``collect``
    sets gauges read from the stores at the scrape."""
    router = APIRouter(tags=["health"])
    ready_gauge = Gauge(
        "netd_ready", "1 if /health/ready would answer 200, at the scrape", registry=registry
    )
    store_up = Gauge(
        "netd_store_up",
        "1 if the store answered its check, at the scrape",
        ["store"],
        registry=registry,
    )

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        ok, checks = await health.ready()
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/health/startup")
    async def startup() -> JSONResponse:
        ok = health.started
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        ok, checks = await health.ready()
        ready_gauge.set(1 if ok else 0)
        for store in ("postgres", "redis"):
            store_up.labels(store).set(1 if checks[store] == "ok" else 0)
        if collect is not None:
            await collect()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


#: how long a client may take to send a request's line and headers (a slow-header client,
#: "slowloris", holds a connection and its memory for as long as it likes otherwise)
HEADER_TIMEOUT = 30.0


#: a TLS client's verified certificate (``ssl.SSLSocket.getpeercert()``), by (ip, port)
PeerCerts = dict[tuple[str, int], dict[str, Any]]


class CoalescedWrites:
    """A transport whose writes of one turn of the event loop leave in one send.

    uvicorn writes a response's status line and headers, then its body: two system calls,
    and two wake-ups of the client, for each small response. Here they are joined and sent
    at the end of the loop's turn (or at ``close``); everything else is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(bytes(data))

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def bounded_protocol(
    header_timeout: float,
    on_timeout: Callable[[], None] | None = None,
    peers: PeerCerts | None = None,
    coalesce: bool = False,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline on reading each request's headers.

    uvicorn bounds only the idle time between two requests (``timeout_keep_alive``): a
    connection that sends nothing after connecting, or sends its request line and headers a
    byte at a time, is kept for ever. Here a timer runs from the connection (or from the
    first byte of the next request on a kept-alive connection) until the headers are
    complete; when it fires the connection is closed and ``on_timeout`` is called. Bodies are
    the application's to bound (they may be large uploads). ``coalesce``: a response's
    writes leave together (:class:`CoalescedWrites`).
    """
    base: Any = AutoHTTPProtocol

    class HeaderBoundedProtocol(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None
        _cycle_at_arm: object = None

        _peer_key: tuple[str, int] | None = None

        def connection_made(self, transport: Any) -> None:
            if coalesce:
                super().connection_made(CoalescedWrites(transport, self.loop))
            else:
                super().connection_made(transport)
            self._arm()
            if peers is not None:  # mutual TLS: the client's verified certificate
                tls = transport.get_extra_info("ssl_object")
                cert = tls.getpeercert() if tls is not None else None
                name = transport.get_extra_info("peername")
                if cert and name:
                    self._peer_key = (str(name[0]), int(name[1]))
                    peers[self._peer_key] = cert

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            if self._header_timer is None and (cycle is None or cycle.response_complete):
                self._arm()  # the first bytes of the next request on a kept-alive connection
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._cycle_at_arm:
                self._disarm()  # a new request cycle: its headers are complete

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if peers is not None and self._peer_key is not None:
                peers.pop(self._peer_key, None)
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._cycle_at_arm = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()
                if on_timeout is not None:
                    on_timeout()

    return HeaderBoundedProtocol


class HttpServer:
    """A uvicorn server driven by our lifecycle (no signal handling of its own). A request's
    headers must arrive within ``header_timeout`` seconds (``bounded_protocol``)."""

    def __init__(
        self,
        app: FastAPI | Any,
        host: str,
        port: int,
        drain_timeout: float,
        tls: tuple[Path, Path] | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        on_header_timeout: Callable[[], None] | None = None,
        client_ca: Path | None = None,
        client_required: bool = False,
        coalesce: bool = False,
    ) -> None:
        #: mutual TLS (``client_ca``): the verified client certificate of each connection
        self.peers: PeerCerts = {}
        mutual = tls is not None and client_ca is not None
        peers = self.peers if mutual else None
        protocol = bounded_protocol(header_timeout, on_header_timeout, peers, coalesce)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=protocol,
            ssl_ca_certs=str(client_ca) if mutual else None,
            ssl_cert_reqs=(ssl.CERT_REQUIRED if client_required else ssl.CERT_OPTIONAL)
            if mutual
            else ssl.CERT_NONE,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(max(1, drain_timeout)),
            server_header=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        config.load()
        if config.ssl is not None:
            # TLS 1.2 or later whatever the platform's defaults (RFC 8996 retires 1.0/1.1)
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self.host = host
        self.port = port
        self.tls = tls
        self._ssl = config.ssl

    def reload_tls(self, listener: str) -> bool | None:
        """Read the certificate and key again (SIGHUP): new connections get them, open
        ones keep theirs; a bad pair keeps the one in force and is logged. None without
        TLS, else whether the new pair is in force."""
        if self.tls is None or self._ssl is None:
            return None
        return reload_context(self._ssl, self.tls[0], self.tls[1], listener)

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the address cannot be bound."""
        try:
            await self._server.startup()
        except SystemExit:  # uvicorn exits the process on a bind error; we report it instead
            raise OSError(self._why()) from None
        if not self._server.started:
            raise OSError(self._why())

    def _why(self) -> str:
        """Why the bind failed, naming the process holding the port when it is one."""
        try:
            probe("tcp", self.host, self.port)
        except PortTaken as exc:
            return f"cannot listen: {exc}"
        return f"cannot listen on {hostport(self.host, self.port)}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by the drain timeout)."""
        if self._server.started:
            self._server.should_exit = True
            await self._server.shutdown()
            self._server.started = False
