"""The TLS-based EAP engine in memory (issue 29): a pyOpenSSL peer drives EAP-TLS through
``auth.authenticate`` and the exchange owner; bad input ends cleanly (a Reject with
EAP-Failure, or a DecodeError the shell drops), is counted, and releases the exchange."""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from prometheus_client import CollectorRegistry

from daemons import resources
from daemons.core.config import RadiusConfig
from daemons.core.policies import load_policies
from daemons.core.ratelog import RateLimitedLog
from daemons.radius import eap
from daemons.radius.auth import EngineConfig, Nas, Outcome, Subscriber, authenticate
from daemons.radius.codec import Attr, Code, DecodeError
from daemons.radius.dictionary import Dictionary
from daemons.radius.eap_exchanges import MAGIC, EapExchanges, tls_contexts
from daemons.radius.eap_tls import (
    FLAG_L,
    FLAG_M,
    TYPE_PEAP,
    TYPE_TLS,
    Reassembly,
    TlsError,
    encode_fragment,
    parse_fragment,
)
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.policy import load_policy
from tests.radius.eap_client import TlsPeer, client_context, request, run
from tests.radius.eap_pki import Pki, make_pki

DICT = Dictionary()
POLICY = load_policy(load_policies(resources.path("policies"), 1), DICT)
CFG = EngineConfig(DICT, POLICY, b"k" * 32, 30.0, ("md5", "peap", "ttls", "tls"))
NAS = Nas("ap1", ipaddress.ip_network("127.0.0.1/32"), b"s3cret", "generic", False)
ALICE = Subscriber("alice", plan="fiber-100", password=b"pw1")
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def owner(pki: Pki, **cfg: object) -> tuple[EapExchanges, RadiusMetrics]:
    radius = RadiusConfig(
        eap_cert=pki.server_cert,
        eap_key=pki.server_key,
        eap_ca=pki.ca,
        eap_crl=[pki.crl],
        eap_fragment_size=256,
        **cfg,  # type: ignore[arg-type]
    )
    metrics = RadiusMetrics(CollectorRegistry())
    return EapExchanges(
        radius, tls_contexts(radius), metrics, RateLimitedLog(logging.getLogger("t"))
    ), metrics


def ends(metrics: RadiusMetrics, how: str, method: str = "eap-tls") -> float:
    return float(metrics.eap_ends.labels(method, how)._value.get())


def peer(pki: Pki, stem: str = "alice", tls13: bool = False) -> TlsPeer:
    cert, key = pki.client(stem)
    return TlsPeer(client_context(str(pki.ca), str(cert), str(key), tls13))


@pytest.mark.parametrize("tls13", [False, True])
def test_eap_tls_in_memory_with_fragments_both_ways(pki: Pki, tls13: bool) -> None:
    exchanges, metrics = owner(pki)
    out = run(peer(pki, tls13=tls13), TYPE_TLS, NAS, CFG, exchanges, {"alice": ALICE}, NOW)
    assert out.code == Code.ACCESS_ACCEPT, out.reason
    keys = {a.name: a.value for a in out.attributes}
    assert len(keys["MS-MPPE-Recv-Key"]) == 32 and len(keys["MS-MPPE-Send-Key"]) == 32
    assert out.raw == ((Attr.EAP_MESSAGE, out.raw[0][1]),) and out.raw[0][1][0] == 3
    assert len(exchanges) == 0 and ends(metrics, "ok") == 1


def test_unknown_subscriber_and_bad_certificates(pki: Pki) -> None:
    exchanges, metrics = owner(pki)
    out = run(peer(pki), TYPE_TLS, NAS, CFG, exchanges, {}, NOW)
    assert out.code == Code.ACCESS_REJECT and out.reason == "unknown_user"
    for stem in ("expired", "revoked", "stranger"):
        out = run(peer(pki, stem), TYPE_TLS, NAS, CFG, exchanges, {"alice": ALICE}, NOW)
        assert out.code == Code.ACCESS_REJECT and out.reason == "eap_tls_handshake", stem
        assert out.raw[0][1][0] == eap.EapCode.FAILURE
    assert len(exchanges) == 0 and ends(metrics, "tls_handshake") == 3


