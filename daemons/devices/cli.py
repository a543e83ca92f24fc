"""One SSH CLI session through netmiko, driven by the platform table (platforms.py):
backup, configuration mode, push, commit (confirmed), compare, discard, save. Synchronous:
the job engine runs it in its thread pool.

Every failure is a DeviceError: a refused command ``rejected`` (the platform's error
pattern), a configuration mode or database held by another session ``locked`` (transient),
a platform without the step ``unsupported``; netmiko's own exceptions (ValueError when the
device will not enter configuration mode, NotImplementedError, ReadTimeout...) are mapped,
never let through.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import tempfile
from collections.abc import Sequence
from typing import Any

from daemons.devices import hostkeys
from daemons.devices.errors import DeviceError
from daemons.devices.platforms import Platform
from daemons.devices.target import Target

_PROMPT = r"[>#$%\]]\s*$"


class CliSession:
    """One netmiko session with the host keys pinned to ``keys``."""

    def __init__(self, t: Target, keys: Sequence[str], platform: Platform) -> None:
        from netmiko import ConnectHandler  # noqa: PLC0415 (slow import, the job path only)
        from netmiko.exceptions import (  # noqa: PLC0415
            NetmikoAuthenticationException,
            NetmikoTimeoutException,
        )

        self.t = t
        self.p = platform
        self.error = re.compile(platform.error, re.M)
        fd, self.known_hosts = tempfile.mkstemp(prefix="netd-kh-")
        with os.fdopen(fd, "w") as f:
            f.write(hostkeys.known_hosts_line(t.address, t.port, keys))
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
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            self._cleanup()
            raise self._mapped("login", exc) from None

    def _mapped(self, what: str, exc: BaseException) -> DeviceError:
        from netmiko.exceptions import ReadTimeout  # noqa: PLC0415

        if isinstance(exc, DeviceError):
            return exc
        if isinstance(exc, ReadTimeout):
            return DeviceError("timeout", f"{self.t.name}: {what}: no prompt in time")
        if isinstance(exc, NotImplementedError):
            return DeviceError("unsupported", f"{self.t.name}: {what}: not supported by netmiko")
        line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return DeviceError("error", f"{self.t.name}: {what}: {type(exc).__name__}: {line}")

    def _cleanup(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.known_hosts)

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self.conn.disconnect()
        finally:
            self._cleanup()

    def _refused(self, what: str, output: str) -> None:
        m = self.error.search(output)
        if m:
            line = output[m.start() :].splitlines()[0].strip()
            raise DeviceError("rejected", f"{self.t.name}: {what}: {line}", {"output": line})

    # --- reading ---

    def running(self) -> str:
        """The configuration as the platform's backup command prints it; DeviceError
        rejected when the device answers with an error instead (never stored as a backup)."""
        command = self.p.backup
        expect: str | None = None
        if "{file}" in command:
            path = str(self.t.vars.get("backup_file") or "")
            if not path:
                raise DeviceError("unsupported", f"{self.t.name}: no device var backup_file")
            # The end marker is printed, never echoed as typed (quotes), and the command has
            # no "$" (netmiko's linux prompt pattern would match it in the echo).
            command = f'cat -- {shlex.quote(path)} && echo netd-end-"0" || echo netd-end-"1"'
            expect = r"netd-end-[01]"
        try:
            out = str(
                self.conn.send_command(command, read_timeout=self.t.timeout, expect_string=expect)
            )
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise self._mapped("backup", exc) from None
        if expect is not None:
            body, _, rc = out.rpartition("netd-end-")
            if rc.strip()[:1] != "0":
                self._refused("backup", body)
                raise DeviceError("rejected", f"{self.t.name}: backup: cat failed")
            return body.rstrip("\n") + "\n"
        self._refused("backup", out)
        if not out.strip():
            raise DeviceError("rejected", f"{self.t.name}: backup: the device printed nothing")
        return out

    # --- configuration mode ---

    def enter(self) -> None:
        """Into configuration mode: ``locked`` when another session holds it (retried),
        ``rejected`` when the device refuses it."""
        if not self.p.config_enter:
            raise DeviceError("unsupported", f"{self.t.name}: {self.p.refusal('apply')}")
        try:
            if self.conn.check_config_mode():
                return
            self.conn.write_channel(self.conn.normalize_cmd(self.p.config_enter))
            out = str(self.conn.read_until_pattern(pattern=_PROMPT, read_timeout=self.t.timeout))
            inside = self.conn.check_config_mode()
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise self._mapped("configuration mode", exc) from None
        if inside:
            return
        text = " ".join(x.strip() for x in out.splitlines()[1:-1] if x.strip())[:200]
        if re.search(self.p.busy, out):
            raise DeviceError("locked", f"{self.t.name}: configuration mode is held: {text}")
        raise DeviceError(
            "rejected",
            f"{self.t.name}: the device did not enter configuration mode "
            f"({self.p.config_enter!r}){': ' + text if text else ''}",
        )

    def leave(self) -> None:
        with contextlib.suppress(Exception):
            if self.conn.check_config_mode():
                self.conn.send_command_timing(self.p.config_exit or "end", last_read=0.3)

    def push(self, commands: Sequence[str]) -> str:
        """Send configuration commands (in configuration mode); DeviceError rejected at the
        first refused one (the ones after it are not sent)."""
        from netmiko.exceptions import ConfigInvalidException  # noqa: PLC0415

        self.enter()
        try:
            return str(
                self.conn.send_config_set(
                    list(commands),
                    enter_config_mode=False,
                    exit_config_mode=False,
                    error_pattern=self.p.error,
                    read_timeout=self.t.timeout,
                )
            )
        except ConfigInvalidException as exc:
            line = str(exc).strip().splitlines()[-1][-300:] if str(exc).strip() else ""
            raise DeviceError("rejected", f"{self.t.name}: {line}", {"output": line}) from None
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise self._mapped("push", exc) from None

    def _send(self, what: str, command: str) -> str:
        try:
            out = str(
                self.conn.send_command(
                    command,
                    expect_string=r"[>#$%\]]\s*$",
                    read_timeout=self.t.timeout,
                    cmd_verify=False,
                )
            )
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise self._mapped(what, exc) from None
        self._refused(what, out)
        return out

    def compare(self) -> str:
        """The device's own diff of the changes pushed and not committed."""
        return self._send("compare", self.p.compare)

    def discard(self) -> None:
        if self.p.discard:
            with contextlib.suppress(DeviceError):
                self._send("discard", self.p.discard)

    def commit(self, confirm_seconds: int = 0) -> None:
        """Commit (on commit platforms); confirmed when asked and the platform has it."""
        if not self.p.commit:
            return
        command = self.p.commit
        if confirm_seconds and self.p.commit_confirmed:
            command = self.p.commit_confirmed.format(
                seconds=confirm_seconds, minutes=max(1, (confirm_seconds + 59) // 60)
            )
        out = self._send("commit", command)
        if re.search(self.p.busy, out):
            raise DeviceError("locked", f"{self.t.name}: commit: configuration is held")

    def confirm(self) -> None:
        """Confirm a confirmed commit (in configuration mode, left after)."""
        if self.p.commit and self.p.confirm and self.p.commit_confirmed:
            self.enter()
            self._send("confirm", self.p.confirm)
            self.leave()

    def save(self) -> None:
        """Running to startup with the platform's command; nothing where a commit persists
        the change. Never netmiko's save_config (NotImplementedError for 88 device types)."""
        if not self.p.save:
            return
        self.leave()
        try:
            out = str(
                self.conn.send_command_timing(
                    self.p.save, last_read=0.5, read_timeout=self.t.timeout
                )
            )
            if re.search(r"(?i)(\[confirm\]|destination filename|\[y/n\]|continue\?)", out):
                out += str(
                    self.conn.send_command_timing(
                        self.p.save_confirm, last_read=0.5, read_timeout=self.t.timeout
                    )
                )
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise self._mapped("save", exc) from None
        self._refused("save", out)
