"""The RADIUS daemon: the assembly of its layers, and their lifecycle.

    transport (UdpListeners) ──datagram──▶ AuthShell / AcctShell ──▶ Admission
                                             │            │            (NAS, rate limit,
                                             │            │             decode, authenticators,
                                             │            │             duplicate cache, replies)
                                   engine (auth.py) ◀──┘            └──▶ ledger, spool (store)
                                                                         └─ sinks: Upkeep
    transport (StreamListeners: RADIUS/TCP, RadSec) ──framed request──▶ the same shells

Per datagram: NAS by source address → decode → Message-Authenticator → duplicate cache →
(Status-Server answered at once) → subscriber from Redis (PostgreSQL on a miss) → engine →
signed reply. Everything that is not a valid request from a known NAS is dropped silently,
counted by reason and logged at most once per reason per 10 s. See ARCHITECTURE.md
("RADIUS daemon layout") for what each module owns and may import.

``radius.workers = N`` runs N processes on the same port (SO_REUSEPORT): this one and N-1
children (``netd radius-worker``) that it starts, and stops on drain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from prometheus_client import CollectorRegistry

from daemons.core.config import RadiusConfig
from daemons.core.lifecycle import Context, Daemon, StartupError
from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer
from daemons.radius.acct_shell import AcctShell
from daemons.radius.acct_upkeep import Upkeep
from daemons.radius.admission import Admission
from daemons.radius.auth_shell import AuthShell
from daemons.radius.authlog_writer import AuthLogWriter
from daemons.radius.dictionary import Dictionary, DictionaryError
from daemons.radius.eap_exchanges import EapConfigError, EapExchanges, tls_contexts
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.proxy_shell import ProxyShell
from daemons.radius.shared import Drops, LedgerState, Stores
from daemons.radius.stream_server import StreamListeners
from daemons.radius.tables import NasTable, Tables
from daemons.radius.transport import Transport, UdpListeners
from daemons.radius.workers import Workers, die_with_parent, report_bound

log = logging.getLogger("netd.radius")


@dataclass(frozen=True)
class Layers:
    """The daemon's layers, wired to each other, with no transport and no process."""

    metrics: RadiusMetrics
    ratelog: RateLimitedLog
    tables: Tables
    inflight: Inflight
    admission: Admission
    auth: AuthShell
    acct: AcctShell
    upkeep: Upkeep
    exchanges: EapExchanges
    proxy: ProxyShell


def assemble(
    cfg: RadiusConfig,
    stores: Stores,
    sealer: Sealer,
    dictionary: Dictionary,
    registry: CollectorRegistry,
    state_dir: Path,
) -> Layers:
    """Wire the layers: the one place that knows them all (the daemon and the seam tests
    use it). A transport then takes ``auth`` and ``acct`` as its receivers. Raises
    EapConfigError when an EAP certificate, key, CA or CRL cannot be used."""
    metrics = RadiusMetrics(registry)
    ratelog = RateLimitedLog(log)
    drops = Drops(metrics, ratelog)
    ledger = LedgerState()
    tables = Tables(cfg, stores, sealer, dictionary, metrics, ratelog)
    inflight = Inflight(cfg.max_inflight, metrics, ratelog)
    admission = Admission(cfg, tables, inflight, metrics, drops)
    exchanges = EapExchanges(cfg, tls_contexts(cfg), metrics, ratelog)
    auth = AuthShell(
        cfg, stores, sealer, tables, admission, inflight, metrics, drops, ratelog, exchanges
    )
    acct = AcctShell(
        cfg, stores, dictionary, admission, inflight, metrics, drops, ratelog, state_dir, ledger
    )
    upkeep = Upkeep(cfg, stores, sealer, tables, inflight, metrics, ratelog, ledger)
    acct.after_commit.append(upkeep.after_commit)
    proxy = ProxyShell(cfg, stores, admission, inflight, metrics, drops, ratelog)
    auth.route = acct.route = proxy.route  # realms (issue 28): after admission
    proxy.ledger = acct.take  # a realm's proxied accounting in our ledger too
    return Layers(
        metrics, ratelog, tables, inflight, admission, auth, acct, upkeep, exchanges, proxy
    )


