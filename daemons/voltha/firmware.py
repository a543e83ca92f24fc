"""ONU firmware jobs: download, then activate, then commit an image on a set of ONUs, at
most ``concurrency`` ONUs at once, each step polled with GetImageStatus until it succeeds,
fails or times out. Every ONU's state and reason is written as it moves, and the job ends
with a report event (``voltha.firmware.done`` or ``voltha.firmware.failed`` with counts).

- A step refused in its own answer (openonu answers DownloadImageToDevice for a https or
  unfetchable URL, a vendor mismatch, with DOWNLOAD_FAILED; rw_core an ONU without adapter
  handler with *_ABORTED) fails at once, not at the step's timeout.
- A status rw_core gives when the adapter did not answer (DOWNLOAD_UNKNOWN / UNKNOWN_ERROR /
  IMAGE_UNKNOWN: openonu is busy with an ONU rebooting onto its new image) is waited
  through, as is a core that is away, until the step's timeout; an ONU device that is gone
  ends its upgrade at once.
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
from daemons.voltha.policy import image_step, no_answer, refused, resume_point


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
                    if no_answer(st.imageState):
                        await _still_there(client, device_id, step)
        except VolthaError as exc:
            if not exc.unavailable:
                raise StepFailed(f"{step}: {exc.code}: {exc.details}") from None
            last = f"VOLTHA {exc.code}"
        await asyncio.sleep(poll)
    raise StepFailed(f"{step} timed out after {within:.0f} s ({last})")


async def _still_there(client: VolthaClient, device_id: str, step: str) -> None:
    """No answer from the adapter about the device: fine while it reboots, not if the core
    has no such device any more (voltha-go answers the same for an unknown id)."""
    try:
        await client.device(device_id)
    except VolthaError as exc:
        if exc.code == "NOT_FOUND":
            raise StepFailed(f"{step}: the ONU device is gone") from None


async def _request(
    client: VolthaClient, job: store.FirmwareJob, image: Any, step: str, device_id: str
) -> None:
    """Ask for one step; StepFailed if the core or the adapter refuses it in its answer."""
    try:
        if step == "download":
            got = await client.download_image([device_id], image, False, False)
        elif step == "activate":
            got = await client.activate_image([device_id], job.version)
        else:
            got = await client.commit_image([device_id], job.version)
    except VolthaError as exc:
        raise StepFailed(f"{step} refused: {exc.code}: {exc.details}") from None
    for st in got.device_image_states:
        if st.device_id == device_id:
            why = refused(step, st.imageState)
            if why is not None:
                raise StepFailed(f"{step} refused: {why}")


async def _resume(
    client: VolthaClient, job: store.FirmwareJob, device_id: str, within: float, poll: float
) -> tuple[str, bool]:
    """The step an ONU left in progress by a killed daemon is at (see resume_point). While
    the adapter does not answer about it (the ONU reboots onto its new image), it is asked
    again, for up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            got = await client.image_status([device_id], job.version)
        except VolthaError:
            return "download", False
        state = next(
            (s.imageState for s in got.device_image_states if s.device_id == device_id), None
        )
        if state is None:
            return "download", False
        if not no_answer(state) or time.monotonic() > deadline:
            return resume_point(state, job.activate, job.commit)
        await _still_there(client, device_id, "resume")
        await asyncio.sleep(poll)


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
    # Those not finished: all of a new job, the rest of one resumed after its daemon died.
    devices = [
        d
        for d in await store.job_devices(pool, job.id)
        if d["state"] in ("pending", "downloading", "activating", "committing")
    ]

    steps = [
        "download",
        *(["activate"] if job.activate else []),
        *(["commit"] if job.commit else []),
    ]
    row_state = {"download": "downloading", "activate": "activating", "commit": "committing"}

    async def one(dev: dict[str, Any]) -> None:
        device_id = dev["device_id"]
        async with gate:
            try:
                start, under_way = "download", False
                if dev["state"] != "pending":  # in progress when the job's daemon died
                    start, under_way = await _resume(client, job, device_id, step_timeout, poll)
                todo = steps[steps.index(start) :] if start in steps else []
                for n, step in enumerate(todo):
                    await store.set_job_device(pool, job.id, device_id, row_state[step])
                    if not (n == 0 and under_way):
                        await _request(client, job, image, step, device_id)
                    await _wait(client, device_id, job.version, step, step_timeout, poll)
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
