"""Backups and change jobs over a set of devices, run from asyncio: every device exchange
goes to a thread pool (netmiko and ncclient are synchronous), so the event loop never
blocks. At most ``concurrency`` devices at once, one job step at a time per device (a lock
per device), each exchange bounded by the device timeout.

A change job renders ``policies/config/<template>.cli.j2`` (CLI platforms) or
``<template>.netconf.j2`` (NETCONF) per device in a sandboxed Jinja2 environment, with the
device (``device.name``, ``.address``, ``.platform``, ``.tags``, ``.vars``), its vars and
the job's variables; an undefined variable fails that device. What a device's platform
cannot do (platforms.py) is refused when the job is created.
- dry-run: the diff the device would get; nothing changes. CLI: our IOS model applied to the
  config read from the device, or the device's own compare (Junos, XR: loaded, compared,
  discarded). NETCONF: the edit made on the candidate, read back and discarded; without a
  candidate, the edit merged into running by us (xmlconf).
- apply: the device read first (a change already there, e.g. a job resumed after a crash,
  is not pushed again); a backup, noted at once as the job's rollback point; the push
  (CLI: configuration mode, the commands stopping at the first refused one, commit and
  confirm where the platform has them, save; NETCONF: edit-config on the candidate and a
  (confirmed) commit, or on running, then running copied to startup where the device has
  :startup); running read back (the diff kept is the device's own); a refused command or
  edit puts the device back.
- rollback (rollback.py): only what the job changed, undone.
A held lock or configuration mode is retried with backoff until ``devices.lock_wait``, then
``failed: locked``; every other failure ends the device's attempt at once with a state and
a reason. Every job and each device's result and (redacted) diff go into the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from daemons.core.secrets import Sealer
from daemons.devices import cliconf, hostkeys, platforms, xmlconf
from daemons.devices.cli import CliSession
from daemons.devices.errors import DeviceError, from_exception
from daemons.devices.netconf import NetconfSession
from daemons.devices.redact import redact
from daemons.devices.target import Target
from daemons.store import devices as store

log = logging.getLogger("netd.devices")
T = TypeVar("T")
EventSink = Callable[[str, str, dict[str, Any], str], Awaitable[None]]
Session = CliSession | NetconfSession
text_diff = xmlconf.text_diff


@dataclass
class Outcome:
    state: str  # ok, unchanged, failed, rolled-back, skipped, cancelled
    diff: str = ""
    error: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    backup_before: int | None = None
    backup_after: int | None = None
    attempts: int = 1


def failed(exc: DeviceError, **kw: Any) -> Outcome:
    return Outcome("failed", error=str(exc), reason=exc.reason, details=exc.details, **kw)


class Runner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sealer: Sealer,
        templates: Path,
        threads: int,
        device_timeout: float,
        confirm_timeout: int,
        event: EventSink,
        lock_wait: float = 120.0,
    ) -> None:
        self.pool = pool
        self.sealer = sealer
        self.templates = templates
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="device")
        self.device_timeout = device_timeout
        self.confirm_timeout = confirm_timeout
        self.lock_wait = lock_wait
        self.event = event
        self.locks: dict[str, asyncio.Lock] = {}
        self.env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
        )
        self.xml_env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """A device exchange in the pool, bounded by the device timeout; any exception out
        of it is a DeviceError."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.executor, partial(fn, *args)), self.device_timeout
            )
        except TimeoutError:
            raise DeviceError("timeout", f"no answer in {self.device_timeout:.0f} s") from None
        except DeviceError:
            raise
        except Exception as exc:  # noqa: BLE001 (every library exception mapped)
            raise from_exception(getattr(fn, "__qualname__", "device"), exc) from None

    def _target(self, d: store.Device) -> Target:
        return Target(
            d.name,
            d.address,
            d.port,
            d.platform,
            d.username,
            d.password,
            d.secret,
            self.device_timeout,
            d.vars,
        )

    async def _keys(self, d: store.Device) -> list[str]:
        """The host keys a session may accept: the pinned ones, checked against what the
        device offers now (a new key learnt: first contact, or a new type beside a pinned
        one that did not change)."""
        try:
            got = await self._io(
                hostkeys.check,
                d.name,
                d.address,
                d.port,
                min(self.device_timeout, 15.0),
                list(d.host_keys),
            )
        except DeviceError as exc:
            if exc.reason == "host-key-changed":
                offered = str(exc.details.pop("offered", ""))
                if offered:
                    await store.offer_host_key(self.pool, d.name, offered)
                await self.event(
                    "device.host_key_changed",
                    d.name,
                    {"offered": hostkeys.key_type(offered) if offered else ""},
                    "warning",
                )
            raise
        keys = list(d.host_keys)
        if got.learnt:
            keys.append(got.key)
            if await store.pin_host_key(self.pool, d.name, got.key):
                await self.event(
                    "device.host_key_learnt",
                    d.name,
                    {"key": hostkeys.key_type(got.key), "first": got.first},
                    "info",
                )
        return keys

    async def _open(self, d: store.Device) -> Session:
        keys = await self._keys(d)
        p = platforms.get(d.platform)
        if p is None:
            raise DeviceError("unsupported", f"{d.name}: unknown platform {d.platform}")
        if p.netconf:
            return await self._io(NetconfSession, self._target(d), keys)
        return await self._io(CliSession, self._target(d), keys, p)

    async def _close(self, s: Session) -> None:
        with contextlib.suppress(Exception):
            await self._io(s.close)

    def _lock(self, name: str) -> asyncio.Lock:
        return self.locks.setdefault(name, asyncio.Lock())

    # --- backups ---

    async def backup(self, d: store.Device, reason: str = "on-demand") -> tuple[int, bool]:
        """Read and store the running config: (backup id, whether it changed)."""
        async with self._lock(d.name):
            session = await self._open(d)
            try:
                config = await self._io(session.running)
            finally:
                await self._close(session)
        backup_id, changed = await store.save_backup(self.pool, self.sealer, d.name, config, reason)
        if changed:
            await self.event("device.config_changed", d.name, {"backup": backup_id}, "info")
        return backup_id, changed

    async def _save(self, d: store.Device, config: str, reason: str) -> int:
        backup_id, _ = await store.save_backup(self.pool, self.sealer, d.name, config, reason)
        return backup_id

    # --- rendering ---

    def render(self, template: str, d: store.Device, variables: dict[str, Any]) -> str:
        kind = "netconf" if d.platform == "netconf" else "cli"
        path = self.templates / f"{template}.{kind}.j2"
        if not path.is_file():
            raise DeviceError("unsupported", f"no template {path.name} in policies/config")
        env = self.xml_env if kind == "netconf" else self.env
        try:
            return env.from_string(path.read_text()).render(
                device={
                    "name": d.name,
                    "address": d.address,
                    "platform": d.platform,
                    "tags": list(d.tags),
                    "vars": d.vars,
                },
                **{**d.vars, **variables},
            )
        except TemplateError as exc:
            raise DeviceError("error", f"template {path.name}: {exc}") from None

    # --- one device's part in a job ---

    async def change(
        self,
        job: store.Job,
        d: store.Device,
        stop: Callable[[], Awaitable[str | None]] | None = None,
    ) -> Outcome:
        """The device's part in ``job``, retried while the failure is transient (a held
        lock) until ``lock_wait`` or the job's deadline, whichever is first."""
        from daemons.devices import rollback  # noqa: PLC0415 (it imports this module)

        p = platforms.get(d.platform)
        refusal = f"unknown platform {d.platform}" if p is None else p.refusal(job.mode)
        if refusal:
            return Outcome("failed", error=refusal, reason="unsupported")
        t0 = time.monotonic()
        wait_until = t0 + self.lock_wait
        if job.deadline is not None:
            left = (job.deadline - datetime.now(UTC)).total_seconds()
            wait_until = min(wait_until, t0 + max(left, 0.0))
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._lock(d.name):
                    if job.mode == "rollback":
                        out = await rollback.run(self, job, d)
                    else:
                        out = await self._change(job, d)
                out.attempts = attempt
                return out
            except DeviceError as exc:
                err = exc
            except Exception as exc:  # a bug of ours, or a library's surprise: named, ended
                log.exception("device step failed", extra={"fields": {"device": d.name}})
                return failed(from_exception(d.name, exc), attempts=attempt)
            delay = min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())  # noqa: S311 (jitter)
            if not err.transient or time.monotonic() + delay > wait_until:
                if err.transient:
                    waited = time.monotonic() - t0
                    err = DeviceError(
                        err.reason,
                        f"{err} (still held after {attempt} attempts over {waited:.0f} s)",
                        err.details,
                    )
                return failed(err, attempts=attempt)
            why = await stop() if stop is not None else None
            if why:
                return Outcome(
                    "cancelled",
                    error=f"{why} while waiting: {err}",
                    reason="deadline" if why == "deadline" else "cancelled",
                    attempts=attempt,
                )
            await asyncio.sleep(delay)

    async def _change(self, job: store.Job, d: store.Device) -> Outcome:
        """One attempt. The device is always read first (a change already there, from an
        attempt before a crash or another job, is not pushed again)."""
        rendered = self.render(job.template, d, job.variables)
        session = await self._open(d)
        try:
            if isinstance(session, NetconfSession):
                return await self._netconf(job, d, session, rendered)
            return await self._cli(job, d, session, rendered)
        finally:
            await self._close(session)

    async def _already(
        self, job: store.Job, d: store.Device, current: str, diff: Callable[[str, str], str]
    ) -> Outcome:
        """The change is on the device already: nothing pushed. A resumed job reports the
        diff from its rollback point."""
        rows = {r["device"]: r for r in await store.job_devices(self.pool, job.id)}
        noted = rows.get(d.name, {}).get("backup_before")
        if noted is not None:
            before = await store.get_backup(self.pool, self.sealer, int(noted))
            if before is not None and before["config"] != current:
                after_id = await self._save(d, current, f"job {job.id}")
                return Outcome("ok", diff=diff(before["config"], current), backup_after=after_id)
        return Outcome("unchanged")

    async def _cli(self, job: store.Job, d: store.Device, s: CliSession, rendered: str) -> Outcome:
        p = s.p
        commands = [line for line in rendered.splitlines() if line.strip()]
        before_text = await self._io(s.running)
        before = cliconf.parse(before_text)
        predicted = cliconf.apply(before, commands)

        def diff(a: str, b: str) -> str:
            return cliconf.diff(cliconf.parse(a), cliconf.parse(b), d.name)

        if job.mode == "dry-run":
            if p.dry_run == "model":
                text = cliconf.diff(before, predicted, d.name)
                return Outcome("ok" if text else "unchanged", diff=text)
            try:
                await self._io(s.push, commands)
                text = await self._io(s.compare)
            finally:
                await self._io(s.discard)
                await self._io(s.leave)
            return Outcome("ok" if text.strip() else "unchanged", diff=text)
        if p.dry_run == "model" and cliconf.same(predicted, before):
            return await self._already(job, d, before_text, diff)
        await self._io(s.enter)  # held (locked: retried) or refused: nothing changed yet
        backup_id = await self._save(d, before_text, "pre-change")
        await store.note_backup_before(self.pool, job.id, d.name, backup_id)
        try:
            await self._io(s.push, commands)
            await self._io(s.commit, self.confirm_timeout)
            await self._io(s.leave)
        except DeviceError as exc:
            if exc.reason != "rejected":
                raise
            undone = await self._cli_undo(s, before)
            return Outcome(
                "rolled-back" if undone else "failed",
                error=str(exc),
                reason="rejected",
                details=exc.details,
                backup_before=backup_id,
            )
        after_text = await self._io(s.running)
        await self._io(s.confirm)  # verified by reading it back: confirm the commit
        await self._io(s.save)
        after_id = await self._save(d, after_text, f"job {job.id}")
        actual = diff(before_text, after_text)
        return Outcome(
            "ok" if actual else "unchanged",
            diff=actual,
            backup_before=backup_id,
            backup_after=after_id,
        )

    async def _cli_undo(self, s: CliSession, target: list[cliconf.Line]) -> bool:
        """A refused change undone: discarded (commit platforms), or the device put back to
        ``target`` line by line; whether the config read back matches it."""
        if s.p.commit:
            await self._io(s.discard)
            await self._io(s.leave)
        else:
            await self._io(s.leave)
            current = cliconf.parse(await self._io(s.running))
            commands = cliconf.translate(cliconf.restore(current, target), s.p.negate)
            if commands:
                await self._io(s.push, commands)
                await self._io(s.leave)
        return cliconf.same(cliconf.parse(await self._io(s.running)), target)

    async def _netconf(
        self, job: store.Job, d: store.Device, s: NetconfSession, rendered: str
    ) -> Outcome:
        payload = rendered.strip()
        if not payload.startswith("<config"):
            payload = f'<config xmlns="{xmlconf.BASE}">{payload}</config>'

        def diff(a: str, b: str) -> str:
            return text_diff(a, b, d.name)

        before = await self._io(s.running)
        if job.mode == "dry-run":
            preview = await self._io(s.preview, payload)
            text = diff(before, preview)
            return Outcome("ok" if text else "unchanged", diff=text)
        expected = xmlconf.merge_edit(before, payload)
        if xmlconf.canon(expected) == xmlconf.canon(xmlconf.parse(before)):
            return await self._already(job, d, before, diff)
        backup_id = await self._save(d, before, "pre-change")
        await store.note_backup_before(self.pool, job.id, d.name, backup_id)
        try:
            await self._io(s.push, payload, self.confirm_timeout)
        except DeviceError as exc:
            if exc.reason != "rejected":
                raise
            # refused: running never changed (rollback-on-error, or the candidate discarded)
            same = await self._io(s.running) == before
            return Outcome(
                "rolled-back" if same else "failed",
                error=str(exc),
                reason="rejected",
                details=exc.details,
                backup_before=backup_id,
            )
        after = await self._io(s.running)
        if after == before:
            raise DeviceError(
                "verify",
                f"{d.name}: the device accepted the change but running is unchanged",
            )
        await self._io(s.confirm)  # verified by reading it back: confirm the commit
        saved = await self._io(s.save)
        after_id = await self._save(d, after, f"job {job.id}")
        return Outcome(
            "ok",
            diff=diff(before, after),
            details={"startup": "saved"} if saved else {},
            backup_before=backup_id,
            backup_after=after_id,
        )


