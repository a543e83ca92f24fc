"""SNMPv3 traps and informs from net-snmp's snmptrap and snmpinform, through pysnmp's USM:
authPriv with SHA/AES and MD5/DES, sender engine IDs learnt, informs acknowledged after
engine discovery, and refusals (wrong passphrase, unknown user, too many engines)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from daemons.poller.client import Credentials
from daemons.poller.traps import Trap, decode
from daemons.poller.trapv3 import V3Receiver

SHA_AES = Credentials(
    "3", user="trapper", auth="sha", auth_key="authpass123", priv="aes", priv_key="privpass123"
)
MD5_DES = Credentials(
    "3", user="olduser", auth="md5", auth_key="authpass456", priv="des", priv_key="privpass456"
)
SHA256 = Credentials("3", user="authonly", auth="sha256", auth_key="authpass789")


def _args(c: Credentials, auth_key: str | None = None) -> list[str]:
    names = {"sha": "SHA", "md5": "MD5", "sha256": "SHA-256", "aes": "AES", "des": "DES"}
    out = ["-v3", "-u", c.user, "-a", names[c.auth], "-A", auth_key or c.auth_key]
    if c.priv:
        return [*out, "-l", "authPriv", "-x", names[c.priv], "-X", c.priv_key]
    return [*out, "-l", "authNoPriv"]


class Sender:
    """Runs a net-snmp tool and answers its datagrams with the receiver, both bounded."""

    def __init__(self, receiver: V3Receiver, tmp: Path) -> None:
        self.receiver = receiver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MIBS": "",
            "HOME": str(tmp),
            "SNMP_PERSISTENT_DIR": str(tmp / "snmp"),
        }
        self.refusals: list[str] = []

    def run(self, tool: str, *args: str) -> tuple[int, list[Trap]]:
        exe = shutil.which(tool)
        assert exe, f"{tool} is missing: apt-get install snmp (.ci/run installs it)"
        proc = subprocess.Popen(
            [exe, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        got: list[Trap] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                if proc.poll() is not None:
                    break
                continue
            traps, replies, refused = self.receiver.handle(data, addr)
            got += traps
            if refused:
                self.refusals.append(refused)
            for reply in replies:
                self.sock.sendto(reply, addr)
        rc = proc.wait(5)
        return rc, got

    def trap(
        self, creds: Credentials, engine: str, oid: str, *varbinds: str, key: str | None = None
    ) -> list[Trap]:
        rc, got = self.run(
            "snmptrap",
            *_args(creds, key),
            "-e",
            engine,
            f"127.0.0.1:{self.port}",
            "",
            oid,
            *varbinds,
        )
        assert rc == 0
        return got


@pytest.fixture
def sender(tmp_path: Path) -> Sender:
    return Sender(V3Receiver([SHA_AES, MD5_DES, SHA256], max_engines=3), tmp_path)


def test_traps_from_any_engine_with_each_protocol(sender: Sender) -> None:
    got = sender.trap(
        SHA_AES, "0x8000000001020304", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.5", "i", "5"
    )
    assert [(t.version, t.name, t.community, t.varbinds) for t in got] == [
        ("3", "linkDown", "trapper", {"1.3.6.1.2.1.2.2.1.1.5": 5})
    ]
    # The event names the user and the sender's engine (they were missing).
    event = got[0].event()
    assert (event["user"], event["engine_id"], event["context"]) == (
        "trapper",
        "8000000001020304",
        "",
    )
    assert sender.trap(SHA_AES, "0x8000000001020304", "1.3.6.1.6.3.1.1.5.4")[0].name == "linkUp"
    assert sender.trap(MD5_DES, "0x8000000001020305", "1.3.6.1.6.3.1.1.5.2")[0].name == "warmStart"
    assert sender.trap(SHA256, "0x8000000001020306", "1.3.6.1.4.1.5875.800.0.7")[0].trap_oid == (
        "1.3.6.1.4.1.5875.800.0.7"  # a vendor trap, by OID
    )
    assert len(sender.receiver.learnt) == 3


def test_an_inform_is_acknowledged(sender: Sender) -> None:
    rc, got = sender.run(
        "snmpinform",
        *_args(SHA_AES),
        "-r",
        "0",
        "-t",
        "3",
        f"127.0.0.1:{sender.port}",
        "",
        "1.3.6.1.6.3.1.1.5.1",
    )
    assert rc == 0  # snmpinform exits 0 only when the response came back
    assert [(t.name, t.inform) for t in got] == [("coldStart", True)]
    assert not sender.receiver.learnt  # an inform is sent to our engine ID


def test_refusals(sender: Sender) -> None:
    assert sender.trap(SHA_AES, "0x8000000001020307", "1.3.6.1.6.3.1.1.5.4", key="wrongpass1") == []
    nobody = Credentials(
        "3", user="nobody", auth="sha", auth_key="authpass123", priv="aes", priv_key="privpass123"
    )
    assert sender.trap(nobody, "0x8000000001020307", "1.3.6.1.6.3.1.1.5.4") == []
    assert sender.refusals == ["usm", "user"]
    assert not sender.receiver.learnt  # a failed trap keeps no engine slot
    for i in range(3):
        assert sender.trap(SHA_AES, f"0x800000000102031{i}", "1.3.6.1.6.3.1.1.5.4")
    assert sender.trap(SHA_AES, "0x8000000001020319", "1.3.6.1.6.3.1.1.5.4") == []
    assert sender.refusals[-1] == "engines"
    # Engines already learnt still work.
    assert sender.trap(SHA_AES, "0x8000000001020310", "1.3.6.1.6.3.1.1.5.4")


def test_garbage_is_malformed() -> None:
    receiver = V3Receiver([SHA_AES])
    for junk in (
        b"",
        b"\x30\x03\x02\x01\x03",
        b"\x30\x10\x02\x01\x03garbagegarbage",
        os.urandom(64),
    ):
        traps, replies, refused = receiver.handle(junk, ("127.0.0.1", 9))
        assert (traps, replies) == ([], []) and refused in ("malformed", "usm")


def test_v1_traps_carry_agent_address_and_enterprise(tmp_path: Path) -> None:
    """net-snmp's snmptrap -v1: a generic linkDown and a vendor trap, each with the agent
    address of the device and its enterprise (both were missing from the event), and an
    OCTET STRING holding NUL bytes that PostgreSQL's jsonb would refuse."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MIBS": "", "HOME": str(tmp_path)}
    exe = shutil.which("snmptrap")
    assert exe, "snmptrap is missing: apt-get install snmp (.ci/run installs it)"
    to = f"127.0.0.1:{sock.getsockname()[1]}"
    got = []
    for generic, specific, varbinds in (
        ("2", "0", ["1.3.6.1.2.1.2.2.1.1.3", "i", "3"]),
        ("6", "17", ["1.3.6.1.2.1.2.2.1.2.3", "x", "47693000"]),  # "Gi0" and a NUL
        ("6", "18", ["1.3.6.1.2.1.2.2.1.2.3", "x", "41004200"]),  # a NUL inside
    ):
        subprocess.run(
            [
                exe,
                "-v1",
                "-c",
                "public",
                to,
                "1.3.6.1.4.1.8072.4",
                "192.0.2.7",
                generic,
                specific,
                "",
                *varbinds,
            ],
            env=env,
            check=True,
            timeout=10,
        )
        got.append(decode(sock.recvfrom(65535)[0]))
    sock.close()
    link, vendor, odd = (t.event() for t in got)
    assert (link["trap"], link["agent_address"], link["enterprise"]) == (
        "linkDown",
        "192.0.2.7",
        "1.3.6.1.4.1.8072.4",
    )
    assert (vendor["oid"], vendor["agent_address"]) == ("1.3.6.1.4.1.8072.4.0.17", "192.0.2.7")
    assert vendor["varbinds"] == {"1.3.6.1.2.1.2.2.1.2.3": "Gi0"}
    assert odd["varbinds"] == {"1.3.6.1.2.1.2.2.1.2.3": "0x41004200"}  # raw, in hex
    assert "\\u0000" not in json.dumps([link, vendor, odd])