def _start(exchanges: EapExchanges, kind: int = TYPE_TLS, now: float = NOW) -> tuple[bytes, int]:
    ident = eap.EapPacket(eap.EapCode.RESPONSE, 1, eap.EapType.IDENTITY, b"alice")
    out = authenticate(
        request(b"alice", ident, None), NAS, None, 0, CFG, now, bytes, exchanges=exchanges
    )
    assert isinstance(out, Outcome) and out.code == Code.ACCESS_CHALLENGE
    if kind != TYPE_PEAP:
        nak = eap.EapPacket(eap.EapCode.RESPONSE, 2, eap.EapType.NAK, bytes((kind,)))
        out = authenticate(
            request(b"alice", nak, None), NAS, None, 0, CFG, now, bytes, exchanges=exchanges
        )
        assert isinstance(out, Outcome)
    return dict(out.raw)[Attr.STATE], 2 if kind == TYPE_PEAP else 3


def _send(
    exchanges: EapExchanges, state: bytes, ident: int, data: bytes, now: float = NOW
) -> Outcome:
    packet = eap.EapPacket(eap.EapCode.RESPONSE, ident, TYPE_TLS, data)
    out = authenticate(
        request(b"alice", packet, state), NAS, None, 0, CFG, now, bytes, exchanges=exchanges
    )
    assert isinstance(out, Outcome)
    return out


def test_truncated_tls_record_is_rejected_and_released(pki: Pki) -> None:
    exchanges, metrics = owner(pki)
    state, ident = _start(exchanges)
    record = b"\x16\x03\x01" + struct.pack("!H", 512) + b"\x01" + bytes(40)  # says 512, has 41
    out = _send(exchanges, state, ident, encode_fragment(0, record))
    assert out.code == Code.ACCESS_REJECT and out.reason == "eap_tls_truncated"
    assert len(exchanges) == 0 and ends(metrics, "tls_truncated") == 1


def test_garbage_instead_of_a_client_hello(pki: Pki) -> None:
    exchanges, _ = owner(pki)
    state, ident = _start(exchanges)
    out = _send(exchanges, state, ident, encode_fragment(0, b"\x16\x03\x01\x00\x05hello"))
    assert out.code == Code.ACCESS_REJECT and out.reason == "eap_tls_handshake"
    assert len(exchanges) == 0


@pytest.mark.parametrize(
    "fragments",
    [
        [encode_fragment(FLAG_M, b"x" * 50)],  # a middle fragment first: no length
        [encode_fragment(FLAG_M, b"x" * 50, 60), encode_fragment(FLAG_M, b"y" * 50)],  # too long
        [encode_fragment(FLAG_M, b"x" * 50, 200), encode_fragment(0, b"y" * 50)],  # too short
        [encode_fragment(FLAG_M, b"x" * 50, 100), encode_fragment(FLAG_M, b"y", 999)],  # changed
        [encode_fragment(FLAG_M, b"x" * 10, 70_000)],  # beyond what we reassemble
    ],
    ids=["no-length", "overflow", "short", "length-changed", "huge"],
)
def test_fragments_out_of_order_are_rejected(pki: Pki, fragments: list[bytes]) -> None:
    exchanges, metrics = owner(pki)
    state, ident = _start(exchanges)
    for frag in fragments:
        out = _send(exchanges, state, ident, frag)
        if out.code == Code.ACCESS_CHALLENGE:  # our ACK of a fragment
            assert eap.eap_from_radius  # the ACK is an EAP-Request/TLS with flags 0
            ident = (ident + 1) & 0xFF
            continue
        break
    assert out.code == Code.ACCESS_REJECT and out.reason == "eap_tls_fragments"
    assert len(exchanges) == 0 and ends(metrics, "tls_fragments") == 1


def test_flag_only_and_empty_type_data() -> None:
    with pytest.raises(DecodeError):
        parse_fragment(b"")
    with pytest.raises(DecodeError):
        parse_fragment(bytes((FLAG_L,)) + b"\x00\x00")
    assert Reassembly().add(parse_fragment(b"\x00abc")) == b"abc"
    with pytest.raises(TlsError):
        Reassembly().add(parse_fragment(encode_fragment(0, b"abc", 4)))


def test_empty_type_data_is_dropped_and_the_exchange_released(pki: Pki) -> None:
    exchanges, metrics = owner(pki)
    state, ident = _start(exchanges)
    with pytest.raises(DecodeError):
        _send(exchanges, state, ident, b"")
    assert len(exchanges) == 0 and ends(metrics, "malformed") == 1


