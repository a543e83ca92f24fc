"""The API's operations on the local stores, for the ``netd`` admin commands.

A command builds the same request model the HTTP API takes (so the field rules of
``daemons.core.validate`` apply) and calls the same function of ``daemons/api/ops.py`` (so
the rules that need the stores apply too), on a :class:`LocalState` instead of the API
daemon's state. What the API answers with an error status, the command prints as one line
with an exit status (:func:`problem`).
"""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError

from daemons.api.errors import ApiError
from daemons.core import validate
from daemons.core.config import Config
from daemons.core.lifecycle import make_sealer
from daemons.core.output import fail
from daemons.core.policies import PolicySet, load_policies
from daemons.core.secrets import Sealer
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import Policy, load_policy
from daemons.store import api as api_store
from daemons.store.cache import Cache


@dataclass
class LocalState:
    """What ``ops`` needs, for one command: the stores it opened; the sealer, dictionary
    and policies made when first asked for (a command that needs none reads none)."""

    config: Config
    pool: asyncpg.Pool
    redis: Cache | None = None
    _sealer: Sealer | None = field(default=None, repr=False)
    _dictionary: Dictionary | None = field(default=None, repr=False)
    _policies: PolicySet | None = field(default=None, repr=False)
    connreq_refused: Callable[[str], None] | None = None  # a command has no metrics

    @property
    def sealer(self) -> Sealer:
        """The secrets key's sealer (made, and the key read, on first use only: a
        command that handles no secret never touches the key). Raises ValueError."""
        if self._sealer is None:
            self._sealer = make_sealer(self.config)
        return self._sealer

    @property
    def cache(self) -> Cache:
        if self.redis is None:  # a command that opened no Redis asked for it: our bug
            raise RuntimeError("this command did not open Redis")
        return self.redis

    @property
    def dictionary(self) -> Dictionary:
        if self._dictionary is None:
            self._dictionary = Dictionary(self.config.radius.dictionaries)
        return self._dictionary

    @property
    def policies(self) -> PolicySet:
        if self._policies is None:
            self._policies = load_policies(self.config.policies.root, 1)
        return self._policies

    async def policy(self) -> Policy:
        """The RADIUS policy as the radius daemons see it: files plus API-managed plans."""
        return load_policy(self.policies, self.dictionary, await api_store.list_plans(self.pool))


__all__ = ["LocalState", "actor", "audit", "fail", "problem", "read_secret"]


def actor() -> str:
    """Who runs this command, as audit rows and job records name them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no passwd entry (a container's arbitrary uid)
        return "cli:unknown"


def problem(exc: BaseException) -> tuple[str, int] | None:
    """One line and an exit status for what the API would answer with an error: 2 for
    input it refuses (422, 400), 1 for what is missing or in the way (404, 409, ...).
    None for anything else."""
    if isinstance(exc, ValidationError):
        return "; ".join(_field_error(e) for e in exc.errors()), 2
    if isinstance(exc, ApiError):
        return exc.message, 2 if exc.status in (400, 413, 422) else 1
    if isinstance(exc, validate.Invalid):
        return str(exc), 2
    return None


def _field_error(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", "invalid"))
    if err.get("type") == "invalid":  # one of ours: it names the field already
        return message
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {message}" if where else message


def read_secret(from_stdin: bool, path: Path | None, what: str) -> str | None:
    """A secret from the first line of stdin or of a file (never from the command line,
    where ``ps`` shows it); None when neither is asked for. Raises Invalid when empty."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
    elif path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise validate.Invalid(f"cannot read the {what} from {path}: {exc}") from None
        line = text.splitlines()[0] if text else ""
    else:
        return None
    if not line:
        raise validate.Invalid(f"the {what} is empty")
    return line


async def audit(st: LocalState, action: str, target: str, status: int, **details: object) -> None:
    """The audit row of a command that changed something (or tried to), as the API writes
    one for each mutating call: the same action names (nas.create, sessions.clear), the
    actor ``cli:<user>``, the HTTP status the API would have answered."""
    from daemons.api.middleware import audit_result  # noqa: PLC0415 - starlette, on demand

    await api_store.append_audit(
        st.pool,
        actor=actor(),
        role="",
        method="CLI",
        path="netd " + action.replace(".", " "),
        action=action,
        target=target[:256],
        status=status,
        result=audit_result(status),
        request_id=secrets.token_hex(8),
        details=details,
    )
