"""One NETCONF session through ncclient (RFC 6241 over SSH, RFC 6242). Synchronous: the
job engine runs it in its thread pool.

Host keys: the session is opened with no known_hosts (neither ~/.ssh nor ncclient's
``hostkey_b64``, which offers only ``ssh-rsa`` for an RSA key, refused by OpenSSH 8.8+):
paramiko negotiates with its defaults (rsa-sha2-512/256, ecdsa, ed25519) and the key the
device presents is compared, before any password is sent, with the keys pinned for it.

Errors: an ``<rpc-error>`` becomes DeviceError ``rejected`` with the device's report in
``details`` (error-type, error-tag, error-severity, error-app-tag, error-path,
error-message and error-info: bad-element, bad-attribute, bad-namespace, bad-value,
session-id...); ``lock-denied`` and ``in-use`` become ``locked`` (transient).

Quirk seen on yuma123 2.13's netconfd: a ``<validate>`` of the candidate followed by
``<commit>`` answers ``<ok/>`` and leaves running unchanged. So the candidate is not
validated on its own before a commit (the commit validates it, RFC 6241 8.3.4.1), and the
job engine reads running back after every commit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from daemons.devices import hostkeys, xmlconf
from daemons.devices.errors import DeviceError
from daemons.devices.target import Target

T = TypeVar("T")
BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
CAP = "urn:ietf:params:netconf:capability:"
LOCKED_TAGS = ("lock-denied", "in-use")


def error_details(exc: Any) -> dict[str, Any]:
    """An ncclient RPCError as a dict of the device's own fields (every error when many)."""
    from lxml import etree  # noqa: PLC0415

    def one(e: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v
            for k, v in (
                ("error-type", e.type),
                ("error-tag", e.tag),
                ("error-severity", e.severity),
                ("error-app-tag", e.app_tag),
                ("error-path", (e.path or "").strip() or None),
                ("error-message", (e.message or "").strip() or None),
            )
            if v
        }
        if e.info:
            with contextlib.suppress(etree.XMLSyntaxError, ValueError):
                info = etree.fromstring(e.info.encode(), xmlconf.PARSER)
                out["error-info"] = {
                    etree.QName(c).localname: (c.text or "").strip()
                    for c in info
                    if isinstance(c.tag, str)
                }
        return out

    errs = getattr(exc, "errlist", None) or [exc]
    first = one(errs[0])
    if len(errs) > 1:
        first["errors"] = [one(e) for e in errs]
    return first


def summary(details: dict[str, Any]) -> str:
    parts = [details.get("error-tag", "error")]
    if details.get("error-path"):
        parts.append(f"at {details['error-path']}")
    bad = details.get("error-info", {}).get("bad-element")
    if bad:
        parts.append(f"bad-element {bad}")
    if details.get("error-message"):
        parts.append(f"({details['error-message']})")
    return " ".join(parts)