class RadiusService(Daemon):
    name: ClassVar[str] = "radius"
    spawns_workers: ClassVar[bool] = True
    ready_fd: ClassVar[int | None] = None  # a worker's pipe to its instance (workers.ready)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = cfg = ctx.config.radius
        try:
            self.dictionary = Dictionary(cfg.dictionaries)
            self.sealer = ctx.sealer
        except (DictionaryError, ValueError) as exc:
            raise StartupError(f"radius: {exc}", status=2) from None
        try:
            layers = assemble(
                cfg, ctx, self.sealer, self.dictionary, ctx.registry, ctx.config.state_dir
            )
        except EapConfigError as exc:
            raise StartupError(f"radius: {exc}", status=2) from None
        self.metrics = layers.metrics
        self.ratelog = layers.ratelog
        self.tables = layers.tables
        self.inflight = layers.inflight
        self.admission = layers.admission
        self.auth = layers.auth
        self.acct = layers.acct
        self.upkeep = layers.upkeep
        self.proxy = layers.proxy
        self.transports: list[Transport] = [
            UdpListeners(
                cfg.listen,
                cfg.auth_port,
                cfg.acct_port,
                self.auth,
                self.acct,
                self.ratelog,
                claim=self.spawns_workers,
                workers=cfg.workers,
                send_batch=cfg.send_batch,
            )
        ]
        self.streams: StreamListeners | None = None
        if self.spawns_workers and (cfg.radsec.tls_port or cfg.radsec.tcp_port):
            # RADIUS/TCP and RadSec (RFC 6613/6614): the instance alone, so the connection
            # limits hold for it whole; its workers serve UDP.
            layers_in = (self.tables, self.auth, self.acct, self.metrics, self.ratelog)
            self.streams = StreamListeners(cfg.radsec, cfg.listen, *layers_in)
            self.transports.append(self.streams)
        self.workers = Workers(ctx.config_path)

    @property
    def nas(self) -> NasTable:
        return self.tables.nas

    # --- policies ---

    def check_policies(self, policies: PolicySet) -> None:
        self.tables.check_policies(policies)
        self.proxy.check_policies(policies)

    def apply_policies(self, policies: PolicySet) -> None:
        self.tables.apply_policies(policies)
        self.proxy.apply_policies(policies)

    def reload_tls(self) -> dict[str, bool]:
        done = self.streams.reload_tls() if self.streams is not None else None
        return {} if done is None else {"radsec": done}

    # --- lifecycle ---

    async def start(self) -> None:
        if self.cfg.auth_log:  # the authentication history, batched off the hot path
            self.auth.authlog = AuthLogWriter(
                self.ctx.pool,
                self.ctx.cache,
                self.cfg.auth_log_retention,
                interval=self.cfg.auth_log_interval,
            )
        await self.tables.start()
        for transport in self.transports:
            await transport.open()
        self.tables.watch()
        if self.spawns_workers:  # one process per instance keeps the live sessions whole
            self.upkeep.start()
        self.acct.start()
        await self.proxy.start(forwarder=self.spawns_workers)
        if self.spawns_workers and self.cfg.workers > 1:
            self.workers.spawn(self.cfg.workers - 1)
            # Ready once every process serves the port (a worker joining the SO_REUSEPORT
            # group moves requests, and an EAP exchange begun then, to another process).
            await self.workers.ready()
        if self.ready_fd is not None:  # a worker: bound; the instance may report ready
            report_bound(self.ready_fd)
            type(self).ready_fd = None

    def endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for transport in self.transports:
            out.update(transport.endpoints())
        return out

    def counters(self) -> dict[str, float]:
        return {
            "handled": self.admission.handled,
            "inflight": self.inflight.load(),
            "nas": len(self.tables.nas),
            **({"stream_connections": len(self.streams.connections)} if self.streams else {}),
            **self.proxy.counters(),  # each home server's state (issue 28)
        }

    async def drain(self) -> None:
        """Take no new requests, answer those in flight, then close the sockets."""
        self.inflight.draining = True
        self.acct.commit_now()
        self.workers.stop()
        await self.inflight.wait()
        await self.proxy.wait(self.ctx.config.lifecycle.drain_timeout)
        for transport in self.transports:
            transport.close()
        await self.workers.wait()

    async def close(self) -> None:
        await self.proxy.close()
        await self.upkeep.close()
        await self.tables.close()
        self.workers.kill()
        for transport in self.transports:
            transport.release()
        self.auth.close()
        if self.auth.authlog is not None:  # what is buffered is written
            await self.auth.authlog.close()


class RadiusWorker(RadiusService):
    """A worker process: the same service, without children of its own. ``ready_fd``
    (``netd radius-worker --ready-fd``): where it says it has bound its sockets."""

    spawns_workers: ClassVar[bool] = False


__all__ = ["Layers", "NasTable", "RadiusService", "RadiusWorker", "assemble", "die_with_parent"]
