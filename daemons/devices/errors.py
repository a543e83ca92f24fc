"""How a device exchange fails: one ``DeviceError`` with a reason, a message and the
device's own error report where it gave one.

Reasons: unreachable, auth, host-key-changed, timeout, rejected (the device refused a
command or an edit), locked (a configuration lock or mode held by another session: the one
transient failure, retried with backoff until ``devices.lock_wait``), unsupported (the
platform cannot do it), drift (a rollback refused: the device changed the same parts since
the job), verify (the device reads back other than it said), error (anything else: a
library's exception, named).
"""

from __future__ import annotations

from typing import Any

TRANSIENT = frozenset({"locked"})


class DeviceError(Exception):
    def __init__(self, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.details: dict[str, Any] = details or {}

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT


def from_exception(name: str, exc: BaseException) -> DeviceError:
    """Any exception out of a device library as a DeviceError (reason error, the
    exception's type and first line named), so that no attempt ends without a reason."""
    if isinstance(exc, DeviceError):
        return exc
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return DeviceError("error", f"{name}: {type(exc).__name__}" + (f": {text}" if text else ""))
