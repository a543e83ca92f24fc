"""The tables the RADIUS layers read on every request, and their reloads.

- :class:`NasTable`: NAS clients by source address (exact, then longest prefix).
- :class:`Tables`: the NAS table in force, the names of our IP pools, and the engine
  configuration (dictionary, policy with the API-managed plans, EAP state key). NAS
  clients, pools and managed plans are reloaded on PostgreSQL NOTIFY and every
  ``radius.nas_refresh_interval``; a reload that fails keeps the tables in force. The
  policy files come from the process's SIGHUP (``check_policies``/``apply_policies``).

Readers look the attributes up each time (``tables.nas``, ``tables.engine``): a reload
replaces them whole, never edits them in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from daemons.core.config import RadiusConfig
from daemons.core.listen import reload_on_notify
from daemons.core.policies import PolicyError, PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer, SealError
from daemons.radius.auth import EngineConfig, Nas
from daemons.radius.dictionary import Dictionary
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.policy import Policy, load_policy
from daemons.radius.shared import Stores
from daemons.radius.stream import RADSEC_SECRET, TLS_PREFIX
from daemons.store import api as api_store
from daemons.store import pools
from daemons.store import pools6 as pools6_store
from daemons.store import radius as store

log = logging.getLogger("netd.radius")


class NasTable:
    """NAS clients by source address: exact addresses first, then longest prefix.

    A NAS with a ``tls_identity`` is also found by its client certificate
    (:meth:`lookup_tls`), and then as the peer host ``tls:<name>`` with RFC 6614's fixed
    secret: a RadSec connection's requests go through the same ``lookup``."""

    def __init__(self, entries: Sequence[Nas]) -> None:
        self.entries = list(entries)
        self.exact: dict[str, Nas] = {}
        self.prefixes: list[Nas] = []
        self.tls: dict[str, Nas] = {}
        for nas in entries:
            if nas.network.num_addresses == 1:
                self.exact[str(nas.network.network_address)] = nas
            else:
                self.prefixes.append(nas)
            if nas.tls_identity:
                radsec = replace(nas, secret=RADSEC_SECRET)
                self.tls[nas.tls_identity] = radsec
                self.exact[TLS_PREFIX + nas.name] = radsec
        self.prefixes.sort(key=lambda n: n.network.prefixlen, reverse=True)
        self._memo: dict[str, Nas | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def lookup_name(self, name: str) -> Nas | None:
        for nas in self.entries:
            if nas.name == name:
                return nas
        return None

    def lookup_tls(self, identities: Sequence[str]) -> Nas | None:
        """The NAS a verified client certificate names (``stream.identities``), with the
        ``radsec`` secret; None: an unmapped certificate."""
        for identity in identities:
            nas = self.tls.get(identity)
            if nas is not None:
                return nas
        return None

    def lookup(self, host: str) -> Nas | None:
        nas = self.exact.get(host)
        if nas is not None or not self.prefixes:
            return nas
        if host in self._memo:
            return self._memo[host]
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        found = next((n for n in self.prefixes if addr in n.network), None)
        if len(self._memo) > 65536:
            self._memo.clear()
        self._memo[host] = found
        return found


def nas_from_row(row: store.NasRow, sealer: Sealer) -> Nas:
    """Raises SealError if the secret cannot be opened with this key."""
    secret = sealer.open(row.secret_enc, f"nas:{row.name}".encode())
    return Nas(
        row.name,
        ipaddress.ip_network(row.network),
        secret,
        row.vendor,
        row.require_message_authenticator,
        row.coa_port,
        row.tls_identity,
    )


class Tables:
    def __init__(
        self,
        cfg: RadiusConfig,
        stores: Stores,
        sealer: Sealer,
        dictionary: Dictionary,
        metrics: RadiusMetrics,
        ratelog: RateLimitedLog,
    ) -> None:
        self.cfg = cfg
        self.stores = stores
        self.sealer = sealer
        self.dictionary = dictionary
        self.metrics = metrics
        self.ratelog = ratelog
        self.nas = NasTable([])
        self.pools: set[str] = set()
        self.pools6: set[str] = set()  # netd-managed IPv6 pools (issue 21)
        self.engine: EngineConfig | None = None
        self._pending_policy: Policy | None = None
        self._policy_set: PolicySet | None = None
        self._managed_plans: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    # --- policies ---

    def check_policies(self, policies: PolicySet) -> None:
        self._pending_policy = load_policy(policies, self.dictionary, self._managed_plans)

    def apply_policies(self, policies: PolicySet) -> None:
        policy = self._pending_policy or load_policy(policies, self.dictionary, self._managed_plans)
        self._policy_set = policies
        self.engine = self._engine(policy)
        self._pending_policy = None

    def _engine(self, policy: Policy) -> EngineConfig:
        return EngineConfig(
            self.dictionary,
            policy,
            self.sealer.derive(b"eap-state"),
            self.cfg.eap_state_ttl,
            tuple(self.cfg.eap_methods),
        )

    async def reload_managed_plans(self) -> None:
        """Plans created through the API: rebuild the policy when they changed. A set that
        does not load (a plan naming an attribute no longer in the dictionaries) leaves the
        current policy in force."""
        managed = await api_store.list_plans(self.stores.pool)
        if managed == self._managed_plans or self._policy_set is None:
            return
        try:
            policy = load_policy(self._policy_set, self.dictionary, managed)
        except PolicyError as exc:
            self.ratelog.log(
                logging.ERROR, "managed-plans", "API-managed plans not applied", error=str(exc)
            )
            return
        self._managed_plans = managed
        self.engine = self._engine(policy)
        log.info("API-managed plans applied", extra={"fields": {"plans": len(managed)}})

    # --- NAS clients ---

    async def reload_nas(self) -> None:
        rows = await store.list_nas(self.stores.pool)
        entries = []
        for row in rows:
            try:
                entries.append(nas_from_row(row, self.sealer))
            except SealError:
                log.error(
                    "NAS secret cannot be opened with this secrets key; NAS ignored",
                    extra={"fields": {"nas": row.name}},
                )
        self.nas = NasTable(entries)
        self.metrics.nas_clients.set(len(self.nas))
        self.pools = await pools.pool_names(self.stores.pool)
        self.pools6 = await pools6_store.pool_names(self.stores.pool)

    async def _watch(self) -> None:
        """Reload NAS clients, pools and API-managed plans on NOTIFY, and every
        nas_refresh_interval anyway."""

        async def reload() -> None:
            await self.reload_nas()
            await self.reload_managed_plans()

        await reload_on_notify(
            self.stores.pool,
            (store.NAS_CHANNEL, api_store.PLANS_CHANNEL),
            reload,
            self.cfg.nas_refresh_interval,
            self.ratelog,
            "NAS clients not reloaded; keeping the current table",
        )

    # --- lifecycle ---

    async def start(self) -> None:
        """Load the NAS clients, pools and managed plans (``watch`` keeps them current)."""
        await self.reload_nas()
        await self.reload_managed_plans()

    def watch(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
