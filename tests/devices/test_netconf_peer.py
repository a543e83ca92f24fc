"""Configuration jobs against a real NETCONF server nobody here wrote: yuma123's netconfd
behind OpenSSH's netconf subsystem (tests/devices/peers.py), with the shipped templates for
standard YANG (ietf-interfaces, ietf-system, openconfig-interfaces).

Each test names the problem of issue 23 it reproduces; all of them failed on main before
the change that made them pass (see the commit message)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ncclient import manager

from daemons import resources
from daemons.store import devices as store
from tests.devices.jobenv import Env, env
from tests.devices.peers import Netconfd, Sshd, netconf_server

__all__ = ["env"]
pytestmark = pytest.mark.timeout(120)

SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
IF = "urn:ietf:params:xml:ns:yang:ietf-interfaces"


@contextlib.contextmanager
def client(sshd: Sshd) -> Iterator[Any]:
    """An independent NETCONF session (another operator), by the ed25519 key."""
    m = manager.connect(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.user.name,
        password=sshd.user.password,
        hostkey_verify=False,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        yield m
    finally:
        m.close_session()


def edit(m: Any, body: str, target: str = "candidate") -> None:
    cfg = f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</config>'
    m.edit_config(target=target, config=cfg)
    if target == "candidate":
        m.commit()


async def add(env: Env, sshd: Sshd, name: str = "r1") -> store.Device:
    return await env.add(
        name, sshd.port, "netconf", password=sshd.user.password, username=sshd.user.name
    )


def running(m: Any, source: str = "running") -> str:
    return str(m.get_config(source=source).data_xml)


async def test_rsa_host_key_netconf_and_startup_saved(env: Env, tmp_path: Path) -> None:
    """An RSA-only server (OpenSSH 9.2 refuses ssh-rsa/SHA-1): main's ncclient call offered
    only ssh-rsa for the pinned key and failed the negotiation. And :startup was never
    saved: after a reboot every applied change was gone while the job said done."""
    with netconf_server(tmp_path, key_types=("rsa",)) as (sshd, _nc):
        await add(env, sshd)
        first, _ = await env.runner.backup(await env.get("r1"))  # learns the RSA key
        d = await env.get("r1")
        assert [k.split()[0] for k in d.host_keys] == ["ssh-rsa"]
        job = await env.job("apply", ["r1"], {"contact": "noc@example.net"}, "ietf-system")
        dev = job["devices"][0]
        assert dev["state"] == "ok", (dev["error"], dev["reason"])
        assert "<contact>noc@example.net</contact>" in dev["diff"]
        assert dev["error_details"] == {"startup": "saved"}
        with client(sshd) as m:
            assert "noc@example.net" in running(m, "startup")
        back = await env.job("rollback", ["r1"], rollback_of=job["id"])
        assert back["devices"][0]["state"] == "rolled-back", back["devices"][0]
        with client(sshd) as m:
            assert "noc@example.net" not in running(m)
            assert "noc@example.net" not in running(m, "startup")
        assert first


async def test_a_new_key_type_beside_the_pinned_one_is_learnt(env: Env, tmp_path: Path) -> None:
    """The device adds an ed25519 key beside its unchanged RSA key: main refused it as
    'host key changed'. A different RSA key is still refused."""
    with netconf_server(tmp_path, key_types=("rsa",)) as (sshd, _nc):
        await add(env, sshd)
        await env.runner.backup(await env.get("r1"))
        sshd.restart(("rsa", "ecdsa"))  # ecdsa now negotiated (preferred to RSA)
        await env.runner.backup(await env.get("r1"))
        sshd.restart(("rsa", "ecdsa", "ed25519"))
        await env.runner.backup(await env.get("r1"))
        d = await env.get("r1")
        assert sorted(k.split()[0] for k in d.host_keys) == [
            "ecdsa-sha2-nistp256",
            "ssh-ed25519",
            "ssh-rsa",
        ]
        assert ("device.host_key_learnt", "r1") in [(e[0], e[1]) for e in env.events]
        assert d.offered_host_key is None
        sshd.restart(("rsa", "ed25519"), keep=False)  # keys all new: a changed device
        job = await env.job("dry-run", ["r1"], {"contact": "x"}, "ietf-system")
        assert job["devices"][0]["reason"] == "host-key-changed", job["devices"][0]
        sshd.restart(("rsa",), keep=False)  # only a new RSA key: changed too
        job = await env.job("dry-run", ["r1"], {"contact": "x"}, "ietf-system")
        assert job["devices"][0]["reason"] == "host-key-changed"


async def test_a_held_candidate_lock_is_retried_then_failed_locked(
    env: Env, tmp_path: Path
) -> None:
    """Another session holds the candidate lock: main let RPCError escape (the job stayed
    running and was pushed again every 10 s). Now: retried with backoff, then 'failed:
    locked' at the deadline; the job ends. Released in time, the job goes through."""
    with netconf_server(tmp_path) as (sshd, _nc):
        await add(env, sshd)
        env.runner.lock_wait = 3.0
        with client(sshd) as other:
            other.lock("candidate")
            job = await asyncio.wait_for(
                env.job("apply", ["r1"], {"contact": "a"}, "ietf-system"), 60
            )
            dev = job["devices"][0]
            assert job["state"] == "failed"
            assert dev["state"] == "failed" and dev["reason"] == "locked", dev
            assert dev["attempts"] >= 2
            assert dev["error_details"]["error-tag"] == "lock-denied"
            assert "still held after" in dev["error"]
            env.runner.lock_wait = 30.0
            job_id = await env.create("apply", ["r1"], {"contact": "b"}, "ietf-system")
            task = asyncio.ensure_future(env.run(job_id))
            await asyncio.sleep(1.5)
            other.unlock("candidate")
            job = await asyncio.wait_for(task, 60)
        dev = job["devices"][0]
        assert job["state"] == "done" and dev["state"] == "ok", dev
        assert dev["attempts"] >= 2


