"""Backups and change jobs over a set of devices, run from asyncio: every device exchange
goes to a thread pool (netmiko and ncclient are synchronous), so the event loop never
blocks. At most ``concurrency`` devices at once, one job step at a time per device (a lock
per device), each exchange bounded by the device timeout.

A change job renders ``policies/config/<template>.cli.j2`` (CLI platforms) or
``<template>.netconf.j2`` (NETCONF) per device in a sandboxed Jinja2 environment, with the
device (``device.name``, ``.address``, ``.platform``, ``.tags``, ``.vars``), its vars and
the job's variables; an undefined variable fails that device.
- dry-run: the diff the device would get (CLI: the commands applied to the config read
  from the device by our IOS model; NETCONF: the edit made on the candidate, read back and
  discarded). Nothing changes on the device.
- apply: a backup first; then the push (CLI: send_config_set stopping at the first refused
  line, then save; NETCONF: edit-config on the candidate, validate, confirmed commit where
  the device has it); then verify (the config read back); a refused command, a failed
  verify or a commit error rolls the device back to the backup. The diff kept is the
  device's own before and after.
- rollback (of an earlier apply job): each device put back to that job's pre-change backup.
Every job and each device's result and diff go into the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from daemons.core.secrets import Sealer
from daemons.devices import cliconf
from daemons.devices.drivers import (
    CliSession,
    DeviceError,
    NetconfSession,
    Target,
    check_host_key,
    pretty_xml,
)
from daemons.store import devices as store

log = logging.getLogger("netd.devices")
T = TypeVar("T")
EventSink = Callable[[str, str, dict[str, Any], str], Awaitable[None]]


@dataclass
class Outcome:
    state: str  # ok, unchanged, failed, rolled-back, skipped
    diff: str = ""
    error: str = ""
    reason: str = ""
    backup_before: int | None = None
    backup_after: int | None = None


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
    ) -> None:
        self.pool = pool
        self.sealer = sealer
        self.templates = templates
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="device")
        self.device_timeout = device_timeout
        self.confirm_timeout = confirm_timeout
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
        """A device exchange in the pool, bounded by the device timeout."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.executor, partial(fn, *args)), self.device_timeout
            )
        except TimeoutError:
            raise DeviceError("timeout", f"no answer in {self.device_timeout:.0f} s") from None

    def _target(self, d: store.Device) -> Target:
        return Target(
            d.name,
            d.address,
            d.port,
            d.platform,
            d.username,
            d.password,
            d.secret,
            d.host_key,
            self.device_timeout,
        )

    async def _key(self, d: store.Device) -> str:
        """The device's host key, checked against the pinned one (learnt on first use)."""
        t = self._target(d)
        try:
            key = await self._io(check_host_key, t)
        except DeviceError as exc:
            if exc.reason == "host-key-changed":
                offered = await self._io(
                    check_host_key, Target(d.name, d.address, d.port, d.platform, "", "")
                )
                await store.offer_host_key(self.pool, d.name, offered)
                await self.event(
                    "device.host_key_changed", d.name, {"offered": offered.split()[0]}, "warning"
                )
            raise
        if d.host_key is None and await store.pin_host_key(self.pool, d.name, key):
            await self.event("device.host_key_learnt", d.name, {"key": key.split()[0]}, "info")
        return key

    async def _open(self, d: store.Device) -> CliSession | NetconfSession:
        key = await self._key(d)
        cls = NetconfSession if d.platform == "netconf" else CliSession
        return await self._io(cls, self._target(d), key)

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
                await self._io(session.close)
        backup_id, changed = await store.save_backup(self.pool, d.name, config, reason)
        if changed:
            await self.event("device.config_changed", d.name, {"backup": backup_id}, "info")
        return backup_id, changed

    # --- rendering ---

    def render(self, template: str, d: store.Device, variables: dict[str, Any]) -> str:
        kind = "netconf" if d.platform == "netconf" else "cli"
        path = self.templates / f"{template}.{kind}.j2"
        if not path.is_file():
            raise DeviceError("error", f"no template {path.name} in policies/config")
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

    async def change(self, job: store.Job, d: store.Device) -> Outcome:
        async with self._lock(d.name):
            try:
                if job.mode == "rollback":
                    return await self._rollback(job, d)
                rendered = self.render(job.template, d, job.variables)
                session = await self._open(d)
                try:
                    if d.platform == "netconf":
                        assert isinstance(session, NetconfSession)
                        return await self._netconf(job, d, session, rendered)
                    assert isinstance(session, CliSession)
                    return await self._cli(job, d, session, rendered)
                finally:
                    with contextlib.suppress(Exception):
                        await self._io(session.close)
            except DeviceError as exc:
                return Outcome("failed", error=str(exc), reason=exc.reason)

    async def _cli(self, job: store.Job, d: store.Device, s: CliSession, rendered: str) -> Outcome:
        commands = [line for line in rendered.splitlines() if line.strip()]
        before_text = await self._io(s.running)
        before = cliconf.parse(before_text)
        predicted = cliconf.diff(before, cliconf.apply(before, commands), d.name)
        if job.mode == "dry-run":
            return Outcome("ok" if predicted else "unchanged", diff=predicted)
        backup_id, _ = await store.save_backup(self.pool, d.name, before_text, "pre-change")
        await store.note_backup_before(self.pool, job.id, d.name, backup_id)
        try:
            await self._io(s.push, commands)
        except DeviceError as exc:
            if exc.reason != "rejected":
                raise
            undone = await self._cli_restore(s, before)
            return Outcome(
                "rolled-back" if undone else "failed",
                error=str(exc),
                reason="rejected",
                backup_before=backup_id,
            )
        await self._io(s.save)
        after_text = await self._io(s.running)
        after = cliconf.parse(after_text)
        after_id, _ = await store.save_backup(self.pool, d.name, after_text, f"job {job.id}")
        actual = cliconf.diff(before, after, d.name)
        return Outcome(
            "ok" if actual else "unchanged",
            diff=actual,
            backup_before=backup_id,
            backup_after=after_id,
        )

    async def _cli_restore(self, s: CliSession, target: list[cliconf.Line]) -> bool:
        """Put the device back to ``target``; whether the config read back matches it."""
        current = cliconf.parse(await self._io(s.running))
        commands = cliconf.restore(current, target)
        if commands:
            await self._io(s.push, commands)
            await self._io(s.save)
        return cliconf.same(cliconf.parse(await self._io(s.running)), target)

    async def _netconf(
        self, job: store.Job, d: store.Device, s: NetconfSession, rendered: str
    ) -> Outcome:
        payload = rendered.strip()
        if not payload.startswith("<config"):
            payload = f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{payload}</config>'
        before = await self._io(s.running)
        if job.mode == "dry-run":
            preview = await self._io(s.preview, payload)
            diff = text_diff(before, preview, d.name)
            return Outcome("ok" if diff else "unchanged", diff=diff)
        backup_id, _ = await store.save_backup(self.pool, d.name, before, "pre-change")
        await store.note_backup_before(self.pool, job.id, d.name, backup_id)
        try:
            await self._io(s.push, payload, self.confirm_timeout)
        except DeviceError as exc:
            if exc.reason != "rejected":
                raise
            # validate or commit refused: running never changed (the candidate is discarded)
            same = pretty_xml(await self._io(s.running)) == before
            return Outcome(
                "rolled-back" if same else "failed",
                error=str(exc),
                reason="rejected",
                backup_before=backup_id,
            )
        after = await self._io(s.running)
        await self._io(s.confirm)  # verified by reading it back: confirm the commit
        after_id, _ = await store.save_backup(self.pool, d.name, after, f"job {job.id}")
        diff = text_diff(before, after, d.name)
        return Outcome(
            "ok" if diff else "unchanged", diff=diff, backup_before=backup_id, backup_after=after_id
        )

    async def _rollback(self, job: store.Job, d: store.Device) -> Outcome:
        assert job.rollback_of is not None
        rows = {r["device"]: r for r in await store.job_devices(self.pool, job.rollback_of)}
        row = rows.get(d.name)
        if row is None or row["backup_before"] is None:
            return Outcome("skipped", error=f"no pre-change backup in job {job.rollback_of}")
        backup = await store.get_backup(self.pool, int(row["backup_before"]))
        if backup is None:
            return Outcome("failed", error="the pre-change backup is gone", reason="error")
        session = await self._open(d)
        try:
            before = await self._io(session.running)
            if isinstance(session, NetconfSession):
                await self._io(session.replace, backup["config"])
                after = await self._io(session.running)
                ok = after == backup["config"]
                diff = text_diff(before, after, d.name)
            else:
                ok = await self._cli_restore(session, cliconf.parse(backup["config"]))
                after = await self._io(session.running)
                diff = cliconf.diff(cliconf.parse(before), cliconf.parse(after), d.name)
        finally:
            with contextlib.suppress(Exception):
                await self._io(session.close)
        after_id, _ = await store.save_backup(self.pool, d.name, after, f"rollback {job.id}")
        if not ok:
            return Outcome(
                "failed",
                diff=diff,
                error="the config read back differs from the backup",
                reason="verify",
                backup_after=after_id,
            )
        return Outcome(
            "rolled-back", diff=diff, backup_before=int(backup["id"]), backup_after=after_id
        )


