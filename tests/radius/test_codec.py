"""The RADIUS codec against RFC 2865 §7, pyrad as an independent oracle, and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from daemons.radius.codec import (
    Attr,
    Code,
    DecodeError,
    DropReason,
    check_message_authenticator,
    check_response_authenticator,
    decode,
    encode_reply,
    encode_request,
    hide_password,
    hmac_md5,
    message_authenticator,
    unhide_password,
)
from daemons.radius.dictionary import SHIPPED
from tests.radius import vectors as v

SECRET = v.RFC2865_SECRET


def test_rfc2865_7_1_pap_request_and_accept() -> None:
    req = decode(v.RFC2865_7_1_ACCESS_REQUEST)
    assert req.code == Code.ACCESS_REQUEST
    assert req.authenticator == v.RFC2865_7_1_REQUEST_AUTHENTICATOR
    assert req.get(Attr.USER_NAME) == v.RFC2865_7_1_USER_NAME.encode()
    hidden = req.get(Attr.USER_PASSWORD)
    assert hidden == v.RFC2865_7_1_USER_PASSWORD_ENCRYPTED
    assert unhide_password(hidden, SECRET, req.authenticator) == b"arctangent"
    assert hide_password(b"arctangent", SECRET, req.authenticator) == hidden
    accept = decode(v.RFC2865_7_1_ACCESS_ACCEPT)
    assert check_response_authenticator(accept.raw, req.authenticator, SECRET)
    # Re-encoding the RFC's reply attributes gives the RFC's bytes exactly.
    again = encode_reply(Code.ACCESS_ACCEPT, req, accept.attributes, SECRET, message_auth=False)
    assert again == v.RFC2865_7_1_ACCESS_ACCEPT


def test_rfc2865_7_2_chap() -> None:
    req = decode(v.RFC2865_7_2_ACCESS_REQUEST)
    assert req.get(Attr.CHAP_PASSWORD) == v.RFC2865_7_2_CHAP_PASSWORD
    assert req.get(Attr.CHAP_CHALLENGE) is None  # the Request Authenticator is the challenge
    accept = decode(v.RFC2865_7_2_ACCESS_ACCEPT)
    assert check_response_authenticator(accept.raw, req.authenticator, SECRET)
    assert (
        encode_reply(Code.ACCESS_ACCEPT, req, accept.attributes, SECRET, message_auth=False)
        == v.RFC2865_7_2_ACCESS_ACCEPT
    )


def test_rfc2865_7_3_challenge_and_reject() -> None:
    first = decode(v.RFC2865_7_3_ACCESS_REQUEST_1)
    challenge = decode(v.RFC2865_7_3_ACCESS_CHALLENGE)
    assert challenge.code == Code.ACCESS_CHALLENGE
    assert challenge.get(Attr.STATE) == v.RFC2865_7_3_STATE
    assert check_response_authenticator(challenge.raw, first.authenticator, SECRET)
    second = decode(v.RFC2865_7_3_ACCESS_REQUEST_2)
    assert second.get(Attr.STATE) == v.RFC2865_7_3_STATE
    assert (
        unhide_password(second.get(Attr.USER_PASSWORD) or b"", SECRET, second.authenticator)
        == v.RFC2865_7_3_PASSWORD_2.encode()
    )
    reject = decode(v.RFC2865_7_3_ACCESS_REJECT)
    assert reject.code == Code.ACCESS_REJECT
    assert check_response_authenticator(reject.raw, second.authenticator, SECRET)


def _pyrad() -> PyradDictionary:
    return PyradDictionary(str(SHIPPED))


def test_reply_verified_by_pyrad_with_message_authenticator_first() -> None:
    d = _pyrad()
    req_pkt = pyrad_packet.AuthPacket(code=1, id=42, secret=b"s3cret", dict=d)
    req_pkt["User-Name"] = "alice"
    req_pkt.add_message_authenticator()
    raw_req = req_pkt.RequestPacket()
    req = decode(raw_req)
    check_message_authenticator(req, b"s3cret", required=True)
    reply = encode_reply(
        Code.ACCESS_ACCEPT,
        req,
        [(Attr.SESSION_TIMEOUT, struct.pack("!I", 60)), (Attr.PROXY_STATE, b"ignored")],
        b"s3cret",
    )
    assert reply[20] == Attr.MESSAGE_AUTHENTICATOR  # first attribute: BlastRADIUS mitigation
    parsed = pyrad_packet.Packet(packet=reply, secret=b"s3cret", dict=d)
    assert req_pkt.VerifyReply(parsed, reply)
    parsed.authenticator = req_pkt.authenticator
    assert parsed.verify_message_authenticator(original_authenticator=req_pkt.authenticator)
    assert parsed["Session-Timeout"] == [60]


def test_proxy_state_is_echoed_in_order() -> None:
    raw = encode_request(
        Code.ACCESS_REQUEST,
        1,
        [(Attr.USER_NAME, b"u"), (Attr.PROXY_STATE, b"a"), (Attr.PROXY_STATE, b"b")],
        b"s",
        bytes(16),
    )
    reply = decode(encode_reply(Code.ACCESS_REJECT, decode(raw), [], b"s"))
    assert reply.get_all(Attr.PROXY_STATE) == [b"a", b"b"]


def test_request_message_authenticator_checks() -> None:
    raw = encode_request(
        Code.ACCESS_REQUEST, 9, [(Attr.USER_NAME, b"bob")], b"right", bytes(range(16))
    )
    pkt = decode(raw)
    check_message_authenticator(pkt, b"right", required=True)
    with pytest.raises(DecodeError) as err:
        check_message_authenticator(pkt, b"wrong", required=True)
    assert err.value.reason is DropReason.BAD_MESSAGE_AUTHENTICATOR
    bare = decode(
        encode_request(
            Code.ACCESS_REQUEST,
            9,
            [(Attr.USER_NAME, b"bob")],
            b"right",
            bytes(16),
            message_auth=False,
        )
    )
    check_message_authenticator(bare, b"right", required=False)
    with pytest.raises(DecodeError) as err:
        check_message_authenticator(bare, b"right", required=True)
    assert err.value.reason is DropReason.MISSING_MESSAGE_AUTHENTICATOR
    assert message_authenticator(raw, b"right") == pkt.get(Attr.MESSAGE_AUTHENTICATOR)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x02\x00", DropReason.TRUNCATED),
        (b"\x01\x02\x00\x10" + bytes(16), DropReason.LENGTH_MISMATCH),  # length < 20
        (b"\x01\x02\x00\x30" + bytes(16), DropReason.LENGTH_MISMATCH),  # past the data
        (b"\x01\x02\x10\x01" + bytes(4093), DropReason.OVERSIZED),  # 4097 octets
        (b"\x63\x02\x00\x14" + bytes(16), DropReason.UNKNOWN_CODE),
        (b"\x01\x02\x00\x16" + bytes(16) + b"\x01\x00", DropReason.BAD_ATTRIBUTE),  # attr len 0
        (b"\x01\x02\x00\x16" + bytes(16) + b"\x01\x01", DropReason.BAD_ATTRIBUTE),  # attr len 1
        (b"\x01\x02\x00\x17" + bytes(16) + b"\x01\x05x", DropReason.BAD_ATTRIBUTE),  # past the end
        (b"\x01\x02\x00\x15" + bytes(16) + b"\x01", DropReason.BAD_ATTRIBUTE),  # half a header
    ],
)
def test_malformed_packets(data: bytes, reason: DropReason) -> None:
    with pytest.raises(DecodeError) as err:
        decode(data)
    assert err.value.reason is reason


def test_padding_past_length_is_ignored() -> None:
    raw = encode_request(Code.ACCESS_REQUEST, 1, [(Attr.USER_NAME, b"u")], b"s", bytes(16))
    assert decode(raw + b"\0\0\0").raw == raw


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_never_fails_otherwise(data: bytes) -> None:
    try:
        pkt = decode(data)
    except DecodeError:
        return
    assert pkt.raw == data[: len(pkt.raw)]


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 255),
    st.binary(min_size=16, max_size=16),
    st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=253)), max_size=12),
)
def test_header_mutations_are_rejected_or_parsed(
    code: int, auth: bytes, attrs: list[tuple[int, bytes]]
) -> None:
    body = b"".join(bytes((t, len(val) + 2)) + val for t, val in attrs)
    data = struct.pack("!BBH", code, 7, 20 + len(body)) + auth + body
    try:
        pkt = decode(data)
    except DecodeError as exc:
        assert exc.reason in (
            DropReason.UNKNOWN_CODE,
            DropReason.OVERSIZED,
            DropReason.LENGTH_MISMATCH,
        )
        return
    assert list(pkt.attributes) == attrs


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=128), st.binary(min_size=1, max_size=40), st.binary(min_size=16, max_size=16)
)
def test_password_hiding_roundtrip(password: bytes, secret: bytes, auth: bytes) -> None:
    hidden = hide_password(password, secret, auth)
    assert len(hidden) % 16 == 0 and len(hidden) <= 128
    assert unhide_password(hidden, secret, auth) == password.rstrip(b"\0")


def test_hmac_md5_equals_the_standard_library() -> None:
    """The padded-key shortcut against hmac: short, 64-octet and long secrets (hashed
    first, RFC 2104 §2), and the cached states reused."""
    import hmac as std  # noqa: PLC0415

    for secret in (b"s", b"x" * 64, b"y" * 65, b"long" * 40, b"s"):
        for msg in (b"", b"\x01" * 20, bytes(range(256)) * 3):
            assert hmac_md5(secret, msg) == std.digest(secret, msg, "md5")