async def test_cancel_a_job_waiting_for_a_lock(env: Env, tmp_path: Path) -> None:
    """There was no cancel: now a running job stops between two steps."""
    with netconf_server(tmp_path) as (sshd, _nc):
        await add(env, sshd)
        env.runner.lock_wait = 60.0
        with client(sshd) as other:
            other.lock("candidate")
            job_id = await env.create("apply", ["r1"], {"contact": "c"}, "ietf-system")
            task = asyncio.ensure_future(env.run(job_id))
            await asyncio.sleep(1.0)
            assert await store.cancel_job(env.pool, job_id, "tester") == "running"
            job = await asyncio.wait_for(task, 40)
        assert job["state"] == "cancelled" and job["cancel_requested_by"] == "tester"
        assert job["devices"][0]["state"] == "cancelled"
        pending = await env.create("apply", ["r1"], {"contact": "d"}, "ietf-system")
        assert await store.cancel_job(env.pool, pending, "tester") == "cancelled"
        got = await store.get_job(env.pool, pending)
        assert got is not None and got["devices"][0]["state"] == "cancelled"
        # A job claimed past its deadline (its daemon was down): ended, nothing pushed.
        late = await env.job("apply", ["r1"], {"contact": "e"}, "ietf-system", lifetime=0.0)
        assert late["state"] == "cancelled"
        assert late["devices"][0]["reason"] == "deadline", late["devices"][0]
        with client(sshd) as m:
            assert "<contact>e</contact>" not in running(m)


