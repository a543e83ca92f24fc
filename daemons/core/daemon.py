"""The :class:`Daemon` base every daemon subclasses, and the :class:`Context` it is given.

A daemon overrides the hooks it needs (start, drain, close, policies, TLS reload, counters,
endpoints); the context carries what the process opened for it: config, stores, metrics
registry, health, policies, and the sealer for secrets at rest (:func:`make_sealer`). The
runner that drives these hooks is :mod:`daemons.core.lifecycle`, which re-exports them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import asyncpg
from prometheus_client import CollectorRegistry

from daemons.core.config import Config
from daemons.core.health import Health
from daemons.core.policies import PolicySet
from daemons.core.secrets import Sealer, load_or_create_key
from daemons.core.stores import Stores
from daemons.store.cache import Cache


@dataclass
class Context:
    """What a daemon gets from the process: config, stores, metrics, policies."""

    config: Config
    config_path: Path | None
    stores: Stores
    registry: CollectorRegistry
    health: Health
    policies: PolicySet
    instance: str
    started_at: float = field(default_factory=time.time)
    _sealer: Sealer | None = field(default=None, init=False, repr=False)

    @property
    def sealer(self) -> Sealer:
        """Seals secrets at rest. Raises ValueError for a malformed key."""
        if self._sealer is None:
            self._sealer = make_sealer(self.config, create=True)
        return self._sealer

    @property
    def pool(self) -> asyncpg.Pool:
        return self.stores.pool

    @property
    def cache(self) -> Cache:
        return self.stores.redis


class Daemon:
    """Base of every daemon. Subclasses override the hooks they need.

    ``start`` begins serving; ``drain`` stops accepting and waits for in-flight work (the
    runner bounds it by the deadline); ``close`` releases what ``start`` took.
    """

    name: ClassVar[str] = "daemon"
    heartbeat: ClassVar[bool] = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def check_policies(self, policies: PolicySet) -> None:
        """Raise PolicyError if ``policies`` cannot be applied; change nothing."""

    def apply_policies(self, policies: PolicySet) -> None:
        """Switch to ``policies`` (already checked)."""

    def reload_tls(self) -> dict[str, bool]:
        """Read TLS certificates again (SIGHUP): listener name → whether the new pair is
        in force (False: a bad pair, the old one kept and the reason logged)."""
        return {}

    def counters(self) -> dict[str, float]:
        """Key counters for the heartbeat and the status API."""
        return {}

    def endpoints(self) -> dict[str, str]:
        """What this daemon listens on, for the startup log line (name -> address)."""
        return {}


def make_sealer(config: Config, create: bool = False) -> Sealer:
    """The sealer for ``secrets.key``, or the key kept under state_dir, generated there
    first if ``create`` (daemons and ``netd migrate``; an admin command never makes a key
    that would seal secrets no daemon can open). Raises ValueError naming the problem."""
    key = config.secrets.key.get_secret_value() if config.secrets.key else None
    if not key and not create and not (config.state_dir / "secrets.key").exists():
        raise ValueError(
            f"no secrets key in state directory {config.state_dir} (secrets.key): "
            "`netd migrate` or a daemon's first start creates it; or give secrets.key"
        )
    if key:
        return Sealer(load_or_create_key(key, config.state_dir))
    return Sealer(load_or_create_key(None, config.state_dir), config.state_dir)
