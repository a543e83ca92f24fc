"""The grpc.aio server of the northbound API, which the API daemon starts on
``api.host:api.grpc_port``: TLS (reloaded on SIGHUP, mutual when asked), the three
servicers, grpc.health.v1 following the daemon's readiness, and the drain.

Every RPC takes ``authorization: Bearer <token>`` metadata: the HTTP API's tokens, roles
and per-token rate limit, through the same :class:`Authenticator`. A servicer method does
what the HTTP route does, by calling the same ``daemons.api.ops`` function; a mutating
call writes an ``audit_log`` row (method ``GRPC``, path ``/netd.v1.Service/Method``),
allowed or not. Failures end the call with a status code and a ``google.rpc.Status`` in
the trailers (see ``convert``), and ``x-request-id`` (the client's, or a new one) comes
back in the trailers of every call. That per-call shell is :mod:`daemons.nbi.shell`; the
servicers are :mod:`daemons.nbi.servicers`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from daemons.api.state import ApiState
from daemons.core.http import hostport
from daemons.core.tlsreload import TlsError, check_pair
from daemons.nbi.gen.netd.v1 import devices_pb2_grpc as dv_grpc
from daemons.nbi.gen.netd.v1 import sessions_pb2_grpc as ss_grpc
from daemons.nbi.gen.netd.v1 import subscribers_pb2_grpc as sb_grpc
from daemons.nbi.servicers import Devices, Sessions, Subscribers
from daemons.nbi.shell import Nbi

log = logging.getLogger("netd.nbi")

SERVICES = (
    "netd.v1.SubscribersService",
    "netd.v1.SessionsService",
    "netd.v1.DevicesService",
)
_HEALTH_EVERY = 5.0  # seconds between readiness checks behind grpc.health.v1
_MAX_MESSAGE = 16 * 2**20  # a batch of 10,000 subscribers fits with room to spare


class GrpcServer:
    """grpc.aio on ``host:port`` (TLS with ``tls`` = (cert, key)), with grpc.health.v1
    following the daemon's readiness."""

    def __init__(
        self,
        state: ApiState,
        registry: CollectorRegistry | None,
        host: str,
        port: int,
        drain_timeout: float,
        tls: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
    ) -> None:
        """``client_ca``: mutual TLS, a client certificate signed by these CAs is required
        (gRPC verifies a client certificate only when it requires one) and its subject CN
        maps to a role (api.client_cert_roles) for a call without a token."""
        self.nbi = Nbi(state, registry)
        self.client_ca = client_ca.read_bytes() if client_ca is not None else None
        self.nbi.mutual = self.client_ca is not None
        self.host = host
        self.port = port
        self.tls = tls
        self._next_tls: Any = None  # a checked pair for gRPC's fetcher, taken once
        self.drain_timeout = drain_timeout
        self.health = health_aio.HealthServicer()
        self._server: Any = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the address cannot be bound."""
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),  # a port in use is an error, as for HTTP
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ]
        )
        sb_grpc.add_SubscribersServiceServicer_to_server(Subscribers(self.nbi), server)
        ss_grpc.add_SessionsServiceServicer_to_server(Sessions(self.nbi), server)
        dv_grpc.add_DevicesServiceServicer_to_server(Devices(self.nbi), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = hostport(self.host, self.port)
        try:
            if self.tls is not None:
                try:
                    cert, key = check_pair(*self.tls)
                except TlsError as exc:
                    raise OSError(f"gRPC TLS: {exc}") from None
                # asked at every new handshake: a reloaded pair (SIGHUP) reaches new
                # connections, open ones keep theirs
                creds = grpc.dynamic_ssl_server_credentials(
                    grpc.ssl_server_certificate_configuration([(key, cert)], self.client_ca),
                    self._fetch_tls,
                    require_client_authentication=self.client_ca is not None,
                )
                bound = server.add_secure_port(address, creds)
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(f"cannot listen on {address} (gRPC)")
        self.port = int(bound)
        await server.start()
        self._server = server
        await self._set_health(True)
        self._watch = asyncio.create_task(self._follow_readiness(), name="nbi-health")

    def _fetch_tls(self) -> Any:
        """gRPC's certificate fetcher: a reloaded configuration once, else None (keep)."""
        pending, self._next_tls = self._next_tls, None
        return pending

    def reload_tls(self) -> bool | None:
        """Read the certificate and key again (SIGHUP); a bad pair keeps the one in force
        and is logged. None without TLS, else whether the new pair is in force."""
        if self.tls is None:
            return None
        try:
            cert, key = check_pair(*self.tls)
        except TlsError as exc:
            log.error(
                "TLS certificate not reloaded; the one in force stays",
                extra={"fields": {"listener": "grpc", "problem": str(exc)}},
            )
            return False
        self._next_tls = grpc.ssl_server_certificate_configuration([(key, cert)], self.client_ca)
        log.info("TLS certificate reloaded", extra={"fields": {"listener": "grpc"}})
        return True

    async def _set_health(self, ok: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    async def _follow_readiness(self) -> None:
        """grpc.health.v1 says SERVING while /health/ready would say 200."""
        while True:
            await asyncio.sleep(_HEALTH_EVERY)
            ok, _checks = await self.nbi.st.health.ready()
            await self._set_health(ok)

    async def stop(self) -> None:
        """NOT_SERVING, end the Watch streams (their clients resume with their cursor),
        let unary calls finish within the drain timeout."""
        if self._watch is not None:
            self._watch.cancel()
        if self._server is None:
            return
        self.nbi.draining.set()
        await self.health.enter_graceful_shutdown()
        await self._server.stop(self.drain_timeout)
        self._server = None
