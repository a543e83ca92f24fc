"""Configuration jobs over SSH CLIs: Debian's OpenSSH as the ``linux`` platform and fakenos
(PyPI) as a Junos-like shell (real peers nobody here wrote), and our IOS simulator where
no real peer shows the behaviour (a device that times out once the change landed, a job
resumed after a crash, IOS interface abbreviations, a commit platform on an IOS device).

Each test names the problem of issue 23 it reproduces; all of them failed on main."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from daemons import resources
from daemons.devices import cliconf, platforms
from daemons.devices.errors import DeviceError
from daemons.store import devices as store
from tests.devices.ios_sim import IosSim
from tests.devices.jobenv import Env, env
from tests.devices.peers import have_fakenos, linux_server
from tests.support import free_port

__all__ = ["env"]
pytestmark = pytest.mark.timeout(120)
JUNOS_CONFIG = (
    "set system host-name r1\n"
    'set system root-authentication encrypted-password "$6$abc$def"\n'
    "set interfaces ge-0/0/1 description uplink\n"
)


async def test_linux_backs_up_one_file_and_takes_no_jobs(env: Env, tmp_path: Path) -> None:
    """main sent 'show running-config' to every CLI device: a Linux host stored 'sh: 1:
    show: not found' as a successful backup. The linux platform backs up the file named by
    the device var backup_file; a failed read is refused, never stored; jobs are refused."""
    with linux_server(tmp_path, key_types=("rsa",)) as sshd:  # RSA only: rsa-sha2 for netmiko
        peer = pwd.getpwnam(sshd.user.name)
        conf = sshd.user.home / "interfaces"
        conf.write_text("auto eth0\niface eth0 inet static\n  address 192.0.2.10/24\n")
        os.chown(conf, peer.pw_uid, peer.pw_gid)
        d = await env.add(
            "h1",
            sshd.port,
            "linux",
            password=sshd.user.password,
            username=sshd.user.name,
            variables={"backup_file": str(conf)},
        )
        backup_id, changed = await env.runner.backup(d)
        assert changed
        text = await env.backup_text(backup_id)
        assert "iface eth0 inet static" in text and "not found" not in text
        d = await env.get("h1")
        assert [k.split()[0] for k in d.host_keys] == ["ssh-rsa"]
        again, changed = await env.runner.backup(d)  # a second session on the pinned RSA key
        assert again == backup_id and not changed
        d2 = await env.add(
            "h2",
            sshd.port,
            "linux",
            password=sshd.user.password,
            username=sshd.user.name,
            variables={"backup_file": str(sshd.user.home / "no-such-file")},
        )
        with pytest.raises(DeviceError) as refused:
            await env.runner.backup(d2)
        assert refused.value.reason == "rejected" and "No such file" in str(refused.value)
        assert await store.list_backups(env.pool, "h2") == []
    templates = resources.path("policies") / "config"
    (why,) = platforms.refusals(templates, "access-vlan", "apply", [("h1", "linux")])
    assert why.startswith("h1: linux: backups of one file only")
    job = await env.job("apply", ["h1"])  # past creation too (a job queued by hand)
    assert job["devices"][0]["reason"] == "unsupported" and job["state"] == "failed"


@contextlib.contextmanager
def fakenos_junos(tmp_path: Path, password: str) -> Iterator[int]:
    """fakenos' juniper_junos shell, with 'show configuration | display set' added."""
    have_fakenos()
    import fakenos as fakenos_pkg  # noqa: PLC0415
    from fakenos import FakeNOS  # noqa: PLC0415

    base = Path(fakenos_pkg.__file__).parent / "plugins/nos/platforms_yaml/juniper_junos.yaml"
    nos = yaml.safe_load(base.read_text())
    # Junos prompts end in a space ("user@r1> "), as netmiko's juniper_junos expects:
    # fakenos' own have none, and netmiko would wait for a prompt forever.
    text = yaml.safe_dump(nos).replace("{base_prompt}>", "{base_prompt}> ")
    nos = yaml.safe_load(text.replace("{base_prompt}#", "{base_prompt}# "))
    nos["commands"]["show configuration | display set"] = {
        "output": JUNOS_CONFIG.rstrip("\n"),
        "help": "the configuration as set commands",
        "prompt": ["{base_prompt}> ", "{base_prompt}# "],
    }
    path = tmp_path / "junos.yaml"
    path.write_text(yaml.safe_dump(nos))
    port = free_port()
    inventory = {
        "hosts": {
            "r1": {
                "username": "admin",
                "password": password,
                "port": port,
                "platform": "juniper_junos",
                "nos": {"plugin": str(path)},
            }
        }
    }
    net = FakeNOS(inventory=inventory)
    net.start()  # its server threads
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("fakenos is not listening")
    try:
        yield port
    finally:
        net.stop()


async def test_junos_like_cli_backup_and_no_config_mode(env: Env, tmp_path: Path) -> None:
    """fakenos as a Junos-like device: main stored the error its 'show running-config'
    got as a backup, and netmiko's ValueError('Failed to enter configuration mode.')
    escaped, leaving the job running to be pushed again. Now the backup is 'show
    configuration | display set'; the apply ends failed with a reason."""
    with fakenos_junos(tmp_path, "junos-pw") as port:
        d = await env.add("r1", port, "juniper_junos", password="junos-pw")
        backup_id, _ = await env.runner.backup(d)
        assert "set interfaces ge-0/0/1 description uplink" in await env.backup_text(backup_id)
        job = await asyncio.wait_for(
            env.job(
                "apply",
                ["r1"],
                {"lines": ["set interfaces ge-0/0/1 description core"]},
                "lines",
            ),
            60,
        )
    dev = job["devices"][0]
    assert job["state"] == "failed" and dev["state"] == "failed", dev
    assert dev["reason"] in ("rejected", "unsupported"), dev
    assert "configuration mode" in dev["error"]


