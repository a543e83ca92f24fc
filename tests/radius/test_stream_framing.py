"""The pure part of RADIUS over streams (daemons/radius/stream.py): framing by the Length
field (RFC 6613 §2.6.4), routing by code on one port, certificate identities, refusal
reasons; and the NAS field and config keys RadSec adds (core/validate, config)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.core import validate
from daemons.core.config import ConfigError, load
from daemons.radius.codec import Code, encode_request
from daemons.radius.stream import (
    Framer,
    FramingError,
    fingerprint,
    identities,
    route,
    tls_refusal,
)
from tests.certs import Authority
from tests.support import netd_env, run_netd


def packet(ident: int, size: int) -> bytes:
    """A well-framed Access-Request of ``size`` octets (a Reply-Message pads it)."""
    pad = size - 20 - 18 - 2
    attrs = [(18, b"x" * pad)] if pad > 0 else []
    raw = encode_request(Code.ACCESS_REQUEST, ident, attrs, b"s", os.urandom(16))
    assert len(raw) == (size if pad > 0 else 38)
    return raw


@given(
    st.lists(st.integers(min_value=41, max_value=250), min_size=1, max_size=12),
    st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40),
)
def test_any_split_of_a_stream_gives_back_the_packets(sizes: list[int], cuts: list[int]) -> None:
    packets = [packet(i % 256, n) for i, n in enumerate(sizes)]
    stream = b"".join(packets)
    framer, out, pos, i = Framer(), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += framer.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert out == packets
    assert framer.pending == 0


@pytest.mark.parametrize("length", [0, 4, 19, 4097, 65535])
def test_a_length_out_of_range_cannot_be_framed(length: int) -> None:
    framer = Framer()
    good = packet(1, 60)
    with pytest.raises(FramingError) as caught:
        framer.feed(good + bytes((1, 2)) + length.to_bytes(2, "big") + bytes(16))
    assert caught.value.reason == "bad_length"


def test_the_largest_packet_frames_and_a_partial_header_waits() -> None:
    framer = Framer()
    big = bytes((1, 1)) + (4096).to_bytes(2, "big") + bytes(4092)  # framing reads no further
    assert framer.feed(big[:3]) == []
    assert framer.feed(big[3:]) == [big]


def test_route_by_code() -> None:
    assert route(bytes([Code.ACCESS_REQUEST])) == "auth"
    assert route(bytes([Code.STATUS_SERVER])) == "auth"
    assert route(bytes([Code.ACCOUNTING_REQUEST])) == "acct"
    assert route(bytes([Code.ACCESS_ACCEPT])) is None


def test_identities_prefer_dns_names_over_the_cn() -> None:
    der = b"\x30\x03\x02\x01\x01"
    with_dns = {
        "subject": ((("commonName", "Ignored CN"),),),
        "subjectAltName": (("DNS", "NAS1.Example"), ("IP Address", "192.0.2.1")),
    }
    assert identities(with_dns, der) == [fingerprint(der), "nas1.example"]
    cn_only = {"subject": ((("countryName", "NL"),), (("commonName", "BNG-7"),))}
    assert identities(cn_only, der) == [fingerprint(der), "bng-7"]
    assert fingerprint(der).startswith("sha256:") and len(fingerprint(der)) == 7 + 64


def test_tls_refusal_reasons() -> None:
    assert tls_refusal("CERTIFICATE_VERIFY_FAILED") == "bad_certificate"
    assert tls_refusal("PEER_DID_NOT_RETURN_A_CERTIFICATE") == "no_certificate"
    assert tls_refusal("UNSUPPORTED_PROTOCOL") == "protocol_version"
    assert tls_refusal("WRONG_VERSION_NUMBER") == "not_tls"
    assert tls_refusal("TLSV1_ALERT_UNKNOWN_CA") == "peer_alert"
    assert tls_refusal(None) == "handshake_failed"


def test_tls_identity_rule() -> None:
    digest = "AB:" * 31 + "AB"
    assert validate.tls_identity(f"SHA256:{digest}") == "sha256:" + "ab" * 32
    assert validate.tls_identity("Nas1.Example.NET") == "nas1.example.net"
    assert validate.tls_identity("") == ""
    for bad in ("sha256:abc", "*.example.net", "two words", "a\nb", "x" * 254):
        with pytest.raises(validate.Invalid, match="tls_identity"):
            validate.tls_identity(bad)


def test_radsec_config_needs_its_certificates(tmp_path: object) -> None:
    env = {"NETD_RADIUS_RADSEC_TLS_PORT": "2083", "HOME": "/nonexistent"}
    with pytest.raises(ConfigError, match="tls_port needs tls_cert, tls_key and tls_client_ca"):
        load(None, env)
    env = {"NETD_RADIUS_RADSEC_TCP_PORT": "2083", "NETD_RADIUS_RADSEC_LISTEN": "not-an-ip"}
    with pytest.raises(ConfigError, match="not an IP address"):
        load(None, {**env, "HOME": "/nonexistent"})


def test_check_config_loads_the_radsec_certificates(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "pki")
    cert, key, _ = ca.issue("server", "netd.test")
    env = netd_env(
        {
            "NETD_STATE_DIR": str(tmp_path / "s"),
            "NETD_RADIUS_RADSEC_TLS_PORT": "2083",
            "NETD_RADIUS_RADSEC_TCP_PORT": "1812",
            "NETD_RADIUS_RADSEC_TLS_CERT": str(cert),
            "NETD_RADIUS_RADSEC_TLS_KEY": str(key),
            "NETD_RADIUS_RADSEC_TLS_CLIENT_CA": str(ca.path),
        }
    )
    ok = run_netd(env, tmp_path, "check-config")
    assert ok.returncode == 0, ok.stderr
    assert (
        "radius streams:   RadSec tls 127.0.0.1,::1 port 2083 (mutual TLS); "
        "RADIUS/TCP 127.0.0.1,::1 port 1812"
    ) in ok.stdout
    _, other_key, _ = ca.issue("other", "other")
    bad = run_netd({**env, "NETD_RADIUS_RADSEC_TLS_KEY": str(other_key)}, tmp_path, "check-config")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("netd: radius.radsec: "), (
        bad.stderr
    )
    assert "KEY_VALUES_MISMATCH" in bad.stderr
