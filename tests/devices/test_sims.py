"""The device simulators driven by the real client libraries: netmiko (cisco_ios) against
IosSim and ncclient against NetconfSim, over SSH on loopback. Nothing is mocked.

netmiko and ncclient are synchronous (paramiko threads): each client call runs in
``asyncio.to_thread`` so that the simulator, in this event loop, keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError, SSHError, SSHUnknownHostError
from netmiko import ConnectHandler
from netmiko.exceptions import (
    ConfigInvalidException,
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadTimeout,
)

from tests.devices.ios_sim import IosSim
from tests.devices.netconf_sim import BASE, NS, NetconfSim
from tests.devices.sshbase import SshDevice

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
S = TypeVar("S", bound=SshDevice)


async def off(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client call in a thread, bounded."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), 20)


@contextlib.asynccontextmanager
async def serving(sim: S) -> AsyncIterator[S]:
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        assert not sim._tasks, "a simulator task outlived stop()"


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


# -- IOS over SSH with netmiko --------------------------------------------------------------------
def ios_params(sim: IosSim, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "device_type": "cisco_ios",
        "host": sim.host,
        "port": sim.port,
        "username": sim.username,
        "password": sim.password,
        "conn_timeout": 5,
        "auth_timeout": 5,
        "banner_timeout": 5,
    }
    if sim.enable_secret is not None:
        params["secret"] = sim.enable_secret
    params.update(extra)
    return params


def strict_ios_params(sim: IosSim, known_hosts: Path) -> dict[str, Any]:
    return ios_params(
        sim,
        ssh_strict=True,
        system_host_keys=False,
        alt_host_keys=True,
        alt_key_file=str(known_hosts),
    )


async def test_ios_prompt_enable_and_show() -> None:
    async with serving(IosSim(hostname="sw1", enable_secret="s3cret")) as sim:

        def session() -> tuple[str, str, str, str, str]:
            with ConnectHandler(**ios_params(sim)) as conn:
                user = conn.find_prompt()
                denied = str(conn.send_command("show running-config"))
                conn.enable()
                return (
                    user,
                    conn.find_prompt(),
                    denied,
                    str(conn.send_command("show running-config")),
                    str(conn.send_command("show version")),
                )

        user, priv, denied, running, version = await off(session)
        assert (user, priv) == ("sw1>", "sw1#")
        assert "% Invalid input detected at '^' marker." in denied
        lines = running.splitlines()
        assert lines[0] == "Building configuration..."
        assert "hostname sw1" in lines
        assert " transport input ssh" in lines
        assert lines[-1] == "end"
        assert "sw1 uptime is" in version
        assert "terminal length 0" in sim.commands
        assert "terminal width 511" in sim.commands
        assert sim.logins == 1


# netmiko's TextFSM helper calls a deprecated importlib.resources function.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_ios_config_set_save_and_show_version_parses() -> None:
    async with serving(IosSim()) as sim:
        commands = [
            "interface Gi0/1",
            " description uplink to olt1",
            " switchport access vlan 10",
            "vlan 10",
            " name subscribers",
            "interface GigabitEthernet0/2",
            " shutdown",
            "ntp server 192.0.2.1",
        ]

        def session() -> tuple[str, str, str, Any]:
            with ConnectHandler(**ios_params(sim)) as conn:
                out = conn.send_config_set(commands)
                conn.send_config_set(
                    ["interface Gi0/1", "description uplink to olt2", "no switchport access vlan"]
                )
                saved = conn.save_config()
                block = str(conn.send_command("show running-config interface Gi0/1"))
                parsed = conn.send_command("show version", use_textfsm=True)
                return out, saved, block, parsed

        out, saved, block, parsed = await off(session)
        assert "sw1(config-if)#" in out and "sw1(config-vlan)#" in out
        assert "Invalid" not in out
        running = sim.running
        i = running.index("interface GigabitEthernet0/1")
        assert running[i + 1 : i + 2] == [" description uplink to olt2"]
        assert " switchport access vlan 10" not in running
        assert running[running.index("vlan 10") + 1] == " name subscribers"
        assert running[running.index("interface GigabitEthernet0/2") + 1] == " shutdown"
        assert "ntp server 192.0.2.1" in running
        assert "[OK]" in saved
        assert sim.saved == sim.running
        assert block.splitlines()[-3:] == [
            "interface GigabitEthernet0/1",
            " description uplink to olt2",
            "end",
        ]
        assert isinstance(parsed, list)
        assert parsed[0]["hostname"] == "sw1"
        assert parsed[0]["version"] == sim.image_version
        assert parsed[0]["serial"] == [sim.serial]


async def test_ios_hostname_change_needs_a_new_base_prompt() -> None:
    async with serving(IosSim(hostname="sw1")) as sim:

        def session() -> tuple[str, str]:
            with ConnectHandler(**ios_params(sim)) as conn:
                conn.send_config_set(["hostname edge-7"])
                # netmiko keeps the old base prompt: read it again before the next command.
                conn.set_base_prompt()
                return conn.find_prompt(), conn.save_config()

        prompt, saved = await off(session)
        assert prompt == "edge-7#"
        assert "[OK]" in saved
        assert "hostname edge-7" in sim.saved


async def test_ios_rejected_command_halfway_and_rollback() -> None:
    async with serving(IosSim(reject=r"^description .*FORBIDDEN")) as sim:
        before = list(sim.running)

        def session() -> tuple[str, str, str, str]:
            with ConnectHandler(**ios_params(sim)) as conn:
                conn.save_config()  # backup first
                plain = conn.send_config_set(
                    ["interface Gi0/3", "description FORBIDDEN word", "switchport access vlan 30"]
                )
                try:
                    conn.send_config_set(
                        [
                            "interface Gi0/4",
                            "switchport access vlan 40",
                            "description FORBIDDEN again",
                            "switchport mode access",
                        ],
                        error_pattern=r"% Invalid input",
                    )
                except ConfigInvalidException as exc:
                    error = str(exc)
                else:
                    error = ""
                # netmiko stops in configuration mode after the error.
                in_config = conn.check_config_mode()
                conn.exit_config_mode()
                half = str(conn.send_command("show running-config interface Gi0/4"))
                rollback = str(conn.send_command("configure replace nvram:startup-config force"))
                return plain, error, half + ("\nIN-CONFIG" if in_config else ""), rollback

        plain, error, half, rollback = await off(session)
        assert "% Invalid input detected at '^' marker." in plain
        assert "description FORBIDDEN again" in error
        assert " switchport access vlan 40" in half.splitlines()  # applied before the error
        assert "IN-CONFIG" in half
        assert "switchport mode access" not in sim.commands  # never sent after the error
        assert "Rollback Done" in rollback
        assert sim.running == before
        assert not any("FORBIDDEN" in line for line in sim.running)


async def test_ios_wrong_password_and_wrong_enable_secret() -> None:
    async with serving(IosSim(enable_secret="right")) as sim:
        with pytest.raises(NetmikoAuthenticationException):
            await off(ConnectHandler, **ios_params(sim, password="wrong"))
        assert sim.auth_failures >= 1

        def bad_enable() -> None:
            with ConnectHandler(**ios_params(sim, secret="wrong")) as conn:
                conn.enable()

        with pytest.raises(ValueError, match="enable mode"):
            await off(bad_enable)


async def test_ios_unreachable_fails_fast() -> None:
    with closed_port() as port:
        start = time.monotonic()
        with pytest.raises(NetmikoTimeoutException):
            await off(
                ConnectHandler,
                device_type="cisco_ios",
                host="127.0.0.1",
                port=port,
                username="admin",
                password="secret",
                conn_timeout=2,
            )
        assert time.monotonic() - start < 5

    # A port that accepts TCP but never speaks SSH: the banner timeout ends it.
    writers: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        start = time.monotonic()
        with pytest.raises(NetmikoTimeoutException):
            await off(
                ConnectHandler,
                device_type="cisco_ios",
                host="127.0.0.1",
                port=port,
                username="admin",
                password="secret",
                conn_timeout=2,
                banner_timeout=1,
            )
        assert time.monotonic() - start < 6
    finally:
        server.close()
        for w in writers:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        await server.wait_closed()


async def test_ios_host_key_changed_refused_until_accepted(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    async with serving(IosSim()) as sim:
        # Unknown host with strict checking: refused.
        known.write_text("")
        with pytest.raises(NetmikoTimeoutException, match="not found in known_hosts"):
            await off(ConnectHandler, **strict_ios_params(sim, known))

        def prompt() -> str:
            with ConnectHandler(**strict_ios_params(sim, known)) as conn:
                return conn.find_prompt()

        known.write_text(sim.known_hosts_line())
        assert await off(prompt) == "sw1#"

        old = sim.host_key_public
        await sim.restart(new_host_key=True)
        assert sim.host_key_public != old
        with pytest.raises(NetmikoTimeoutException, match="does not match"):
            await off(prompt)

        # The operator accepts the new key.
        known.write_text(sim.known_hosts_line())
        assert await off(prompt) == "sw1#"


async def test_ios_slow_device_hits_the_read_timeout() -> None:
    async with serving(IosSim()) as sim:

        def session() -> float:
            conn = ConnectHandler(**ios_params(sim))
            try:
                sim.slow = 1.5  # from now on every command takes 1.5 s
                start = time.monotonic()
                with pytest.raises(ReadTimeout):
                    conn.send_command("show running-config", read_timeout=0.5)
                return time.monotonic() - start
            finally:
                sim.slow = 0.0
                # After a read timeout the session is out of step: drop it, do not reuse it.
                conn.disconnect()

        elapsed = await off(session)
        assert 0.4 < elapsed < 1.4


async def test_ios_client_dropping_mid_command_leaves_nothing_behind() -> None:
    async with serving(IosSim(slow=0.5)) as sim:

        def drop() -> None:
            conn = ConnectHandler(**ios_params(sim))
            conn.write_channel("show running-config\n")
            time.sleep(0.1)
            assert conn.remote_conn_pre is not None
            conn.remote_conn_pre.close()  # the TCP connection goes, no "exit"

        await off(drop)
        for _ in range(50):
            if sim.sessions == 0 and not sim._tasks:
                break
            await asyncio.sleep(0.05)
        assert sim.sessions == 0
        assert not sim._tasks


# -- NETCONF over SSH with ncclient --------------------------------------------------------------
def nc_connect(sim: NetconfSim, **extra: Any) -> manager.Manager:
    params: dict[str, Any] = {
        "host": sim.host,
        "port": sim.port,
        "username": sim.username,
        "password": sim.password,
        "hostkey_verify": False,
        "look_for_keys": False,
        "allow_agent": False,
        "timeout": 5,
    }
    params.update(extra)
    return manager.connect(**params)


def iface(name: str, **leaves: str) -> str:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in leaves.items())
    return (
        f'<config xmlns="{BASE}"><interfaces xmlns="{NS}"><interface><name>{name}</name>'
        f"{body}</interface></interfaces></config>"
    )


VLAN = "t:interfaces/t:interface[t:name='ge-0/0/1']/t:vlan"
DESC = "t:interfaces/t:interface[t:name='ge-0/0/1']/t:description"


async def test_nc_get_config_edit_validate_commit() -> None:
    async with serving(NetconfSim()) as sim:

        def session() -> tuple[list[str], str, str, str]:
            with nc_connect(sim) as m:
                caps = list(m.server_capabilities)
                before = m.get_config(source="running").data_xml
                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="10"))
                m.edit_config(
                    target="candidate", config=iface("ge-0/0/2", description="to olt2", vlan="20")
                )
                m.validate(source="candidate")
                m.commit()
                filtered = m.get_config(
                    source="running",
                    filter=(
                        "subtree",
                        f'<interfaces xmlns="{NS}"><interface><name>ge-0/0/2</name>'
                        "<vlan/></interface></interfaces>",
                    ),
                ).data_xml
                got = m.get().data_xml
                return caps, before, filtered, got

        caps, before, filtered, got = await off(session)
        assert "urn:ietf:params:netconf:base:1.1" in caps
        assert "urn:ietf:params:netconf:capability:candidate:1.0" in caps
        assert "urn:ietf:params:netconf:capability:confirmed-commit:1.1" in caps
        assert "<hostname>r1</hostname>" in before
        assert "<vlan>20</vlan>" in filtered
        assert "ge-0/0/1" not in filtered and "description" not in filtered
        assert "to olt2" in got
        assert sim.running_value(VLAN) == ["10"]
        assert sim.commits == 1
        assert sim.rpcs[:2] == ["get-config", "edit-config"]
        assert "commit" in sim.rpcs


async def test_nc_invalid_edit_rejected_running_unchanged() -> None:
    async with serving(NetconfSim()) as sim:
        before = sim.running_xml()

        def session() -> tuple[RPCError, RPCError, RPCError, str]:
            with nc_connect(sim) as m:
                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="5000"))
                with pytest.raises(RPCError) as at_validate:
                    m.validate(source="candidate")
                with pytest.raises(RPCError) as at_commit:
                    m.commit()
                m.discard_changes()
                m.edit_config(target="candidate", config=iface("ge-0/0/1", description="INVALID"))
                with pytest.raises(RPCError) as desc:
                    m.commit()
                m.discard_changes()
                return at_validate.value, at_commit.value, desc.value, sim.candidate_xml()

        at_validate, at_commit, desc, candidate = await off(session)
        for err in (at_validate, at_commit, desc):
            assert err.tag == "invalid-value"
            assert err.type == "application"
        assert "outside 1..4094" in at_validate.message
        assert at_commit.path == "/interfaces/interface[name='ge-0/0/1']/vlan"
        assert "description" in desc.message
        assert sim.running_xml() == before
        assert candidate == before  # discard-changes
        assert sim.commits == 0


async def test_nc_confirmed_commit_reverts_unless_confirmed() -> None:
    async with serving(NetconfSim()) as sim:

        def session() -> tuple[list[str], list[str], list[str], list[str]]:
            with nc_connect(sim) as m:
                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="20"))
                m.commit(confirmed=True, timeout="1")
                during = sim.running_value(VLAN)
                time.sleep(1.6)
                reverted = sim.running_value(VLAN)

                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="30"))
                m.commit(confirmed=True, timeout="1")
                m.commit()  # the confirming commit
                time.sleep(1.3)
                kept = sim.running_value(VLAN)

                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="40"))
                m.commit(confirmed=True, timeout="60")
                m.cancel_commit()
                cancelled = sim.running_value(VLAN)
                return during, reverted, kept, cancelled

        during, reverted, kept, cancelled = await off(session)
        assert during == ["20"]
        assert reverted == []
        assert kept == ["30"]
        assert cancelled == ["30"]
        assert sim.reverts == 2
        assert not sim.confirmed_pending


async def test_nc_confirmed_commit_reverts_when_its_session_ends() -> None:
    async with serving(NetconfSim()) as sim:

        def session() -> None:
            with nc_connect(sim) as m:
                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="20"))
                m.commit(confirmed=True, timeout="60")

        await off(session)
        for _ in range(40):
            if not sim.confirmed_pending:
                break
            await asyncio.sleep(0.05)
        assert sim.running_value(VLAN) == []
        assert sim.reverts == 1


async def test_nc_locks_between_sessions() -> None:
    async with serving(NetconfSim()) as sim:

        def sessions() -> tuple[RPCError, RPCError, list[int]]:
            with nc_connect(sim) as a, nc_connect(sim) as b:
                a.lock(target="candidate")
                with pytest.raises(RPCError) as denied:
                    b.lock(target="candidate")
                with pytest.raises(RPCError) as in_use:
                    b.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="7"))
                holders = [sim.locks["candidate"] or 0, int(a.session_id)]
                a.unlock(target="candidate")
                b.lock(target="candidate")
                b.unlock(target="candidate")
                return denied.value, in_use.value, holders

        denied, in_use, (holder, a_id) = await off(sessions)
        assert denied.tag == "lock-denied"
        assert denied.info is not None and f"<session-id>{a_id}</session-id>" in denied.info
        assert in_use.tag == "in-use"
        assert holder == a_id
        assert sim.locks == {"running": None, "candidate": None}


async def test_nc_writable_running_rollback_on_error() -> None:
    async with serving(NetconfSim()) as sim:
        before = sim.running_xml()
        edit = (
            f'<config xmlns="{BASE}" xmlns:nc="{BASE}"><system xmlns="{NS}">'
            "<location>pop-1</location></system>"
            f'<interfaces xmlns="{NS}"><interface nc:operation="create"><name>ge-0/0/1</name>'
            "</interface></interfaces></config>"
        )

        def session() -> tuple[RPCError, RPCError, list[str]]:
            with nc_connect(sim) as m:
                with pytest.raises(RPCError) as exists:
                    m.edit_config(target="running", config=edit, error_option="rollback-on-error")
                with pytest.raises(RPCError) as invalid:
                    m.edit_config(target="running", config=iface("ge-0/0/1", vlan="0"))
                m.edit_config(target="running", config=iface("ge-0/0/1", vlan="11"))
                return exists.value, invalid.value, sim.running_value(VLAN)

        exists, invalid, vlan = await off(session)
        assert exists.tag == "data-exists"
        assert invalid.tag == "invalid-value"
        assert vlan == ["11"]
        assert "pop-1" not in sim.running_xml()
        assert before != sim.running_xml()

    async with serving(NetconfSim(writable_running=False)) as sim:

        def refused() -> tuple[list[str], RPCError]:
            with nc_connect(sim) as m:
                with pytest.raises(RPCError) as err:
                    m.edit_config(target="running", config=iface("ge-0/0/1", vlan="11"))
                return list(m.server_capabilities), err.value

        caps, err = await off(refused)
        assert "urn:ietf:params:netconf:capability:writable-running:1.0" not in caps
        assert err.tag == "operation-not-supported"


async def test_nc_end_of_message_framing() -> None:
    async with serving(NetconfSim(base11=False)) as sim:

        def session() -> list[str]:
            with nc_connect(sim) as m:
                m.edit_config(target="candidate", config=iface("ge-0/0/1", vlan="12"))
                m.commit()
                return list(m.server_capabilities)

        caps = await off(session)
        assert "urn:ietf:params:netconf:base:1.1" not in caps
        assert sim.running_value(VLAN) == ["12"]


async def test_nc_wrong_password_and_unreachable() -> None:
    async with serving(NetconfSim()) as sim:
        with pytest.raises(AuthenticationError):
            await off(nc_connect, sim, password="wrong")
        assert sim.auth_failures >= 1
    with closed_port() as port:
        start = time.monotonic()
        with pytest.raises(SSHError, match="Could not open socket"):
            await off(
                manager.connect,
                host="127.0.0.1",
                port=port,
                username="admin",
                password="secret",
                hostkey_verify=False,
                look_for_keys=False,
                allow_agent=False,
                timeout=2,
            )
        assert time.monotonic() - start < 5


async def test_nc_host_key_changed_refused_until_accepted(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host 127.0.0.1\n    UserKnownHostsFile {known}\n")
    async with serving(NetconfSim()) as sim:
        known.write_text(sim.known_hosts_line())

        def via_known_hosts() -> str:
            with nc_connect(sim, hostkey_verify=True, ssh_config=str(ssh_config)) as m:
                return str(m.session_id)

        def via_pinned(b64: str) -> str:
            with nc_connect(sim, hostkey_verify=True, hostkey_b64=b64) as m:
                return str(m.session_id)

        old_b64 = sim.host_key_b64
        assert await off(via_known_hosts)
        assert await off(via_pinned, old_b64)

        await sim.restart(new_host_key=True)
        with pytest.raises(SSHUnknownHostError):
            await off(via_known_hosts)
        with pytest.raises(SSHUnknownHostError):
            await off(via_pinned, old_b64)

        known.write_text(sim.known_hosts_line())  # the operator accepts the new key
        assert await off(via_known_hosts)
        assert await off(via_pinned, sim.host_key_b64)