async def test_a_timeout_after_the_change_keeps_its_backup(env: Env) -> None:
    """main lost the pre-change backup reference when the device timed out after the change
    landed (the job could not be rolled back). Now it keeps it; a rollback without a
    post-change backup runs only when forced."""
    sim = IosSim()
    await sim.start()
    try:
        await env.add("sw1", sim.port)
        await env.runner.backup(await env.get("sw1"))
        original = list(sim.running)
        job_id = await env.create("apply", ["sw1"])

        async def slow_when_pushed() -> None:
            while "vlan 20" not in sim.running:
                await asyncio.sleep(0.01)
            sim.slow = 8.0  # every command now outlasts the 5 s device timeout

        watcher = asyncio.ensure_future(slow_when_pushed())
        job = await asyncio.wait_for(env.run(job_id), 60)
        watcher.cancel()
        sim.slow = 0.0
        dev = job["devices"][0]
        assert dev["state"] == "failed" and dev["backup_before"] is not None, dev
        assert dev["reason"] == "timeout"
        assert "vlan 20" not in await env.backup_text(dev["backup_before"])
        assert "vlan 20" in sim.running
        refused = await env.job("rollback", ["sw1"], rollback_of=job["id"])
        assert refused["devices"][0]["reason"] == "drift", refused["devices"][0]
        forced = await env.job("rollback", ["sw1"], rollback_of=job["id"], force=True)
        assert forced["devices"][0]["state"] == "rolled-back", forced["devices"][0]
        assert cliconf.same(
            cliconf.parse("\n".join(sim.running)), cliconf.parse("\n".join(original))
        )
    finally:
        await sim.stop()


async def test_a_resumed_job_reads_the_device_first(env: Env) -> None:
    """A job left running by a daemon that died after the change landed: main pushed it
    again. Now the device is read first and the change found there is not pushed."""
    sim = IosSim()
    await sim.start()
    try:
        await env.add("sw1", sim.port)
        before_id, _ = await env.runner.backup(await env.get("sw1"))
        job_id = await env.create("apply", ["sw1"])
        (job,) = [j for j in await store.claim_jobs(env.pool) if j.id == job_id]
        await store.set_job_device(env.pool, job_id, "sw1", state="running")
        await store.note_backup_before(env.pool, job_id, "sw1", before_id)
        rendered = env.runner.render("access-vlan", await env.get("sw1"), job.variables)
        sim.running[:] = cliconf.render(
            cliconf.apply(cliconf.parse("\n".join(sim.running)), rendered.splitlines())
        ).splitlines()  # the dead daemon's push had landed
        sim.commands.clear()
        from daemons.devices.jobs import run_job  # noqa: PLC0415

        await run_job(env.runner, env.pool, env.sealer, job, "test")
        got = await store.get_job(env.pool, job_id)
        assert got is not None
        dev = got["devices"][0]
        assert dev["state"] == "ok", dev
        assert "+vlan 20" in dev["diff"]
        assert not any(c.strip().startswith(("conf", "vlan")) for c in sim.commands)
    finally:
        await sim.stop()


async def test_ios_interface_abbreviations(env: Env, tmp_path: Path) -> None:
    """main's IOS model did not expand Et0/2 (Ethernet0/2): its dry-run predicted a new
    'interface Et0/2' block. Now the diff names Ethernet0/2, as the device does."""
    sim = IosSim()
    await sim.start()
    try:
        await env.add("sw1", sim.port)
        variables = {"vlan": 30, "vlan_name": "iot", "ports": ["Et0/2"]}
        dry = await env.job("dry-run", ["sw1"], variables)
        diff = dry["devices"][0]["diff"]
        assert "+interface Ethernet0/2" in diff and "Et0/2" not in diff, diff
        applied = await env.job("apply", ["sw1"], variables)
        assert applied["devices"][0]["state"] == "ok"

        def changed(text: str) -> set[str]:
            return {x for x in text.splitlines() if x[:1] in "+-" and x[:3] not in "+++---"}

        assert changed(applied["devices"][0]["diff"]) == changed(diff)  # as predicted
    finally:
        await sim.stop()


async def test_a_commit_platform_on_a_device_without_commit(env: Env) -> None:
    """main called netmiko's save_config(), NotImplementedError for cisco_xr, juniper_junos,
    linux and 85 other device types: it escaped and the job stayed running. Now XR's commit
    (refused by this IOS device) ends the device's attempt with a state and a reason."""
    sim = IosSim(reject=r"^(commit|abort)")
    await sim.start()
    try:
        await env.add("xr1", sim.port, "cisco_xr")
        job = await asyncio.wait_for(env.job("apply", ["xr1"]), 60)
        dev = job["devices"][0]
        assert job["state"] == "failed" and dev["state"] in ("failed", "rolled-back"), dev
        assert dev["reason"] == "rejected" and "commit" in dev["error"]
    finally:
        await sim.stop()
