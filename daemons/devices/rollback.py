"""Safe rollback of an apply job, one device: only what the job changed is undone.

The job's own change is the difference between its pre-change backup and the config read
back after it (its post-change backup). The device is read now:
- where it still holds those parts as the job left them, the inverse edits are pushed (CLI:
  the lines the job added removed and the ones it removed or replaced put back, in the
  platform's form; NETCONF: an edit-config removing what the job created, putting back
  what it removed or changed), and everything else on the device stays as it is;
- where it changed any of those parts since (drift), the rollback is refused with the drift
  as a diff (as the job left it / now), unless the job is forced, when the job's parts are
  put back over the drift (still nothing else);
- a job that never read the device back (it ended in a timeout after the push) has no
  post-change backup: its change cannot be told from later ones, so only a forced rollback
  runs, putting back every difference from the pre-change backup.
After the push the device is read back and each part checked; NETCONF running is copied to
startup where the device has :startup; the CLI platforms save as after an apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daemons.devices import cliconf, xmlconf
from daemons.devices.cli import CliSession
from daemons.devices.errors import DeviceError
from daemons.devices.netconf import NetconfSession
from daemons.store import devices as store

if TYPE_CHECKING:
    from daemons.devices.jobs import Outcome, Runner


async def run(runner: Runner, job: store.Job, d: store.Device) -> Outcome:
    from daemons.devices.jobs import Outcome  # noqa: PLC0415

    assert job.rollback_of is not None
    rows = {r["device"]: r for r in await store.job_devices(runner.pool, job.rollback_of)}
    row = rows.get(d.name)
    if row is None or row["backup_before"] is None:
        return Outcome(
            "skipped", error=f"no pre-change backup in job {job.rollback_of}", reason="nothing"
        )
    before = await store.get_backup(runner.pool, runner.sealer, int(row["backup_before"]))
    after = None
    if row["backup_after"] is not None:
        after = await store.get_backup(runner.pool, runner.sealer, int(row["backup_after"]))
    if before is None:
        return Outcome("failed", error="the pre-change backup is gone", reason="error")
    if after is None and not job.force:
        return Outcome(
            "failed",
            reason="drift",
            error=f"{d.name}: job {job.rollback_of} ended before reading the device back: "
            "its change cannot be told from later ones; a forced rollback puts back every "
            "difference from its pre-change backup",
        )
    session = await runner._open(d)
    try:
        if isinstance(session, NetconfSession):
            return await _netconf(runner, job, d, session, before["config"], after)
        return await _cli(runner, job, d, session, before["config"], after)
    finally:
        await runner._close(session)


def _after_text(after: dict[str, object] | None, current: str) -> str:
    return str(after["config"]) if after is not None else current


async def _netconf(
    runner: Runner,
    job: store.Job,
    d: store.Device,
    s: NetconfSession,
    before: str,
    after: dict[str, object] | None,
) -> Outcome:
    from daemons.devices.jobs import Outcome  # noqa: PLC0415

    current = await runner._io(s.running)
    now = xmlconf.parse(current)
    mine = xmlconf.changes(xmlconf.parse(before), xmlconf.parse(_after_text(after, current)))
    if not mine:
        return Outcome("unchanged", error="the job changed nothing to undo")
    drifted = xmlconf.drift(mine, now)
    if drifted and not job.force:
        return _drift(
            d, job, len(drifted), xmlconf.changes_text(drifted, d.name, _left(job), "now")
        )
    pre_id = await runner._save(d, current, "pre-rollback")
    await runner._io(s.push, xmlconf.inverse_edit(mine))
    new = await runner._io(s.running)
    back = xmlconf.parse(new)
    left = [c for c in mine if xmlconf.canon(xmlconf.find(back, c.path)) != xmlconf.canon(c.before)]
    after_id = await runner._save(d, new, f"rollback {job.id}")
    diff = xmlconf.text_diff(current, new, d.name)
    if left:
        return Outcome(
            "failed",
            diff=diff,
            reason="verify",
            error=f"{d.name}: {len(left)} part(s) read back not as before the job: "
            + ", ".join(xmlconf.describe(c.path) for c in left[:5]),
            backup_before=pre_id,
            backup_after=after_id,
        )
    saved = await runner._io(s.save)
    return Outcome(
        "rolled-back",
        diff=diff,
        details={"startup": "saved"} if saved else {},
        backup_before=pre_id,
        backup_after=after_id,
    )


async def _cli(
    runner: Runner,
    job: store.Job,
    d: store.Device,
    s: CliSession,
    before: str,
    after: dict[str, object] | None,
) -> Outcome:
    from daemons.devices.jobs import Outcome  # noqa: PLC0415

    current_text = await runner._io(s.running)
    current = cliconf.parse(current_text)
    mine = cliconf.changes(cliconf.parse(before), cliconf.parse(_after_text(after, current_text)))
    if not mine:
        return Outcome("unchanged", error="the job changed nothing to undo")
    drifted = cliconf.drift(mine, current)
    if drifted and not job.force:
        return _drift(d, job, len(drifted), cliconf.drift_text(drifted, d.name))
    pre_id = await runner._save(d, current_text, "pre-rollback")
    target = cliconf.undo(current, mine)
    commands = cliconf.translate(cliconf.restore(current, target), s.p.negate)
    if commands:
        await runner._io(s.push, commands)
        await runner._io(s.commit, 0)
    await runner._io(s.leave)
    new_text = await runner._io(s.running)
    new = cliconf.parse(new_text)
    left = cliconf.drift([(i, not added) for i, added in mine], new)
    after_id = await runner._save(d, new_text, f"rollback {job.id}")
    diff = cliconf.diff(current, new, d.name)
    if left:
        return Outcome(
            "failed",
            diff=diff,
            reason="verify",
            error=f"{d.name}: the config read back still differs from before the job in "
            f"{len(left)} line(s)",
            backup_before=pre_id,
            backup_after=after_id,
        )
    await runner._io(s.save)
    return Outcome("rolled-back", diff=diff, backup_before=pre_id, backup_after=after_id)


def _left(job: store.Job) -> str:
    return f"as job {job.rollback_of} left it"


def _drift(d: store.Device, job: store.Job, n: int, diff: str) -> Outcome:
    from daemons.devices.jobs import Outcome  # noqa: PLC0415

    err = DeviceError(
        "drift",
        f"{d.name}: changed since job {job.rollback_of} in {n} of the part(s) it changed; "
        "rollback refused (force it to put the job's parts back over these changes)",
    )
    return Outcome("failed", diff=diff, error=str(err), reason=err.reason)
