"""Talking to one device: SSH CLI through netmiko, NETCONF through ncclient. Synchronous
(both libraries are): the job engine runs these in a thread pool, never on the event loop.

Host keys are pinned: a device's accepted key is stored with it, the first contact learns
it (trust on first use, with an event), and a different key is refused with reason
``host-key-changed`` until the operator accepts the key the device now offers. The key is
read with paramiko before logging in, so a changed key is told apart from a timeout (netmiko
reports both as NetmikoTimeoutException).

Every failure is a ``DeviceError`` with a ``reason``: unreachable, auth, host-key-changed,
timeout, rejected (the device refused a command or an edit), error.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paramiko

ERROR_PATTERN = r"% ?(Invalid input|Incomplete command|Ambiguous command|Unknown command)"


class DeviceError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    port: int
    platform: str  # netmiko device_type, or "netconf"
    username: str
    password: str
    secret: str = ""  # enable secret
    host_key: str | None = None  # "ssh-ed25519 AAAA..." accepted for it
    timeout: float = 30.0


def offered_host_key(address: str, port: int, timeout: float) -> str:
    """The host key the device offers now, "type base64"."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise DeviceError("unreachable", f"{address}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DeviceError("unreachable", f"{address}:{port}: no SSH: {exc}") from None
    finally:
        transport.close()


def check_host_key(t: Target) -> str:
    """The key offered now; DeviceError host-key-changed if it is not the accepted one."""
    offered = offered_host_key(t.address, t.port, min(t.timeout, 15.0))
    if t.host_key and offered.split()[:2] != t.host_key.split()[:2]:
        raise DeviceError(
            "host-key-changed",
            f"{t.name}: the SSH host key changed (now {offered.split()[0]}); refused until "
            "an operator accepts it",
        )
    return offered


class CliSession:
    """One netmiko session with the host key pinned to ``key``."""

    def __init__(self, t: Target, key: str) -> None:
        from netmiko import ConnectHandler  # noqa: PLC0415 (slow import, the job path only)
        from netmiko.exceptions import (  # noqa: PLC0415
            NetmikoAuthenticationException,
            NetmikoTimeoutException,
        )

        self.t = t
        host = t.address if t.port == 22 else f"[{t.address}]:{t.port}"
        fd, self.known_hosts = tempfile.mkstemp(prefix="netd-kh-")
        with os.fdopen(fd, "w") as f:
            f.write(f"{host} {key}\n")
        try:
            self.conn: Any = ConnectHandler(
                device_type=t.platform,
                host=t.address,
                port=t.port,
                username=t.username,
                password=t.password,
                secret=t.secret,
                ssh_strict=True,
                system_host_keys=False,
                alt_host_keys=True,
                alt_key_file=self.known_hosts,
                use_keys=False,
                allow_agent=False,
                conn_timeout=min(t.timeout, 15.0),
                auth_timeout=min(t.timeout, 15.0),
                banner_timeout=min(t.timeout, 15.0),
                read_timeout_override=t.timeout,
            )
            if t.secret:
                self.conn.enable()
        except NetmikoAuthenticationException:
            self._cleanup()
            raise DeviceError("auth", f"{t.name}: authentication failed") from None
        except NetmikoTimeoutException as exc:
            self._cleanup()
            raise DeviceError("unreachable", f"{t.name}: {str(exc).splitlines()[0]}") from None
        except Exception:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.known_hosts)

    def close(self) -> None:
        try:
            self.conn.disconnect()
        finally:
            self._cleanup()

    def running(self) -> str:
        return str(self.conn.send_command("show running-config", read_timeout=self.t.timeout))

    def push(self, commands: Sequence[str]) -> str:
        """Send configuration commands; DeviceError rejected at the first refused one (the
        ones after it are not sent)."""
        from netmiko.exceptions import ConfigInvalidException  # noqa: PLC0415

        try:
            return str(
                self.conn.send_config_set(
                    list(commands), error_pattern=ERROR_PATTERN, read_timeout=self.t.timeout
                )
            )
        except ConfigInvalidException as exc:
            with contextlib.suppress(Exception):  # best effort: the session closes next
                self.conn.exit_config_mode()
            raise DeviceError("rejected", f"{self.t.name}: {str(exc).strip()[-300:]}") from None

    def save(self) -> None:
        self.conn.save_config()


CANDIDATE = "urn:ietf:params:netconf:capability:candidate:1.0"
VALIDATE = "urn:ietf:params:netconf:capability:validate:"
CONFIRMED = "urn:ietf:params:netconf:capability:confirmed-commit:"


def pretty_xml(data: str | bytes) -> str:
    """A config as stable, diffable text: parsed without entities or network, indented."""
    from lxml import etree  # noqa: PLC0415

    parser = etree.XMLParser(
        remove_blank_text=True, resolve_entities=False, no_network=True, huge_tree=False
    )
    root = etree.fromstring(data.encode() if isinstance(data, str) else data, parser)
    return str(etree.tostring(root, pretty_print=True, encoding="unicode"))


