"""The `poller` daemon's service shell.

So far it loads and checks the polling profiles of policies/snmp (reloaded on SIGHUP) and
runs the shared lifecycle: heartbeats, health, drain on SIGTERM. Polling comes next.
"""

from __future__ import annotations

from typing import ClassVar

from daemons.core.lifecycle import Context, Daemon
from daemons.core.policies import PolicySet
from daemons.poller.profiles import Profile, load_profiles


class PollerService(Daemon):
    name: ClassVar[str] = "poller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.profiles: dict[str, Profile] = {}
        self._pending: dict[str, Profile] | None = None

    def check_policies(self, policies: PolicySet) -> None:
        """A broken policies/snmp file stops a start, and keeps the old set on SIGHUP."""
        self._pending = load_profiles(policies)

    def apply_policies(self, policies: PolicySet) -> None:
        self.profiles = self._pending if self._pending is not None else load_profiles(policies)
        self._pending = None