class NetconfSession:
    """One ncclient session, the host key pinned to one of ``keys``."""

    def __init__(self, t: Target, keys: Sequence[str]) -> None:
        from ncclient import manager, transport  # noqa: PLC0415
        from ncclient.transport.errors import (  # noqa: PLC0415
            AuthenticationError,
            SSHError,
            SSHUnknownHostError,
        )

        self.t = t
        handler = manager.make_device_handler(None)
        session = transport.SSHSession(handler)
        fd, config = tempfile.mkstemp(prefix="netd-ssh-")
        with os.fdopen(fd, "w") as f:
            f.write("Host *\n  UserKnownHostsFile /dev/null\n")

        def pinned(_host: str, _fingerprint: str) -> bool:
            server = session._transport.get_remote_server_key()
            return hostkeys.matches(server, keys)

        try:
            session.connect(
                host=t.address,
                port=t.port,
                username=t.username,
                password=t.password,
                hostkey_verify=True,
                unknown_host_cb=pinned,
                ssh_config=config,
                look_for_keys=False,
                allow_agent=False,
                timeout=t.timeout,
            )
            self.m: Any = manager.Manager(session, handler, timeout=t.timeout)
        except AuthenticationError:
            raise DeviceError("auth", f"{t.name}: authentication failed") from None
        except SSHUnknownHostError:
            raise DeviceError("host-key-changed", f"{t.name}: the SSH host key changed") from None
        except (SSHError, OSError, EOFError) as exc:
            raise DeviceError("unreachable", f"{t.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise DeviceError("error", f"{t.name}: {type(exc).__name__}: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(config)
        caps = set(self.m.server_capabilities)
        self.candidate = CAP + "candidate:1.0" in caps
        self.confirmed = any(c.startswith(CAP + "confirmed-commit:") for c in caps)
        self.startup = CAP + "startup:1.0" in caps
        self.writable_running = CAP + "writable-running:1.0" in caps

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.m.close_session()

    def _rpc(self, what: str, call: Callable[[], T]) -> T:
        from ncclient.operations.errors import TimeoutExpiredError  # noqa: PLC0415
        from ncclient.operations.rpc import RPCError  # noqa: PLC0415
        from ncclient.transport.errors import TransportError  # noqa: PLC0415

        try:
            return call()
        except RPCError as exc:
            details = error_details(exc)
            reason = "locked" if details.get("error-tag") in LOCKED_TAGS else "rejected"
            raise DeviceError(
                reason, f"{self.t.name}: {what}: {summary(details)}", details
            ) from None
        except TimeoutExpiredError:
            raise DeviceError("timeout", f"{self.t.name}: {what} timed out") from None
        except TransportError as exc:
            raise DeviceError("unreachable", f"{self.t.name}: {what}: {exc}") from None

    # --- reading ---

    def running(self) -> str:
        got = self._rpc("get-config", lambda: self.m.get_config(source="running"))
        return xmlconf.pretty(got.data_xml)

    def startup_config(self) -> str:
        got = self._rpc("get-config", lambda: self.m.get_config(source="startup"))
        return xmlconf.pretty(got.data_xml)

    # --- changing ---

    @contextlib.contextmanager
    def _locked(self, store: str) -> Any:
        self._rpc(f"lock {store}", lambda: self.m.lock(store))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.m.unlock(store)

    def preview(self, payload: str) -> str:
        """The config running would have after ``payload``, the device left as it was: on
        the candidate (edited, read back, discarded) where the device has one; else our
        own merge of the edit into running (RFC 6241 7.2 operations)."""
        if not self.candidate:
            return xmlconf.pretty(xmlconf.merge_edit(self.running(), payload))
        with self._locked("candidate"):
            try:
                self._rpc("discard-changes", self.m.discard_changes)
                self._rpc(
                    "edit-config", lambda: self.m.edit_config(target="candidate", config=payload)
                )
                got = self._rpc("get-config", lambda: self.m.get_config(source="candidate"))
                return xmlconf.pretty(got.data_xml)
            finally:
                with contextlib.suppress(Exception):
                    self.m.discard_changes()

    def push(self, payload: str, confirm_timeout: int = 0, default_operation: str = "") -> None:
        """Edit and commit: on the candidate (a confirmed commit when the device has it and
        ``confirm_timeout`` is given), else on running with rollback-on-error."""
        extra = {"default_operation": default_operation} if default_operation else {}
        if not self.candidate:
            with self._locked("running"):
                self._rpc(
                    "edit-config",
                    lambda: self.m.edit_config(
                        target="running", config=payload, error_option="rollback-on-error", **extra
                    ),
                )
            return
        with self._locked("candidate"):
            try:
                self._rpc("discard-changes", self.m.discard_changes)
                self._rpc(
                    "edit-config",
                    lambda: self.m.edit_config(target="candidate", config=payload, **extra),
                )
                if confirm_timeout and self.confirmed:
                    self._rpc(
                        "commit",
                        lambda: self.m.commit(confirmed=True, timeout=str(confirm_timeout)),
                    )
                else:
                    self._rpc("commit", self.m.commit)
            except DeviceError:
                with contextlib.suppress(Exception):
                    self.m.discard_changes()
                raise

    def confirm(self) -> None:
        """Confirm a confirmed commit (a plain commit, RFC 6241 8.4)."""
        if self.candidate and self.confirmed:
            self._rpc("commit", self.m.commit)

    def save(self) -> bool:
        """Running copied to startup where the device has :startup; whether it was."""
        if not self.startup:
            return False
        self._rpc(
            "copy-config running to startup",
            lambda: self.m.copy_config(source="running", target="startup"),
        )
        return True
