"""The daemon under bad input and change: silent discards by reason, replays, the
Redis-only hot path, NAS changes by NOTIFY, write-through subscribers, SIGHUP, workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.radius.codec import Attr, Code, encode_request, hide_password
from daemons.radius.dictionary import SHIPPED
from daemons.store import api as api_store
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer, wait_until

DICT = Dictionary(str(SHIPPED))


def send_raw(
    radius: RadiusServer, data: bytes, source: str = "127.0.0.1", wait: float = 0.4
) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(wait)
        sock.sendto(data, ("127.0.0.1", radius.port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def pap_request(
    user: bytes, password: bytes, ident: int = 1, auth: bytes | None = None, secret: bytes = SECRET
) -> bytes:
    auth = auth or os.urandom(16)
    return encode_request(
        Code.ACCESS_REQUEST,
        ident,
        [(Attr.USER_NAME, user), (Attr.USER_PASSWORD, hide_password(password, secret, auth))],
        secret,
        auth,
    )


def accepted(radius: RadiusServer, user: str = "alice", password: str = "pw1") -> bool:
    reply = send_raw(radius, pap_request(user.encode(), password.encode()), wait=2)
    return reply is not None and reply[0] == Code.ACCESS_ACCEPT


BAD = {
    "truncated": b"\x01\x02\x00",
    "length_mismatch": b"\x01\x02\x00\x40" + bytes(16),
    "bad_attribute": b"\x01\x02\x00\x16" + bytes(16) + b"\x01\x00",
    "oversized": b"\x01\x02\x10\x01" + bytes(4200),
    "unknown_code": b"\x63\x02\x00\x14" + bytes(16),
    "unexpected_code": encode_request(Code.ACCOUNTING_REQUEST, 3, [(Attr.USER_NAME, b"x")], SECRET),
    "bad_message_authenticator": pap_request(b"alice", b"pw1", secret=b"wrong-secret"),
    "malformed": encode_request(
        Code.ACCESS_REQUEST,
        4,
        [(Attr.USER_NAME, b"alice"), (Attr.USER_PASSWORD, b"not-16-octets")],
        SECRET,
        bytes(16),
    ),
}


@pytest.mark.parametrize("reason", sorted(BAD))
def test_bad_input_is_discarded_and_counted(radius: RadiusServer, reason: str) -> None:
    before = radius.metric("netd_radius_drops_total", reason=reason)
    assert send_raw(radius, BAD[reason]) is None
    wait_until(lambda: radius.metric("netd_radius_drops_total", reason=reason) > before)
    assert radius.alive() and accepted(radius)


def test_unknown_source_is_dropped(radius: RadiusServer) -> None:
    before = radius.metric("netd_radius_drops_total", reason="unknown_nas")
    assert send_raw(radius, pap_request(b"alice", b"pw1"), source="127.0.0.9") is None
    wait_until(lambda: radius.metric("netd_radius_drops_total", reason="unknown_nas") > before)


def test_retransmit_gets_the_cached_reply_and_is_not_processed_twice(radius: RadiusServer) -> None:
    auth = os.urandom(16)
    data = pap_request(b"alice", b"pw1", ident=77, auth=auth)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(data, ("127.0.0.1", radius.port))
        first = sock.recv(4096)
        handled = radius.metric("netd_radius_responses_total", nas="lo", code="ACCESS_ACCEPT")
        dupes = radius.metric("netd_radius_duplicates_total", nas="lo")
        sock.sendto(data, ("127.0.0.1", radius.port))
        second = sock.recv(4096)
    assert first == second  # byte for byte: the same reply, not a new decision
    assert radius.metric("netd_radius_responses_total", nas="lo", code="ACCESS_ACCEPT") == handled
    assert radius.metric("netd_radius_duplicates_total", nas="lo") == dupes + 1


def test_status_server(radius: RadiusServer) -> None:
    c = Client(server="127.0.0.1", authport=radius.port, secret=SECRET, dict=DICT)
    c.timeout, c.retries = 2, 1
    req = c.CreateAuthPacket(code=packet.StatusServer)
    req.add_message_authenticator()
    assert c.SendPacket(req).code == packet.AccessAccept
    bare = encode_request(Code.STATUS_SERVER, 9, [], SECRET, os.urandom(16), message_auth=False)
    assert send_raw(radius, bare) is None  # RFC 5997 §3: Message-Authenticator is required


def test_hot_path_reads_no_postgres(radius: RadiusServer) -> None:
    assert accepted(radius)  # warm
    pg = radius.metric("netd_radius_subscriber_lookups_total", source="postgres")
    hits = radius.metric("netd_radius_subscriber_lookups_total", source="redis")
    for _ in range(20):
        assert accepted(radius)
    assert radius.metric("netd_radius_subscriber_lookups_total", source="postgres") == pg
    assert radius.metric("netd_radius_subscriber_lookups_total", source="redis") >= hits + 20


def test_lookups_are_counted_by_source(radius: RadiusServer) -> None:
    """Issue 30 counts a batch's Redis lookups at once: hits and "no such user" apart."""
    metric = "netd_radius_subscriber_lookups_total"
    first = radius.metric(metric, source="redis_negative") or 0
    for _ in range(50):  # PostgreSQL, then cached as negative in the background
        assert not accepted(radius, "nobody-f30", "x")
        if (radius.metric(metric, source="redis_negative") or 0) > first:
            break
        time.sleep(0.05)
    neg = radius.metric(metric, source="redis_negative")
    assert neg is not None and neg > first
    hits = radius.metric(metric, source="redis")
    for _ in range(3):
        assert not accepted(radius, "nobody-f30", "x")
        assert accepted(radius)
    assert radius.metric(metric, source="redis_negative") == neg + 3
    assert radius.metric(metric, source="redis") == hits + 3


