"""ONU firmware jobs: download, then activate, then commit an image on a set of ONUs, at
most ``concurrency`` ONUs at once, each step polled with GetImageStatus until it succeeds,
fails or times out. Every ONU's state and reason is written as it moves, and the job ends
with a report event (``voltha.firmware.done`` or ``voltha.firmware.failed`` with counts).
A core that is away while a step runs is waited for until the step's timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from voltha_protos import device_pb2

from daemons.store import voltha as store
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.inventory import Event
from daemons.voltha.policy import image_step


class StepFailed(Exception):
    pass


async def _wait(
    client: VolthaClient, device_id: str, version: str, step: str, within: float, poll: float
) -> None:
    deadline = time.monotonic() + within
    last = "no status yet"
    while time.monotonic() < deadline:
        try:
            got = await client.image_status([device_id], version)
            for st in got.device_image_states:
                if st.device_id == device_id:
                    s = image_step(step, st.imageState)
                    last = s.detail
                    if s.failed:
                        raise StepFailed(f"{step} failed: {s.detail}")
                    if s.done:
                        return
        except VolthaError as exc:
            if not exc.unavailable:
                raise StepFailed(f"{step}: {exc.code}: {exc.details}") from None
            last = f"VOLTHA {exc.code}"
        await asyncio.sleep(poll)
    raise StepFailed(f"{step} timed out after {within:.0f} s ({last})")


async def run_job(
    client: VolthaClient,
    pool: asyncpg.Pool,
    job: store.FirmwareJob,
    step_timeout: float,
    poll: float,
    published: Callable[[list[tuple[int, Event]]], Awaitable[None]],
) -> str:
    """Run one job to its end; its final state."""
    image = device_pb2.Image(
        name=job.version, version=job.version, url=job.url, vendor=job.vendor, crc32=job.crc32
    )
    gate = asyncio.Semaphore(job.concurrency)
    devices = [d for d in await store.job_devices(pool, job.id) if d["state"] != "done"]

    async def one(dev: dict[str, Any]) -> None:
        device_id = dev["device_id"]
        async with gate:
            try:
                await store.set_job_device(pool, job.id, device_id, "downloading")
                try:
                    await client.download_image([device_id], image, False, False)
                except VolthaError as exc:
                    raise StepFailed(f"download refused: {exc.code}: {exc.details}") from None
                await _wait(client, device_id, job.version, "download", step_timeout, poll)
                if job.activate:
                    await store.set_job_device(pool, job.id, device_id, "activating")
                    try:
                        await client.activate_image([device_id], job.version)
                    except VolthaError as exc:
                        raise StepFailed(f"activate refused: {exc.code}: {exc.details}") from None
                    await _wait(client, device_id, job.version, "activate", step_timeout, poll)
                if job.commit:
                    await store.set_job_device(pool, job.id, device_id, "committing")
                    try:
                        await client.commit_image([device_id], job.version)
                    except VolthaError as exc:
                        raise StepFailed(f"commit refused: {exc.code}: {exc.details}") from None
                    await _wait(client, device_id, job.version, "commit", step_timeout, poll)
                await store.set_job_device(pool, job.id, device_id, "done")
            except StepFailed as exc:
                await store.set_job_device(pool, job.id, device_id, "failed", str(exc)[:500])

    await asyncio.gather(*(one(d) for d in devices))
    final = await store.job_devices(pool, job.id)
    counts: dict[str, int] = {}
    for d in final:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    state = "done" if counts.get("done", 0) == len(final) else "failed"
    failed = [
        {"serial": d["serial"], "reason": d["reason"]} for d in final if d["state"] == "failed"
    ]
    event = Event(
        f"voltha.firmware.{state}",
        f"job:{job.id}",
        {
            "job": job.id,
            "stack": job.stack,
            "version": job.version,
            "counts": counts,
            "failed": failed[:100],
        },
        "info" if state == "done" else "warning",
    )
    await published(await store.finish_job(pool, job.id, state, event))
    return state
