"""Interop with peers we did not write: FreeRADIUS's radtest/radclient (PAP, CHAP,
MS-CHAPv1), wpa_supplicant's eapol_test (EAP-MD5), and an MS-CHAPv2 client built from the
RFC 2759 §9.2 values with hashlib alone (pyrad carries the packets)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary

from daemons.radius.dictionary import SHIPPED
from tests.radius import vectors as v
from tests.radius.conftest import SECRET, RadiusServer
from tests.support import tool


def run(args: list[str], stdin: str = "", timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("method", ["pap", "chap", "mschap"])
def test_radtest(radius: RadiusServer, method: str) -> None:
    radtest = tool("radtest", "freeradius-utils")
    target = f"127.0.0.1:{radius.port}"
    ok = run(
        [radtest, "-t", method, "alice", "pw1", target, "0", SECRET.decode(), "0", "127.0.0.1"]
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Received Access-Accept" in ok.stdout
    assert "Mikrotik-Rate-Limit" in ok.stdout or "Vendor-Specific" in ok.stdout
    bad = run(
        [radtest, "-t", method, "alice", "wrong", target, "0", SECRET.decode(), "0", "127.0.0.1"]
    )
    assert bad.returncode == 1 and "Received Access-Reject" in bad.stdout, bad.stdout


def test_radclient_attribute_lists(radius: RadiusServer) -> None:
    radclient = tool("radclient", "freeradius-utils")
    args = [
        radclient,
        "-x",
        "-r",
        "2",
        "-t",
        "2",
        f"127.0.0.1:{radius.port}",
        "auth",
        SECRET.decode(),
    ]
    ok = run(args, 'User-Name = "grace", User-Password = "pw7", Message-Authenticator = 0x00\n')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Framed-IP-Address = 100.64.0.7" in ok.stdout
    chap = run(args, 'User-Name = "alice", CHAP-Password = "pw1"\n')
    assert chap.returncode == 0 and "Access-Accept" in chap.stdout, chap.stdout
    rejected = run(
        args, 'User-Name = "carol", User-Password = "pw3", Response-Packet-Type = Access-Reject\n'
    )
    assert rejected.returncode == 0 and "Reply-Message" in rejected.stdout, rejected.stdout


def eapol_conf(tmp_path: Path, user: str, password: str) -> Path:
    conf = tmp_path / f"eap-md5-{user}.conf"
    conf.write_text(
        "network={\n\tkey_mgmt=IEEE8021X\n\teap=MD5\n"
        f'\tidentity="{user}"\n\tpassword="{password}"\n\teapol_flags=0\n}}\n'
    )
    return conf


def test_eapol_test_eap_md5(radius: RadiusServer, tmp_path: Path) -> None:
    eapol = tool("eapol_test", "eapoltest")

    def attempt(user: str, password: str) -> subprocess.CompletedProcess[str]:
        return run(
            [
                eapol,
                "-n",
                "-c",
                str(eapol_conf(tmp_path, user, password)),
                "-a",
                "127.0.0.1",
                "-p",
                str(radius.port),
                "-s",
                SECRET.decode(),
                "-t",
                "5",
            ]
        )

    ok = attempt("alice", "pw1")
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert "CTRL-EVENT-EAP-SUCCESS" in ok.stdout
    bad = attempt("alice", "nope")
    assert bad.returncode == 253, bad.stdout[-3000:]  # Access-Reject
    assert "CTRL-EVENT-EAP-FAILURE" in bad.stdout


def _salt_decrypt(value: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2548 §2.4.2 decryption, written here independently of the codec."""
    salt, body, out = value[:2], value[2:], b""
    prev = authenticator + salt
    for i in range(0, len(body), 16):
        block = body[i : i + 16]
        key = hashlib.md5(secret + prev).digest()
        out += bytes(a ^ b for a, b in zip(block, key, strict=True))
        prev = block
    return out[1 : 1 + out[0]]


def test_mschapv2_exchange_from_rfc_2759_values(radius: RadiusServer) -> None:
    c = Client(
        server="127.0.0.1", authport=radius.port, secret=SECRET, dict=Dictionary(str(SHIPPED))
    )
    c.timeout, c.retries = 2, 1
    req = c.CreateAuthPacket(code=packet.AccessRequest, User_Name="User")
    req["MS-CHAP-Challenge"] = v.RFC2759_AUTHENTICATOR_CHALLENGE
    req["MS-CHAP2-Response"] = (
        b"\x07\x00" + v.RFC2759_PEER_CHALLENGE + bytes(8) + v.RFC2759_NT_RESPONSE
    )
    reply = c.SendPacket(req)
    assert reply.code == packet.AccessAccept
    assert reply["MS-CHAP2-Success"] == [b"\x07" + v.RFC2759_AUTHENTICATOR_RESPONSE]
    raw = reply.raw_packet
    send = recv = None
    pos = 20
    while pos < len(raw):
        atype, alen = raw[pos], raw[pos + 1]
        value = raw[pos + 2 : pos + alen]
        if atype == 26 and value[:4] == (311).to_bytes(4, "big"):
            if value[4] == 16:
                send = _salt_decrypt(value[6:], SECRET, req.authenticator)
            elif value[4] == 17:
                recv = _salt_decrypt(value[6:], SECRET, req.authenticator)
        pos += alen
    assert send == v.RFC3079_3_5_3_SEND_START_KEY_128
    assert recv == v.COMPUTED_3079_SERVER_RECV_START_KEY_128