def test_a_flood_of_starts_stays_within_the_bound(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    exchanges, metrics = owner(pki, eap_max_exchanges=16)
    with caplog.at_level(logging.WARNING):
        for _ in range(500):
            _start(exchanges)
    assert len(exchanges) == 16
    assert ends(metrics, "evicted") == 500 - 16
    assert metrics.eap_exchanges._value.get() == 16
    assert len([r for r in caplog.records if "EAP exchange" in r.getMessage()]) == 1


def test_a_client_that_stops_halfway_is_released(pki: Pki) -> None:
    exchanges, metrics = owner(pki, eap_state_ttl=5)
    state, ident = _start(exchanges)
    assert len(exchanges) == 1
    # Any later access sweeps: the stalled exchange is gone, its State refused.
    _start(exchanges, now=NOW + 6)
    assert ends(metrics, "expired") == 1 and len(exchanges) == 1
    out = _send(exchanges, state, ident, b"\x00", now=NOW + 6)
    assert out.code == Code.ACCESS_REJECT and out.reason == "eap_bad_state"


def test_an_exchange_is_pinned_to_its_worker(pki: Pki) -> None:
    """Two processes: a State one handed out reaching the other is refused and counted."""
    first, _ = owner(pki)
    second, metrics = owner(pki)
    state, ident = _start(first)
    out = _send(second, state, ident, b"\x00")
    assert out.code == Code.ACCESS_REJECT and out.reason == "eap_other_worker"
    assert metrics.eap_ends.labels("unknown", "eap_other_worker")._value.get() == 1
    assert state.startswith(MAGIC)


def test_policy_narrows_methods_per_nas(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "radius").mkdir()
    (tmp_path / "radius" / "plans.toml").write_text(
        '[plans.default]\n[eap.nas]\n"ap1" = ["tls"]\n"bng" = ["md5"]\n'
    )
    policy = load_policy(load_policies(tmp_path, 1), DICT)
    assert policy.eap_nas_methods == {"ap1": ("tls",), "bng": ("md5",)}
    cfg = EngineConfig(DICT, policy, b"k" * 32, 30.0, ("md5", "peap", "ttls", "tls"))
    exchanges, _ = owner(pki)
    ident = eap.EapPacket(eap.EapCode.RESPONSE, 1, eap.EapType.IDENTITY, b"alice")
    out = authenticate(
        request(b"alice", ident, None), NAS, None, 0, cfg, NOW, bytes, exchanges=exchanges
    )
    assert isinstance(out, Outcome) and out.method == "eap-tls"  # TLS proposed first
    nak = eap.EapPacket(eap.EapCode.RESPONSE, 2, eap.EapType.NAK, bytes((TYPE_PEAP,)))
    out = authenticate(
        request(b"alice", nak, None), NAS, None, 0, cfg, NOW, bytes, exchanges=exchanges
    )
    assert isinstance(out, Outcome) and out.code == Code.ACCESS_REJECT
    (tmp_path / "radius" / "plans.toml").write_text(
        '[plans.default]\n[eap.nas]\n"ap1" = ["leap"]\n'
    )
    with pytest.raises(Exception, match="leap"):
        load_policy(load_policies(tmp_path, 1), DICT)


def _damage(kind: str, at: int, data: bytes) -> Iterator[bytes]:
    if kind == "truncate":
        yield data[: at % max(1, len(data))]
    elif kind == "flip":
        i = at % max(1, len(data))
        yield data[:i] + bytes((data[i] ^ 0x5A,)) + data[i + 1 :] if data else data
    else:
        yield data + bytes(at % 7)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    round_=st.integers(0, 12),
    kind=st.sampled_from(["truncate", "flip", "extend"]),
    at=st.integers(0, 4000),
)
def test_a_damaged_exchange_ends_cleanly(pki: Pki, round_: int, kind: str, at: int) -> None:
    """Whatever one of the peer's messages becomes, the engine answers (Challenge, Reject)
    or raises DecodeError (dropped), never anything else; an ended exchange is released."""
    exchanges, _ = owner(pki)

    def mutate(r: int, data: bytes) -> bytes:
        return next(_damage(kind, at, data)) if r == round_ else data

    try:
        out = run(peer(pki), TYPE_TLS, NAS, CFG, exchanges, {"alice": ALICE}, NOW, mutate=mutate)
    except DecodeError:  # dropped, as RFC 3579 wants for malformed EAP; state released
        assert len(exchanges) == 0
        return
    except SSL.Error:  # our peer gave up on the server's answer to its damaged message
        return
    assert out.code in (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT)
    assert len(exchanges) == 0


def test_min_version_above_the_tunnel_max_is_one_line() -> None:
    """eap_tls_min_version = "1.3" with PEAP/TTLS at TLS 1.2 could never handshake: refused
    at load, naming both keys; allowed once the tunnel may use 1.3 or without them."""
    with pytest.raises(ValueError, match="eap_tunnel_max_version"):
        RadiusConfig(eap_tls_min_version="1.3")
    RadiusConfig(eap_tls_min_version="1.3", eap_tunnel_max_version="1.3")
    RadiusConfig(eap_tls_min_version="1.3", eap_methods=["md5", "tls"])
