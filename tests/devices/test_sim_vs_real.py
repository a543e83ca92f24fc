"""Our NETCONF simulator checked against the real server where both can do the same thing
(it shares our assumptions; netconfd does not): the same client steps, the same answers.

- a candidate lock held by another session: ``lock-denied`` (error-type protocol) with the
  holder's session-id in error-info (RFC 6241 7.5);
- an edit of that locked candidate by someone else: ``in-use``;
- a confirmed commit not confirmed in time: running goes back to what it was (8.4);
- a value of the wrong type: ``invalid-value`` with an error-path naming the leaf.
The job engine reads these answers (locked: retried; the others: rejected with details), so
the simulator's answers must be the real server's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ncclient import manager
from ncclient.operations.rpc import RPCError

from tests.devices.netconf_sim import NS, NetconfSim
from tests.devices.peers import netconf_server

pytestmark = pytest.mark.timeout(90)
SYS = "urn:ietf:params:xml:ns:yang:ietf-system"
IFS = "urn:ietf:params:xml:ns:yang:ietf-interfaces"


@dataclass
class Server:
    port: int
    user: str
    password: str
    value: str  # an edit that sets a value: {} is the value
    bad: str  # an edit with a value of the wrong type
    leaf: str  # the local name of the leaf ``bad`` names


@contextlib.asynccontextmanager
async def server(kind: str, tmp_path: Path) -> AsyncIterator[Server]:
    if kind == "simulator":
        sim = NetconfSim()
        await sim.start()
        try:
            yield Server(
                sim.port,
                "admin",
                "secret",
                f'<system xmlns="{NS}"><location>{{}}</location></system>',
                f'<interfaces xmlns="{NS}"><interface><name>ge-0/0/1</name>'
                "<enabled>maybe</enabled></interface></interfaces>",
                "enabled",
            )
        finally:
            await sim.stop()
        return
    with netconf_server(tmp_path) as (sshd, _nc):
        yield Server(
            sshd.port,
            sshd.user.name,
            sshd.user.password,
            f'<system xmlns="{SYS}"><location>{{}}</location></system>',
            f'<interfaces xmlns="{IFS}"><interface><name>eth0</name>'
            "<enabled>maybe</enabled></interface></interfaces>",
            "enabled",
        )


@contextlib.contextmanager
def session(s: Server) -> Iterator[Any]:
    m = manager.connect(
        host="127.0.0.1",
        port=s.port,
        username=s.user,
        password=s.password,
        hostkey_verify=False,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        yield m
    finally:
        m.close_session()


def cfg(body: str) -> str:
    return f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</config>'


def answers(s: Server) -> dict[str, Any]:
    """The same client steps against one server; what it answered."""
    out: dict[str, Any] = {}
    with session(s) as a, session(s) as b:
        a.lock("candidate")
        try:
            b.lock("candidate")
        except RPCError as exc:
            out["lock"] = (exc.type, exc.tag, "session-id" in (exc.info or ""))
        try:
            b.edit_config(target="candidate", config=cfg(s.value.format("b")))
        except RPCError as exc:
            out["edit locked"] = exc.tag
        a.unlock("candidate")
        try:
            a.edit_config(target="candidate", config=cfg(s.bad))
        except RPCError as exc:
            out["bad value"] = (exc.tag, (exc.path or "").strip().endswith(s.leaf))
        a.discard_changes()
        before = str(a.get_config(source="running").data_xml).count("confirm-me")
        a.edit_config(target="candidate", config=cfg(s.value.format("confirm-me")))
        a.commit(confirmed=True, timeout="2")
        out["during"] = str(a.get_config(source="running").data_xml).count("confirm-me") - before
    return out


@pytest.mark.parametrize("kind", ["simulator", "netconfd"])
async def test_the_simulator_answers_as_the_real_server(kind: str, tmp_path: Path) -> None:
    async with server(kind, tmp_path) as s:
        got = await asyncio.to_thread(answers, s)
        await asyncio.sleep(3.5)  # past the confirm-timeout, the session gone

        def after() -> int:
            with session(s) as m:
                return str(m.get_config(source="running").data_xml).count("confirm-me")

        got["after timeout"] = await asyncio.to_thread(after)
    assert got == {
        "lock": ("protocol", "lock-denied", True),
        "edit locked": "in-use",
        "bad value": ("invalid-value", True),
        "during": 1,
        "after timeout": 0,
    }, (kind, got)
