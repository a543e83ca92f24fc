"""Interop with pyrad's client (an implementation we did not write): PAP and CHAP, with and
without Message-Authenticator, over IPv4 and IPv6, and the reply attributes per vendor."""

from __future__ import annotations

import hashlib
import os

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from daemons.radius.dictionary import SHIPPED
from tests.radius.conftest import SECRET, STRICT_SECRET, RadiusServer

DICT = Dictionary(str(SHIPPED))


def client(
    radius: RadiusServer, host: str = "127.0.0.1", secret: bytes = SECRET, source: str | None = None
) -> Client:
    c = Client(server=host, authport=radius.port, secret=secret, dict=DICT)
    c.timeout, c.retries = 2, 1
    if source:
        c.bind((source, 0))
    return c


def pap(c: Client, user: str, password: str, ma: bool) -> packet.Packet:
    # pyrad 2.6 adds Message-Authenticator by default; say so either way.
    req = c.CreateAuthPacket(code=packet.AccessRequest, User_Name=user, message_authenticator=ma)
    req["User-Password"] = req.PwCrypt(password)
    req["Calling-Station-Id"] = "AA-BB-CC-DD-EE-FF"
    reply = c.SendPacket(req)  # pyrad checks the Response Authenticator itself
    reply.request_authenticator = req.authenticator
    return reply


def chap(
    c: Client, user: str, password: str, ma: bool, with_challenge: bool = True
) -> packet.Packet:
    req = c.CreateAuthPacket(code=packet.AccessRequest, User_Name=user, message_authenticator=ma)
    req.authenticator = packet.Packet.CreateAuthenticator()
    ident = 42
    challenge = os.urandom(16) if with_challenge else req.authenticator
    if with_challenge:
        req["CHAP-Challenge"] = challenge
    req["CHAP-Password"] = (
        bytes((ident,)) + hashlib.md5(bytes((ident,)) + password.encode() + challenge).digest()
    )
    reply = c.SendPacket(req)
    reply.request_authenticator = req.authenticator
    return reply


@pytest.mark.parametrize("ma", [False, True], ids=["plain", "message-authenticator"])
def test_pap(radius: RadiusServer, ma: bool) -> None:
    c = client(radius)
    ok = pap(c, "alice", "pw1", ma)
    assert ok.code == packet.AccessAccept
    assert ok["Mikrotik-Rate-Limit"] == ["20M/100M"]
    assert ok["Framed-Pool"] == ["fiber"] and ok["Session-Timeout"] == [86400]
    assert ok.verify_message_authenticator(original_authenticator=ok.request_authenticator)
    assert pap(c, "alice", "wrong", ma).code == packet.AccessReject
    assert pap(c, "nobody", "pw1", ma).code == packet.AccessReject


@pytest.mark.parametrize("ma", [False, True], ids=["plain", "message-authenticator"])
def test_chap(radius: RadiusServer, ma: bool) -> None:
    c = client(radius)
    assert chap(c, "alice", "pw1", ma).code == packet.AccessAccept
    assert chap(c, "alice", "pw1", ma, with_challenge=False).code == packet.AccessAccept
    assert chap(c, "alice", "nope", ma).code == packet.AccessReject
    # A one-way hash cannot answer CHAP.
    assert chap(c, "bob", "pw2", ma).code == packet.AccessReject


def test_pap_against_a_stored_hash(radius: RadiusServer) -> None:
    c = client(radius)
    assert pap(c, "bob", "pw2", True).code == packet.AccessAccept
    assert pap(c, "bob", "pw1", True).code == packet.AccessReject


def test_states_binding_limits_and_static_ip(radius: RadiusServer) -> None:
    c = client(radius)
    disabled = pap(c, "carol", "pw3", True)
    assert disabled.code == packet.AccessReject
    assert "disabled" in disabled["Reply-Message"][0]
    walled = pap(c, "dave", "pw4", True)
    assert walled.code == packet.AccessAccept and walled["Filter-Id"] == ["walled-garden"]
    assert pap(c, "erin", "pw5", True).code == packet.AccessAccept  # AA-BB-... is bound
    limited = pap(c, "frank", "pw6", True)  # one live session already, limit 1
    assert limited.code == packet.AccessReject
    static = pap(c, "grace", "pw7", True)
    assert static["Framed-IP-Address"] == ["100.64.0.7"] and "Framed-Pool" not in static


def test_nas_requiring_message_authenticator(radius: RadiusServer) -> None:
    c = client(radius, secret=STRICT_SECRET, source="127.0.0.2")
    ok = pap(c, "alice", "pw1", ma=True)
    assert ok.code == packet.AccessAccept
    assert ok["Cisco-AVPair"] == [
        "ip:sub-qos-policy-in=fiber-100-up",
        "ip:sub-qos-policy-out=fiber-100-down",
    ]
    before = radius.metric(
        "netd_radius_drops_total", nas="strict", reason="missing_message_authenticator"
    )
    with pytest.raises(Timeout):
        pap(client(radius, secret=STRICT_SECRET, source="127.0.0.2"), "alice", "pw1", ma=False)
    after = radius.metric(
        "netd_radius_drops_total", nas="strict", reason="missing_message_authenticator"
    )
    assert after >= before + 1


def test_ipv6_and_prefix_nas(radius: RadiusServer) -> None:
    ok = pap(client(radius, host="::1"), "alice", "pw1", True)
    assert ok.code == packet.AccessAccept
    assert ok["Huawei-Output-Average-Rate"] == [100_000_000]
    lab = pap(client(radius, source="127.0.1.77"), "alice", "pw1", True)
    assert lab["ERX-Qos-Profile-Name"] == ["fiber-100"]


def test_wrong_secret_is_silently_discarded(radius: RadiusServer) -> None:
    with pytest.raises(Timeout):
        pap(client(radius, secret=b"not-the-secret"), "alice", "pw1", ma=True)
    assert (
        radius.metric("netd_radius_drops_total", nas="lo", reason="bad_message_authenticator") >= 1
    )
