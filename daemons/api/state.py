"""What the API's handlers share: the stores and the RADIUS dictionary and policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from daemons.acs.files import FileStore
from daemons.api.auth import Authenticator, Principal, require
from daemons.core.config import Config
from daemons.core.health import Health
from daemons.core.policies import PolicySet
from daemons.core.secrets import Sealer
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import Policy, load_policy
from daemons.store import api as api_store
from daemons.store.cache import Cache


@dataclass
class ApiState:
    config: Config
    pool: asyncpg.Pool
    cache: Cache
    sealer: Sealer
    health: Health
    dictionary: Dictionary
    policies: PolicySet
    auth: Authenticator
    extra: dict[str, object] = field(default_factory=dict)
    files: FileStore | None = None
    # counts a connection request refused by its target's check (acs.tasks.poke_device)
    connreq_refused: Callable[[str], None] | None = None

    async def policy(self) -> Policy:
        """The RADIUS policy as the radius daemons see it: files plus API-managed plans."""
        return load_policy(self.policies, self.dictionary, await api_store.list_plans(self.pool))


async def _state(request: Request) -> ApiState:  # async: no worker thread per request
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def audit(request: Request, target: str = "", **details: object) -> None:
    """Name what a mutating call acted on, and add non-secret details to its audit row."""
    if target:
        request.state.audit_target = target
    if details:
        request.state.audit_details = details