async def run_job(
    runner: Runner, pool: asyncpg.Pool, sealer: Sealer, job: store.Job, actor: str = ""
) -> str:
    """Run a claimed job to its end: each device's outcome stored and audited; the job's
    final state (done when no device failed, cancelled when asked to stop)."""
    rows = await store.job_devices(pool, job.id)
    # 'running': the daemon that ran it is gone (kill -9). The device is read first: a
    # change already there is not pushed again; it keeps the backup taken before the first
    # attempt, for a rollback.
    names = [r["device"] for r in rows if r["state"] in ("pending", "running")]
    devices = {d.name: d for d in await store.list_devices(pool, sealer, names)}
    gate = asyncio.Semaphore(job.concurrency)
    stop = asyncio.Event()
    # A device rolled back is a failed change, and the success of a rollback job.
    bad = ("failed", "skipped") if job.mode == "rollback" else ("failed", "rolled-back", "skipped")
    await store.audit(
        pool,
        actor,
        f"config_job.{job.mode}.start",
        str(job.id),
        "ok",
        {"template": job.template, "devices": names, "variables": job.variables},
    )

    async def cancelled() -> str | None:
        who = await store.cancel_requested(pool, job.id)
        if who is not None:
            return f"cancelled by {who}" if who else "cancelled"
        if job.deadline is not None and datetime.now(UTC) > job.deadline:
            return "deadline"
        return None

    async def one(name: str) -> None:
        async with gate:
            why = await cancelled()
            if why is not None or stop.is_set():
                state, reason = ("cancelled", why) if why else ("skipped", "stopped")
                await store.set_job_device(
                    pool,
                    job.id,
                    name,
                    state=state,
                    reason="deadline" if why == "deadline" else reason.split()[0],
                    error=why or "stopped after a failure",
                )
                return
            d = devices.get(name)
            await store.set_job_device(pool, job.id, name, state="running")
            if d is None:
                outcome = Outcome("failed", error="no such device", reason="error")
            else:
                outcome = await runner.change(job, d, cancelled)
            shown = redact(outcome.diff)
            # a refused command's error carries the device's output, maybe the command
            error = redact(outcome.error) if outcome.reason == "rejected" else outcome.error
            await store.set_job_device(
                pool,
                job.id,
                name,
                state=outcome.state,
                reason=outcome.reason,
                diff=shown,
                error=error,
                error_details=outcome.details,
                attempts=outcome.attempts,
                backup_before=outcome.backup_before,
                backup_after=outcome.backup_after,
            )
            await store.audit(
                pool,
                actor,
                f"config_job.{job.mode}.device",
                f"{job.id}/{name}",
                "error" if outcome.state == "failed" else "ok",
                {
                    "state": outcome.state,
                    "reason": outcome.reason,
                    "error": error,
                    "details": outcome.details,
                    "diff": shown,
                },
            )
            if outcome.state in bad and job.stop_on_failure:
                stop.set()

    await asyncio.gather(*(one(n) for n in names))
    final = await store.job_devices(pool, job.id)
    failed_ = [r["device"] for r in final if r["state"] in bad]
    if any(r["state"] == "cancelled" for r in final):
        state = "cancelled"
    else:
        state = "failed" if failed_ else "done"
    await store.finish_job(pool, job.id, state)
    await store.audit(
        pool,
        actor,
        f"config_job.{job.mode}.end",
        str(job.id),
        "error" if failed_ else "ok",
        {"state": state, "failed": failed_},
    )
    await runner.event(
        f"config_job.{state}",
        f"job:{job.id}",
        {"job": job.id, "mode": job.mode, "failed": failed_},
        "warning" if failed_ else "info",
    )
    return state
