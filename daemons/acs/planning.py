"""What a session sends for a device, decided with the stores: tasks made ready to send
(a Download by file name, the file store's credentials, a preset run turned into values)
and the preset values a device lacks. The ACS's shell calls it at each Inform."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import asyncpg

from daemons.acs import cwmp, files, presets
from daemons.acs import engine as eng
from daemons.core.config import AcsConfig
from daemons.core.http import hostport as _hostport
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer
from daemons.store import acs as store


class Planner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: AcsConfig,
        file_store: files.FileStore,
        credentials: tuple[str, str],
        ratelog: RateLimitedLog,
        sealer: Sealer,
    ) -> None:
        self.sealer = sealer
        self.pool = pool
        self.cfg = cfg
        self.files = file_store
        self.credentials = credentials  # the global CWMP credentials (acs.username, password)
        self.ratelog = ratelog
        self.presets: list[presets.Preset] = []

    def files_base(self) -> str:
        """Where CPEs fetch the file store: ``<acs.public_url>/files/``."""
        base = self.cfg.public_url or f"http://{_hostport(self.cfg.host, self.cfg.port)}"
        return f"{base.rstrip('/')}/files/"

    async def prepare(self, task: eng.Task, device_id: str) -> eng.Task:
        """A Download by file name gets its URL, FileType and size from the file store. A
        transfer from our file store (by name, or a URL under ``files_base``) carries the
        device's own CWMP credentials, else the global ones when acs.auth asks for them,
        added here in memory: the password is never written into the task row."""
        if task.kind == "runPreset":
            return await self._preset_task(task, device_id)
        if task.kind not in ("download", "upload"):
            return task
        args = dict(task.args)
        name = str(args.get("file") or "")
        if task.kind == "download" and name and not args.get("url"):
            info = await self.files.get(self.pool, name)
            if info is None:  # removed since it was queued: the engine faults the task
                args.pop("url", None)
                return eng.Task(task.id, "download", args, task.attempts)
            args.update(url=self.files_base() + name, file_size=info.size)
            args.setdefault("file_type", info.file_type)
        ours = str(args.get("url") or "").startswith(self.files_base())
        if ours or args.get("acs_credentials"):
            # the device's own credentials when it has them (the file store honours them
            # as CWMP does), else the global ones under acs.auth
            own = await store.get_credentials(self.pool, self.sealer, device_id)
            creds = own if own is not None else self.credentials
            if own is not None or self.cfg.auth != "none":
                args.setdefault("username", creds[0])
                args.setdefault("password", creds[1])
        return eng.Task(task.id, task.kind, args, task.attempts)

    async def _preset_task(self, task: eng.Task, device_id: str) -> eng.Task:
        """A run of one preset on demand (a bulk run's): its match keys apply, its events
        do not; the values the device lacks are set, and its firmware Download queued."""
        name = str(task.args.get("preset", ""))
        found = next((p for p in self.presets if p.name == name), None)
        args: dict[str, Any] = {"preset": name, "values": []}
        device = await store.get_device(self.pool, device_id)
        if found is None or device is None:
            return eng.Task(task.id, task.kind, {**args, "error": f"no preset {name!r} in force"})
        preset = dataclasses.replace(found, events=())
        facts = presets.Facts(
            device["oui"],
            device["product_class"],
            device["software_version"],
            (),
            tuple(device["tags"]),
        )
        if not presets.matches(preset, facts):
            why = f"the device does not match preset {name!r} (OUI, product class, version, tags)"
            return eng.Task(task.id, task.kind, {**args, "error": why})
        root = f"{device['root']}."
        want = presets.desired([preset], facts, root)
        stored = await store.stored_values(self.pool, device["id"], list(want))
        args["values"] = [[v.name, v.value, v.type] for v in presets.diff(want, stored)]
        fw = presets.firmware([preset], facts)
        if fw is not None and not await store.firmware_in_flight(self.pool, device["id"], fw[0]):
            await store.queue_task(
                self.pool,
                device["id"],
                "download",
                {"file": fw[1], "version": fw[0]},
                f"preset:{name}",
            )
            args["firmware"] = fw[0]
        return eng.Task(task.id, task.kind, args, task.attempts)

    async def preset_values(self, session: eng.Session) -> list[cwmp.ParamValue]:
        """The preset values this device lacks; a Download task queued for the preset's
        firmware when it runs another version (once: not while one is in flight)."""
        if not self.presets:
            return []
        pool = self.pool
        device = await store.get_device(pool, session.device_id)
        if device is None:
            return []
        facts = presets.Facts(
            session.device.oui,
            session.device.product_class,
            str(device["software_version"]),
            tuple(session.events),
            tuple(device["tags"]),
        )
        fw = presets.firmware(self.presets, facts)
        if fw is not None and not await store.firmware_in_flight(pool, session.device_id, fw[0]):
            version, name = fw
            info = await self.files.get(pool, name)
            if info is None:
                self.ratelog.log(
                    logging.WARNING,
                    f"fw-missing-{name}",
                    "a preset names a firmware file that is not in the file store",
                    file=name,
                )
            else:
                await store.queue_task(
                    pool,
                    session.device_id,
                    "download",
                    {"file": name, "version": version},
                    "preset",
                )
        want = presets.desired(self.presets, facts, session.root)
        if not want:
            return []
        if "0 BOOTSTRAP" in session.events:  # factory values: the stored ones are gone
            return presets.diff(want, {})
        stored = await store.stored_values(pool, session.device_id, list(want))
        return presets.diff(want, stored)
