"""The pure cores of issue 28: realms (parse, match, decide, load), the proxy's packet
rewriting, home-server liveness and identifiers. From bytes, no sockets."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.core.policies import PolicyError, load_policies
from daemons.radius import proxy
from daemons.radius.codec import (
    Attr,
    Code,
    Packet,
    check_message_authenticator,
    check_request_authenticator,
    decode,
    encode_reply,
    encode_request,
    hide_password,
    salt_decrypt,
    salt_encrypt,
    unhide_password,
)
from daemons.radius.homeservers import Ids, ServerState, State, choose
from daemons.radius.realms import Action, HomePool, HomeServer, PoolType, load_realms

GOOD = """
[realm_parsing]
delimiters = ["@", "\\\\"]
[realm_parsing.nas.bng-1]
delimiters = ["/"]

[realms."isp.example"]
action = "proxy"
pool = "isp"
strip = false

[realms."*.roam.example"]
action = "proxy"
pool = "isp"

[realms."ours.example"]
action = "local"

[realms.DEFAULT]
action = "reject"
reason = "unknown realm"

[home_servers.a]
address = "192.0.2.1"
secret = "s3cret"

[home_servers.b]
address = "2001:db8::2"
secret_file = "b.secret"
require_message_authenticator = false
auth_port = 11812
acct_port = 11813