class NetconfSession:
    """One ncclient session, the host key pinned to ``key``."""

    def __init__(self, t: Target, key: str) -> None:
        from ncclient import manager  # noqa: PLC0415
        from ncclient.transport.errors import (  # noqa: PLC0415
            AuthenticationError,
            SSHError,
            SSHUnknownHostError,
        )

        self.t = t
        try:
            self.m: Any = manager.connect(
                host=t.address,
                port=t.port,
                username=t.username,
                password=t.password,
                hostkey_verify=True,
                hostkey_b64=key.split()[1],
                look_for_keys=False,
                allow_agent=False,
                timeout=t.timeout,
            )
        except AuthenticationError:
            raise DeviceError("auth", f"{t.name}: authentication failed") from None
        except SSHUnknownHostError:
            raise DeviceError("host-key-changed", f"{t.name}: the SSH host key changed") from None
        except (SSHError, OSError) as exc:
            raise DeviceError("unreachable", f"{t.name}: {exc}") from None
        caps = set(self.m.server_capabilities)
        self.candidate = CANDIDATE in caps
        self.validate = any(c.startswith(VALIDATE) for c in caps)
        self.confirmed = any(c.startswith(CONFIRMED) for c in caps)

    def close(self) -> None:
        import contextlib  # noqa: PLC0415

        with contextlib.suppress(Exception):
            self.m.close_session()

    def _rpc(self, what: str, call: Any) -> Any:
        from ncclient.operations.errors import TimeoutExpiredError  # noqa: PLC0415
        from ncclient.operations.rpc import RPCError  # noqa: PLC0415

        try:
            return call()
        except RPCError as exc:
            raise DeviceError("rejected", f"{self.t.name}: {what}: {exc.message or exc}") from None
        except TimeoutExpiredError:
            raise DeviceError("timeout", f"{self.t.name}: {what} timed out") from None

    def running(self) -> str:
        got = self._rpc("get-config", lambda: self.m.get_config(source="running"))
        return pretty_xml(got.data_xml)

    def _edit_candidate(self, payload: str) -> None:
        self._rpc("discard-changes", self.m.discard_changes)
        self._rpc("edit-config", lambda: self.m.edit_config(target="candidate", config=payload))
        if self.validate:
            self._rpc("validate", lambda: self.m.validate(source="candidate"))

    def preview(self, payload: str) -> str:
        """The config running would have after ``payload``, the device left as it was
        (the edit goes to the candidate, is read back and discarded)."""
        if not self.candidate:
            raise DeviceError("error", f"{self.t.name}: no candidate datastore to preview on")
        with self.m.locked("candidate"):
            try:
                self._edit_candidate(payload)
                got = self._rpc("get-config", lambda: self.m.get_config(source="candidate"))
                return pretty_xml(got.data_xml)
            finally:
                self._rpc("discard-changes", self.m.discard_changes)

    def push(self, payload: str, confirm_timeout: int = 0) -> None:
        """Edit, validate and commit: on the candidate (a confirmed commit when the device
        has it and ``confirm_timeout`` is given), or on running with rollback-on-error."""
        if not self.candidate:
            self._rpc(
                "edit-config",
                lambda: self.m.edit_config(
                    target="running", config=payload, error_option="rollback-on-error"
                ),
            )
            return
        with self.m.locked("candidate"):
            try:
                self._edit_candidate(payload)
                if confirm_timeout and self.confirmed:
                    self._rpc(
                        "commit",
                        lambda: self.m.commit(confirmed=True, timeout=str(confirm_timeout)),
                    )
                else:
                    self._rpc("commit", self.m.commit)
            except DeviceError:
                import contextlib  # noqa: PLC0415

                with contextlib.suppress(Exception):
                    self.m.discard_changes()
                raise

    def confirm(self) -> None:
        """Confirm a confirmed commit (a plain commit, RFC 6241 8.4)."""
        if self.candidate and self.confirmed:
            self._rpc("commit", self.m.commit)

    def replace(self, config: str) -> None:
        """Put a whole config back (a backup): replace, validate, commit."""
        from lxml import etree  # noqa: PLC0415

        root = etree.fromstring(config.encode())
        root.tag = "{urn:ietf:params:xml:ns:netconf:base:1.0}config"
        payload = etree.tostring(root, encoding="unicode")
        if not self.candidate:
            self._rpc(
                "edit-config",
                lambda: self.m.edit_config(
                    target="running", config=payload, default_operation="replace"
                ),
            )
            return
        with self.m.locked("candidate"):
            self._rpc("discard-changes", self.m.discard_changes)
            self._rpc(
                "edit-config",
                lambda: self.m.edit_config(
                    target="candidate", config=payload, default_operation="replace"
                ),
            )
            if self.validate:
                self._rpc("validate", lambda: self.m.validate(source="candidate"))
            self._rpc("commit", self.m.commit)
