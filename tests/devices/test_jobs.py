"""Configuration jobs against our SSH CLI and NETCONF simulators (real netmiko and ncclient,
never mocked), on a real PostgreSQL: backup versioning, dry-run changing nothing, apply
with verify and rollback, a command refused halfway (the device is rolled back), a wrong
password, an unreachable host, a changed host key refused until accepted, a slow device
hitting its timeout, stop-on-first-failure, and the audit trail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from daemons.devices import cliconf
from daemons.store import devices as store
from tests.devices.ios_sim import IosSim
from tests.devices.jobenv import Env, env
from tests.devices.netconf_sim import NetconfSim

__all__ = ["env"]


@pytest.fixture
async def ios() -> AsyncIterator[IosSim]:
    sim = IosSim(reject=r"switchport access vlan 666")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_backups_are_versioned(env: Env, ios: IosSim) -> None:
    d = await env.add("sw1", ios.port)
    first, changed = await env.runner.backup(d)
    again, changed_again = await env.runner.backup(d)
    assert changed and not changed_again and again == first  # same config: not stored
    assert [e[0] for e in env.events] == ["device.host_key_learnt", "device.config_changed"]
    ios.running.append("ntp server 192.0.2.1")
    d = await store.get_device(env.pool, env.sealer, "sw1")  # now with its pinned key
    assert d is not None and d.host_keys
    third, changed = await env.runner.backup(d)
    assert changed and third > first
    backups = await store.list_backups(env.pool, "sw1")
    assert [b["id"] for b in backups] == [third, first]
    old, new = await env.backup_text(first), await env.backup_text(third)
    diff = cliconf.diff(cliconf.parse(old), cliconf.parse(new))
    assert "+ntp server 192.0.2.1" in diff


async def test_dry_run_changes_nothing(env: Env, ios: IosSim) -> None:
    await env.add("sw1", ios.port)
    before = list(ios.running)
    job = await env.job("dry-run", ["sw1"])
    assert job["state"] == "done"
    (dev,) = job["devices"]
    assert dev["state"] == "ok"
    assert "+ switchport access vlan 20" in dev["diff"] and "+vlan 20" in dev["diff"]
    assert ios.running == before
    assert not any(c.startswith(("configure", "conf t", "vlan", "write")) for c in ios.commands)


async def test_apply_verify_and_rollback(env: Env, ios: IosSim) -> None:
    await env.add("sw1", ios.port)
    before = cliconf.parse("\n".join(ios.running))
    job = await env.job("apply", ["sw1"])
    (dev,) = job["devices"]
    assert job["state"] == "done" and dev["state"] == "ok", (dev["error"], dev["reason"])
    assert "+ switchport access vlan 20" in dev["diff"]
    assert "vlan 20" in ios.running and ios.saved == ios.running  # saved after the push
    assert dev["backup_before"] and dev["backup_after"]
    again = await env.job("apply", ["sw1"])
    assert again["devices"][0]["state"] == "unchanged"
    back = await env.job("rollback", ["sw1"], rollback_of=job["id"])
    assert back["devices"][0]["state"] == "rolled-back", back["devices"][0]
    assert cliconf.same(cliconf.parse("\n".join(ios.running)), before)
    audit = await env.pool.fetch(
        "SELECT action, target, result, details FROM audit_log ORDER BY id"
    )
    actions = [r["action"] for r in audit]
    assert actions[:3] == [
        "config_job.apply.start",
        "config_job.apply.device",
        "config_job.apply.end",
    ]
    assert "+ switchport access vlan 20" in json.loads(audit[1]["details"])["diff"]


async def test_a_command_refused_halfway_is_rolled_back(env: Env, ios: IosSim) -> None:
    await env.add("sw1", ios.port)
    before = cliconf.parse("\n".join(ios.running))
    job = await env.job(
        "apply",
        ["sw1"],
        {"vlan": 666, "vlan_name": "bad", "ports": ["GigabitEthernet0/1"], "description": "x"},
    )
    (dev,) = job["devices"]
    assert job["state"] == "failed"
    assert dev["state"] == "rolled-back" and "Invalid input" in dev["error"], dev
    assert cliconf.same(cliconf.parse("\n".join(ios.running)), before)  # vlan 666 went too


async def test_wrong_password_unreachable_and_a_slow_device(env: Env, ios: IosSim) -> None:
    await env.add("sw-badpw", ios.port, password="wrong")
    closed = IosSim()
    port = await closed.start()
    await closed.stop()  # nobody listens there any more
    await env.add("sw-gone", port)
    slow = IosSim(slow=0.0)
    await slow.start()
    try:
        await env.add("sw-slow", slow.port)
        await env.runner.backup(await store.get_device(env.pool, env.sealer, "sw-slow"))  # type: ignore[arg-type]
        slow.slow = 10.0  # every line now takes longer than the 5 s device timeout
        job = await env.job("dry-run", ["sw-badpw", "sw-gone", "sw-slow"])
    finally:
        await slow.stop()
    by = {d["device"]: d for d in job["devices"]}
    assert (
        by["sw-badpw"]["state"] == "failed" and "authentication failed" in by["sw-badpw"]["error"]
    )
    assert by["sw-gone"]["state"] == "failed" and "refused" in by["sw-gone"]["error"].lower()
    assert by["sw-slow"]["state"] == "failed", by["sw-slow"]
    assert job["state"] == "failed"


async def test_a_changed_host_key_is_refused_until_accepted(env: Env, ios: IosSim) -> None:
    d = await env.add("sw1", ios.port)
    await env.runner.backup(d)
    await ios.restart(new_host_key=True)
    job = await env.job("dry-run", ["sw1"])
    assert "host key changed" in job["devices"][0]["error"]
    d = await store.get_device(env.pool, env.sealer, "sw1")
    assert d is not None and d.offered_host_key and d.offered_host_key not in d.host_keys
    assert ("device.host_key_changed", "sw1") in [(e[0], e[1]) for e in env.events]
    assert await store.accept_host_key(env.pool, "sw1") == d.offered_host_key
    job = await env.job("dry-run", ["sw1"])
    assert job["devices"][0]["state"] == "ok"


async def test_stop_on_first_failure(env: Env, ios: IosSim) -> None:
    await env.add("a-bad", ios.port, password="wrong")
    await env.add("b-good", ios.port)
    job = await env.job("apply", ["a-bad", "b-good"], stop_on_failure=True, concurrency=1)
    by = {d["device"]: d["state"] for d in job["devices"]}
    assert by == {"a-bad": "failed", "b-good": "skipped"}
    assert "vlan 20" not in ios.running


async def test_netconf_dry_run_apply_invalid_and_rollback(env: Env) -> None:
    sim = NetconfSim()
    await sim.start()
    try:
        await env.add("r1", sim.port, platform="netconf")
        before = sim.running_xml()
        variables = {"vlan": 20, "vlan_name": "voice", "ports": ["ge-0/0/1"]}
        dry = await env.job("dry-run", ["r1"], variables)
        assert dry["devices"][0]["state"] == "ok", dry["devices"][0]["error"]
        assert "<vlan>20</vlan>" in dry["devices"][0]["diff"]
        assert sim.running_xml() == before and "commit" not in sim.rpcs
        bad = await env.job("apply", ["r1"], {**variables, "description": "INVALID edit"})
        assert bad["devices"][0]["state"] == "rolled-back", bad["devices"][0]
        assert "INVALID" in bad["devices"][0]["error"] and sim.running_xml() == before
        job = await env.job("apply", ["r1"], variables)
        assert job["devices"][0]["state"] == "ok", job["devices"][0]
        assert sim.running_value("//t:interface[t:name='ge-0/0/1']/t:vlan") == ["20"]
        back = await env.job("rollback", ["r1"], rollback_of=job["id"])
        assert back["devices"][0]["state"] == "rolled-back", back["devices"][0]
        assert sim.running_value("//t:interface[t:name='ge-0/0/1']/t:vlan") == []
    finally:
        await sim.stop()


async def test_cli_rollback_keeps_later_changes_and_refuses_drift(env: Env, ios: IosSim) -> None:
    """main's rollback put the whole pre-change config back: it removed a line added after
    the job. Now only the job's lines are undone; a port the job set and someone changed
    since is refused (drift as the diff) unless forced."""
    await env.add("sw1", ios.port)
    job = await env.job("apply", ["sw1"])
    assert job["devices"][0]["state"] == "ok"
    ios.running.append("ntp server 192.0.2.50")  # someone else's change, after the job
    back = await env.job("rollback", ["sw1"], rollback_of=job["id"])
    assert back["devices"][0]["state"] == "rolled-back", back["devices"][0]
    assert "ntp server 192.0.2.50" in ios.running and "vlan 20" not in ios.running
    job2 = await env.job("apply", ["sw1"])
    at = ios.running.index("interface GigabitEthernet0/1")
    ios.running[at + 1 : at + 1] = [" description changed by hand"]
    ios.running[:] = [x for x in ios.running if x != " description access vlan 20"]
    refused = await env.job("rollback", ["sw1"], rollback_of=job2["id"])
    dev = refused["devices"][0]
    assert dev["state"] == "failed" and dev["reason"] == "drift", dev
    assert "description access vlan 20" in dev["diff"]
    assert "vlan 20" in ios.running  # nothing undone
    forced = await env.job("rollback", ["sw1"], rollback_of=job2["id"], force=True)
    assert forced["devices"][0]["state"] == "rolled-back", forced["devices"][0]
    assert "vlan 20" not in ios.running and "ntp server 192.0.2.50" in ios.running