async def test_error_details_are_kept(env: Env, tmp_path: Path) -> None:
    """main kept only 'edit-config: invalid value': now error-tag, error-path and the
    error-info (bad-element, bad-value) the device gave."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "bogus.netconf.j2").write_text(
        f'<system xmlns="{SYS}"><bogus-leaf>1</bogus-leaf></system>'
    )
    (templates / "ietf-interfaces.netconf.j2").write_text(
        (resources.path("policies") / "config" / "ietf-interfaces.netconf.j2").read_text()
    )
    env.runner.templates = templates
    with netconf_server(tmp_path) as (sshd, _nc):
        await add(env, sshd)
        job = await env.job("apply", ["r1"], {}, "bogus")
        dev = job["devices"][0]
        assert dev["state"] == "rolled-back" and dev["reason"] == "rejected", dev
        assert dev["error_details"]["error-tag"] == "unknown-element"
        assert dev["error_details"]["error-info"]["bad-element"] == "sys:bogus-leaf"
        bad = await env.job(
            "apply", ["r1"], {"ports": ["eth0"], "enabled": "maybe"}, "ietf-interfaces"
        )
        dev = bad["devices"][0]
        assert dev["error_details"]["error-tag"] == "invalid-value", dev
        assert dev["error_details"]["error-path"].endswith("if:enabled")
        assert dev["error_details"]["error-info"]["bad-value"] == "maybe"
        assert "invalid-value at " in dev["error"]


async def test_dry_run_and_apply_without_a_candidate(env: Env, tmp_path: Path) -> None:
    """A server without :candidate (netconfd --target=running): main refused any dry-run.
    Now the diff comes from running and the rendered edit, and nothing changes."""
    with netconf_server(tmp_path, target="running") as (sshd, _nc):
        with client(sshd) as m:
            assert not any(":candidate:" in c for c in m.server_capabilities)
            edit(m, f'<system xmlns="{SYS}"><hostname>r1</hostname></system>', "running")
            before = running(m)
        await add(env, sshd)
        variables = {"ports": ["eth1"], "description": "uplink <a&b>", "enabled": True}
        dry = await env.job("dry-run", ["r1"], variables, "ietf-interfaces")
        dev = dry["devices"][0]
        assert dev["state"] == "ok", dev
        assert "+      <description>uplink &lt;a&amp;b&gt;</description>" in dev["diff"]
        with client(sshd) as m:
            assert running(m) == before
        job = await env.job("apply", ["r1"], variables, "ietf-interfaces")
        assert job["devices"][0]["state"] == "ok", job["devices"][0]
        with client(sshd) as m:
            assert "uplink &lt;a&amp;b&gt;" in running(m)


async def test_safe_rollback(env: Env, tmp_path: Path) -> None:
    """main's rollback replaced the whole config: it wiped changes made after the job and
    left a top-level container the job created. Now only the job's change is undone; a
    device that changed those parts since is refused (drift shown) unless forced."""
    with netconf_server(tmp_path) as (sshd, _nc):
        with client(sshd) as m:
            edit(m, f'<system xmlns="{SYS}"><hostname>r1</hostname></system>')
        await add(env, sshd)
        variables = {"ports": ["eth7"], "description": "job", "enabled": True}
        job = await env.job("apply", ["r1"], variables, "openconfig-interfaces")
        assert job["devices"][0]["state"] == "ok", job["devices"][0]
        assert "openconfig.net/yang/interfaces" in job["devices"][0]["diff"]
        with client(sshd) as m:  # someone changes something else
            edit(m, f'<system xmlns="{SYS}"><contact>later</contact></system>')
        back = await env.job("rollback", ["r1"], rollback_of=job["id"])
        dev = back["devices"][0]
        assert dev["state"] == "rolled-back", dev
        with client(sshd) as m:
            now = running(m)
        assert "openconfig.net/yang/interfaces" not in now  # the container it created: gone
        assert "<contact>later</contact>" in now  # the later change: kept
        # Drift: the job's own part changed since.
        job2 = await env.job("apply", ["r1"], {"location": "rack 1"}, "ietf-system")
        assert job2["devices"][0]["state"] == "ok", job2["devices"][0]
        with client(sshd) as m:
            edit(m, f'<system xmlns="{SYS}"><location>rack 9</location></system>')
        refused = await env.job("rollback", ["r1"], rollback_of=job2["id"])
        dev = refused["devices"][0]
        assert dev["state"] == "failed" and dev["reason"] == "drift", dev
        assert "-  <location" in dev["diff"] and "rack 1" in dev["diff"]
        assert "+  <location" in dev["diff"] and "rack 9" in dev["diff"]
        with client(sshd) as m:
            assert "rack 9" in running(m)
        forced = await env.job("rollback", ["r1"], rollback_of=job2["id"], force=True)
        assert forced["devices"][0]["state"] == "rolled-back", forced["devices"][0]
        with client(sshd) as m:
            now = running(m)
        assert "rack" not in now and "<contact>later</contact>" in now


async def test_shipped_templates_on_the_real_models(env: Env, tmp_path: Path) -> None:
    """The shipped templates target standard YANG (main's only template used a namespace of
    the simulator): ietf-system's hostname, contact and NTP servers and ietf-interfaces'
    description and enabled, validated by the real server."""
    with netconf_server(tmp_path) as (sshd, nc):
        await add(env, sshd)
        system = {"hostname": "core-1", "contact": "noc", "ntp_servers": ["192.0.2.1"]}
        job = await env.job("apply", ["r1"], system, "ietf-system")
        assert job["devices"][0]["state"] == "ok", job["devices"][0]
        ifs = {"ports": ["eth0", "eth1"], "description": "access", "enabled": False}
        job = await env.job("apply", ["r1"], ifs, "ietf-interfaces")
        assert job["devices"][0]["state"] == "ok", job["devices"][0]
        again = await env.job("apply", ["r1"], ifs, "ietf-interfaces")
        assert again["devices"][0]["state"] == "unchanged"  # read first: nothing pushed
        with client(sshd) as m:
            now = running(m)
        assert "<hostname>core-1</hostname>" in now and "<address>192.0.2.1</address>" in now
        assert now.count("<description>access</description>") == 2
        assert "<enabled>false</enabled>" in now
        assert isinstance(nc, Netconfd)