[home_server_pools.isp]
type = "load-balance"
servers = ["a", "b"]
"""


def policy_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "radius").mkdir(exist_ok=True)
    (tmp_path / "radius" / "realms.toml").write_text(text)
    (tmp_path / "b.secret").write_text("from-a-file\n")
    return tmp_path


def test_a_realm_policy_loads_and_decides(tmp_path: Path) -> None:
    policy = load_realms(load_policies(policy_dir(tmp_path, GOOD), 1))
    assert policy.home_servers["b"].secret == b"from-a-file"
    assert policy.home_servers["a"].require_message_authenticator  # BlastRADIUS by default
    assert not policy.home_servers["b"].require_message_authenticator
    assert policy.pools["isp"].type is PoolType.LOAD_BALANCE
    d = policy.decide("bob@ISP.example")
    assert (d.action, d.realm_name, d.user) == (Action.PROXY, "isp.example", "bob@ISP.example")
    d = policy.decide("ISP\\bob")
    assert (d.action, d.realm_name) == (Action.REJECT, "isp")
    assert policy.decide("alice@ours.example").user == "alice"  # strip is the default
    assert policy.decide("eve@x.roam.example").realm.name == "*.roam.example"
    assert policy.decide("carol").action is Action.LOCAL  # no NULL realm: local
    assert policy.decide("far@elsewhere.example").realm.reason == "unknown realm"
    # bng-1 writes realm/user: "@" means nothing from it
    assert policy.decide("isp.example/bob", "bng-1").realm_name == "isp.example"
    assert policy.decide("bob@isp.example", "bng-1").realm_name is None


def test_no_realms_means_everything_is_local(tmp_path: Path) -> None:
    policy = load_realms(load_policies(policy_dir(tmp_path, "# nothing\n"), 1))
    assert policy.decide("bob@isp.example").action is Action.LOCAL
    assert policy.decide("bob@isp.example").user == "bob@isp.example"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            ('pool = "isp"\nstrip = false', 'pool = "nope"\nstrip = false'),
            "no home server pool 'nope'",
        ),
        (('address = "192.0.2.1"', 'address = "not-an-ip"'), "is not an IP address"),
        (('type = "load-balance"', 'type = "random"'), "fail-over or load-balance"),
        (('secret = "s3cret"', 'secret = ""'), "secret must be 1 to 128 octets"),
        (('action = "local"', 'action = "maybe"'), "local, proxy or reject"),
        (('delimiters = ["/"]', 'delimiters = ["#"]'), "realm delimiter"),
        (('secret = "s3cret"', 'secret = "s3cret"\ntransport = "carrier-pigeon"'), "transport"),
    ],
)
def test_a_bad_realm_policy_is_one_line_naming_file_and_line(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(PolicyError) as err:
        load_realms(load_policies(policy_dir(tmp_path, text), 1))
    message = str(err.value)
    assert "radius/realms.toml line" in message and words in message, message
    assert "\n" not in message and "s3cret" not in message


def test_the_packaged_default_is_valid_and_proxies_nothing() -> None:
    from daemons import resources  # noqa: PLC0415

    root = resources.path("policies")
    tomllib.loads((root / "radius" / "realms.toml").read_text())
    assert not load_realms(load_policies(root, 1)).realms


# --- the proxy's bytes --------------------------------------------------------------------

NAS_SECRET, HOME_SECRET = b"nas-secret", b"home-secret"


def nas_request(password: bytes = b"pw", chap: bool = False) -> Packet:
    auth = os.urandom(16)
    attrs: list[tuple[int, bytes]] = [(Attr.USER_NAME, b"bob@isp.example")]
    if chap:
        attrs.append((Attr.CHAP_PASSWORD, bytes(17)))
    else:
        attrs.append((Attr.USER_PASSWORD, hide_password(password, NAS_SECRET, auth)))
    attrs.append((Attr.PROXY_STATE, b"upstream-of-us"))
    return decode(encode_request(Code.ACCESS_REQUEST, 5, attrs, NAS_SECRET, auth))


@given(st.binary(min_size=1, max_size=128).filter(lambda b: not b.endswith(b"\0")))
def test_user_password_is_re_hidden_for_the_home_server(password: bytes) -> None:
    pkt = nas_request(password)
    fwd = proxy.forward_of(pkt, NAS_SECRET, "bob", b"ours")
    raw, auth = proxy.upstream_request(fwd, 9, HOME_SECRET, os.urandom(16))
    up = decode(raw)
    assert up.identifier == 9 and up.get(Attr.USER_NAME) == b"bob"
    assert unhide_password(up.get(Attr.USER_PASSWORD) or b"", HOME_SECRET, auth) == password
    check_message_authenticator(up, HOME_SECRET, True)  # on every proxied packet
    assert up.get_all(Attr.PROXY_STATE) == [b"upstream-of-us", b"ours"]  # theirs kept, ours last


def test_chap_gets_its_challenge_when_the_authenticator_was_it() -> None:
    pkt = nas_request(chap=True)
    raw, _ = proxy.upstream_request(
        proxy.forward_of(pkt, NAS_SECRET, None, b"x"), 1, HOME_SECRET, os.urandom(16)
    )
    assert decode(raw).get(Attr.CHAP_CHALLENGE) == pkt.authenticator


def test_accounting_is_signed_and_its_delay_grows() -> None:
    attrs = [
        (Attr.USER_NAME, b"bob@isp.example"),
        (40, (1).to_bytes(4, "big")),
        (41, (3).to_bytes(4, "big")),
    ]
    pkt = decode(encode_request(Code.ACCOUNTING_REQUEST, 1, attrs, NAS_SECRET, message_auth=False))
    fwd = proxy.forward_of(pkt, NAS_SECRET, None, b"st")
    raw, _ = proxy.upstream_request(fwd, 2, HOME_SECRET, bytes(16), delay=60)
    up = decode(raw)
    check_request_authenticator(up, HOME_SECRET)
    assert up.get(Attr.MESSAGE_AUTHENTICATOR) is not None
    assert int.from_bytes(up.get(41) or b"", "big") == 63


def test_a_reply_is_checked_stripped_and_re_encrypted_for_the_nas() -> None:
    pkt = nas_request()
    fwd = proxy.forward_of(pkt, NAS_SECRET, None, b"ours")
    raw, auth = proxy.upstream_request(fwd, 3, HOME_SECRET, os.urandom(16))
    up = decode(raw)
    tunnel = b"\x01" + salt_encrypt(b"tunnel-pw", HOME_SECRET, auth, b"\x80\x01")
    reply = encode_reply(
        Code.ACCESS_ACCEPT, up, [(69, tunnel), (Attr.REPLY_MESSAGE, b"hi")], HOME_SECRET
    )
    checked = proxy.check_reply(reply, auth, HOME_SECRET, True)
    attrs = proxy.downstream_reply(
        checked, b"ours", HOME_SECRET, auth, NAS_SECRET, pkt.authenticator, lambda: b"\x81\x02"
    )
    assert (Attr.REPLY_MESSAGE, b"hi") in attrs
    assert all(t not in (Attr.PROXY_STATE, Attr.MESSAGE_AUTHENTICATOR) for t, _ in attrs)
    value = dict(attrs)[69]
    assert salt_decrypt(value[1:], NAS_SECRET, pkt.authenticator) == b"tunnel-pw"
    with pytest.raises(Exception, match="bad_authenticator"):
        proxy.check_reply(reply, os.urandom(16), HOME_SECRET, True)
    unsigned = encode_reply(Code.ACCESS_ACCEPT, up, [], HOME_SECRET, message_auth=False)
    with pytest.raises(Exception, match="missing_message_authenticator"):  # BlastRADIUS
        proxy.check_reply(unsigned, auth, HOME_SECRET, True)
    with pytest.raises(Exception, match="Proxy-State"):
        proxy.downstream_reply(
            checked,
            b"not-ours",
            HOME_SECRET,
            auth,
            NAS_SECRET,
            pkt.authenticator,
            lambda: b"\x81\x02",
        )


# --- liveness and identifiers --------------------------------------------------------------

SERVER = HomeServer(
    "a",
    "127.0.0.1",
    1812,
    1813,
    b"s",
    response_window=1,
    zombie_period=5,
    status_interval=2,
    answers_to_alive=2,
)


def test_alive_zombie_dead_alive() -> None:
    s = ServerState(SERVER, last_answer=0.0)
    s.timed_out(3.0)
    assert s.state is State.ALIVE  # an answer 3 s ago: not yet a zombie
    s.timed_out(6.0)
    assert s.state is State.ZOMBIE
    s.tick(10.0)
    assert s.state is State.ZOMBIE
    s.tick(11.0)
    assert s.state is State.DEAD
    assert s.probe_due(11.0) and not s.probe_due(12.0) and s.probe_due(13.0)
    s.answered(13.5, probe=False)  # a late answer to an old request does not revive it
    assert s.state is State.DEAD
    s.answered(14.0, probe=True)
    s.probe_lost(16.0)
    s.answered(18.0, probe=True)
    assert s.state is State.DEAD  # not twice in a row
    s.answered(20.0, probe=True)
    assert s.state is State.ALIVE
    assert [(a.value, b.value) for a, b in s.changes] == [
        ("alive", "zombie"),
        ("zombie", "dead"),
        ("dead", "alive"),
    ]


def test_choose_fails_over_and_balances() -> None:
    b = HomeServer("b", "127.0.0.2", 1812, 1813, b"s")
    states = {"a": ServerState(SERVER), "b": ServerState(b)}
    failover = HomePool("p", PoolType.FAILOVER, ("a", "b"))
    assert choose(failover, states).server.name == "a"  # type: ignore[union-attr]
    assert choose(failover, states, ["a"]).server.name == "b"  # type: ignore[union-attr]
    states["a"].state = State.DEAD
    assert choose(failover, states).server.name == "b"  # type: ignore[union-attr]
    assert choose(failover, states, ["b"]) is None
    states["a"].state = State.ALIVE
    balance = HomePool("p", PoolType.LOAD_BALANCE, ("a", "b"))
    states["a"].outstanding = 3
    assert choose(balance, states).server.name == "b"  # type: ignore[union-attr]
    assert {choose(balance, states, key=k).server.name for k in range(4)} == {"a", "b"}  # type: ignore[union-attr]


def test_ids_are_256_and_come_back() -> None:
    ids = Ids()
    taken = [ids.take() for _ in range(256)]
    assert sorted(t for t in taken if t is not None) == list(range(256))
    assert ids.take() is None
    ids.release(7)
    assert ids.take() == 7


def test_check_config_refuses_a_transport_this_build_cannot_open(tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415

    from daemons import resources  # noqa: PLC0415
    from tests.support import netd_env, run_netd  # noqa: PLC0415

    policies = tmp_path / "policies"
    shutil.copytree(resources.path("policies"), policies)
    (policies / "radius" / "realms.toml").write_text(
        GOOD.replace('secret = "s3cret"', 'secret = "s3cret"\ntransport = "tls"')
    )
    (policies / "b.secret").write_text("x\n")
    env = netd_env({"NETD_POLICIES_DIR": str(policies), "NETD_STATE_DIR": str(tmp_path / "s")})
    out = run_netd(env, tmp_path, "check-config")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1 and "realms.toml:" in lines[0] and "transport" in lines[0], lines
    assert "Traceback" not in out.stderr
    (policies / "radius" / "realms.toml").write_text(GOOD)
    ok = run_netd(env, tmp_path, "check-config")
    assert ok.returncode == 0 and "radius realms" in ok.stdout, ok.stdout + ok.stderr


def test_ids_of_several_channels_are_keys_of_each_channels_256() -> None:
    ids = Ids(3)
    keys = [ids.take() for _ in range(3 * 256)]
    assert sorted(k for k in keys if k is not None) == list(range(3 * 256))
    assert ids.take() is None
    ids.release(2 << 8 | 9)  # channel 2, identifier 9
    assert ids.take() == 2 << 8 | 9


def test_random_bytes_are_handed_out_once_across_refills() -> None:
    from daemons.radius.proxy_shell import RandomBytes  # noqa: PLC0415

    rand = RandomBytes(chunk=64)
    parts = [rand(16) for _ in range(10)]  # 160 bytes: refilled three times
    assert all(len(p) == 16 for p in parts) and len(set(parts)) == 10
    assert len(rand(100)) == 100  # more than a chunk at once