async def test_subscriber_change_is_written_through(radius: RadiusServer) -> None:
    sealer = Sealer(radius.key)
    row = await store.fetch_subscriber_db(radius.pool, "alice")
    assert row is not None
    await store.upsert_subscriber(
        radius.pool, radius.cache, credentials(row, "newpass", "none", sealer)
    )
    try:
        assert not accepted(radius, "alice", "pw1")
        assert accepted(radius, "alice", "newpass")
    finally:
        await store.upsert_subscriber(radius.pool, radius.cache, row)
    assert accepted(radius, "alice", "pw1")


async def test_new_nas_is_live_without_restart(radius: RadiusServer) -> None:
    sealer = Sealer(radius.key)
    assert send_raw(radius, pap_request(b"alice", b"pw1"), source="127.0.0.5") is None
    await store.add_nas(
        radius.pool,
        store.NasRow(
            "late", "127.0.0.5/32", sealer.seal(SECRET, b"nas:late"), "wispr", False, 3799
        ),
    )
    try:

        def answered() -> bool:
            reply = send_raw(radius, pap_request(b"alice", b"pw1"), source="127.0.0.5")
            return reply is not None and reply[0] == Code.ACCESS_ACCEPT

        wait_until(answered, timeout=5)  # NOTIFY, not the 30 s refresh
    finally:
        await store.remove_nas(radius.pool, "late")
    wait_until(lambda: send_raw(radius, pap_request(b"alice", b"pw1"), source="127.0.0.5") is None)


def test_sighup_reloads_plans(radius: RadiusServer) -> None:
    policies = radius.proc.log_path.parent / "policies" / "radius" / "plans.toml"
    text = policies.read_text()
    policies.write_text(text.replace('download = "100M"', 'download = "150M"'))
    try:
        radius.proc.signal(signal.SIGHUP)

        def new_rate() -> bool:
            reply = send_raw(radius, pap_request(b"alice", b"pw1"), wait=2)
            return reply is not None and b"20M/150M" in reply

        wait_until(new_rate)
        policies.write_text(text + "\n[plans.broken]\ndownload = 'x'\nupload = 'y'\n")
        before = radius.metric("netd_policy_reloads_total", result="error")
        radius.proc.signal(signal.SIGHUP)
        wait_until(lambda: radius.metric("netd_policy_reloads_total", result="error") > before)
        assert accepted(radius)
    finally:
        policies.write_text(text)
        radius.proc.signal(signal.SIGHUP)


def test_reply_never_carries_or_logs_the_password(radius: RadiusServer) -> None:
    reply = send_raw(radius, pap_request(b"alice", b"wrong-pass-xyz"), wait=2)
    assert reply is not None and reply[0] == Code.ACCESS_REJECT
    time.sleep(0.2)
    out = radius.proc.output()
    assert "wrong-pass-xyz" not in out
    assert '"reason":"bad_password"' in out and '"user":"alice"' in out


def test_flood_of_garbage_keeps_serving(radius: RadiusServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for i in range(3000):
            sock.sendto(os.urandom(20 + i % 200), ("127.0.0.1", radius.port))
    assert radius.alive() and accepted(radius)
    with pytest.raises(Timeout):
        c = Client(server="127.0.0.1", authport=radius.port, secret=b"x", dict=DICT)
        c.timeout, c.retries = 0.5, 1
        c.SendPacket(c.CreateAuthPacket(code=packet.AccessRequest, User_Name="a"))


def test_unavailable_ipv6_address_is_skipped_with_a_warning(radius: RadiusServer) -> None:
    # The fixture lists 2001:db8::1, which this host does not have.
    assert "IPv6 address not available" in radius.proc.output()
    assert accepted(radius)


async def test_api_managed_plan_reaches_the_daemon_by_notify(radius: RadiusServer) -> None:
    """A plan written through the API's store verb (NOTIFY netd_plans_changed) is in force
    within moments, without SIGHUP; removing it again restores the file plans alone."""
    sealer = Sealer(radius.key)
    await api_store.put_plan(
        radius.pool, "api-turbo", {"download": "300M", "upload": "30M", "session_timeout": 4321}
    )
    row = credentials(store.SubscriberRow("turbo", plan="api-turbo"), "pw-t", "none", sealer)
    await store.upsert_subscriber(radius.pool, radius.cache, row)
    try:

        def turbo() -> bool:
            reply = send_raw(radius, pap_request(b"turbo", b"pw-t"), wait=2)
            return reply is not None and reply[0] == Code.ACCESS_ACCEPT and b"30M/300M" in reply

        wait_until(turbo, timeout=5)  # NOTIFY, not the 30 s refresh
    finally:
        await api_store.delete_plan(radius.pool, "api-turbo")
        await store.remove_subscriber(radius.pool, radius.cache, "turbo")


def test_status_server_on_the_accounting_port(radius: RadiusServer) -> None:
    """RFC 5997 §4: Status-Server sent to the accounting port is answered with an
    Accounting-Response (issue 21; it was dropped as unexpected_code). radclient is the NAS."""
    port = f"127.0.0.1:{radius.acct_port}"
    out = subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", "2", port, "status", SECRET.decode()],
        input=b"Message-Authenticator = 0x00\n",
        capture_output=True,
        timeout=15,
        check=False,
    )
    text = out.stdout.decode() + out.stderr.decode()
    assert "Received Accounting-Response" in text, text
    # RFC 5997 §3: without Message-Authenticator it is discarded, as on the auth port
    bare = encode_request(Code.STATUS_SERVER, 9, [], SECRET, os.urandom(16), message_auth=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(bare, ("127.0.0.1", radius.acct_port))
        with pytest.raises(TimeoutError):
            sock.recv(4096)