def text_diff(before: str, after: str, name: str) -> str:
    import difflib  # noqa: PLC0415

    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} running (before)",
            f"{name} running (after)",
        )
    )


async def run_job(
    runner: Runner, pool: asyncpg.Pool, sealer: Sealer, job: store.Job, actor: str = ""
) -> str:
    """Run a claimed job to its end: each device's outcome stored and audited; the job's
    final state (done when no device failed)."""
    rows = await store.job_devices(pool, job.id)
    # 'running': the daemon that ran it is gone (kill -9); the change runs again (the
    # template is applied to the config as found: what was pushed already stays the same),
    # and the device keeps the backup taken before the first attempt, for a rollback.
    names = [r["device"] for r in rows if r["state"] in ("pending", "running")]
    first_backup = {r["device"]: r["backup_before"] for r in rows if job.mode != "rollback"}
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

    async def one(name: str) -> None:
        async with gate:
            if stop.is_set():
                await store.set_job_device(
                    pool, job.id, name, state="skipped", error="stopped after a failure"
                )
                return
            d = devices.get(name)
            await store.set_job_device(pool, job.id, name, state="running")
            if d is None:
                outcome = Outcome("failed", error="no such device", reason="error")
            else:
                outcome = await runner.change(job, d)
            await store.set_job_device(
                pool,
                job.id,
                name,
                state=outcome.state,
                diff=outcome.diff,
                error=outcome.error,
                backup_before=first_backup.get(name) or outcome.backup_before,
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
                    "error": outcome.error,
                    "diff": outcome.diff,
                },
            )
            if outcome.state in bad and job.stop_on_failure:
                stop.set()

    await asyncio.gather(*(one(n) for n in names))
    final = await store.job_devices(pool, job.id)
    failed = [r["device"] for r in final if r["state"] in bad]
    state = "failed" if failed else "done"
    await store.finish_job(pool, job.id, state)
    await store.audit(
        pool,
        actor,
        f"config_job.{job.mode}.end",
        str(job.id),
        "error" if failed else "ok",
        {"state": state, "failed": failed},
    )
    await runner.event(
        f"config_job.{state}",
        f"job:{job.id}",
        {"job": job.id, "mode": job.mode, "failed": failed},
        "warning" if failed else "info",
    )
    return state
