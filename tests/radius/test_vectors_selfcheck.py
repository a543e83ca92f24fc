"""Self-check of tests/radius/vectors.py with hashlib, pycryptodome, pyrad and scapy only.

No project code is imported: this proves the transcribed vectors are right, so later tests
of the project's RADIUS / MS-CHAP code can trust them.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct

import pytest

from tests.radius import vectors as v

# pycryptodome (MD4, DES, ARC4), pyrad and scapy are not project dependencies: each test
# that needs one is skipped, not failed, where it is missing. The RFC 2865 checks need
# only hashlib and always run.

# --------------------------------------------------------------------------------------
# Independent reference implementations (straight from the RFC pseudocode)
# --------------------------------------------------------------------------------------


def md4(data: bytes) -> bytes:
    return pytest.importorskip("Crypto.Hash.MD4").new(data).digest()


def nt_password_hash(password: str) -> bytes:
    """RFC 2759 8.3 / RFC 2433 A.6: MD4 of the UTF-16LE password, no terminating NUL."""
    return md4(password.encode("utf-16-le"))


def des_key_with_parity(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 octets (7 bits each, high bits first), odd parity in bit 0."""
    bits = int.from_bytes(key7, "big")
    out = bytearray()
    for i in range(8):
        octet = ((bits >> (49 - 7 * i)) & 0x7F) << 1
        if bin(octet).count("1") % 2 == 0:
            octet |= 1
        out.append(octet)
    return bytes(out)


def des_encrypt(clear: bytes, key7: bytes) -> bytes:
    """RFC 2759 8.6 / RFC 2433 A.4 DesEncrypt(): DES-ECB with a 7-octet key."""
    des = pytest.importorskip("Crypto.Cipher.DES")
    return des.new(des_key_with_parity(key7), des.MODE_ECB).encrypt(clear)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """RFC 2759 8.5 / RFC 2433 A.7: three DES blocks from the 21-octet zero-padded hash."""
    z = password_hash + b"\x00" * 5
    return b"".join(des_encrypt(challenge, z[i : i + 7]) for i in (0, 7, 14))


def challenge_hash(peer_challenge: bytes, auth_challenge: bytes, user_name: bytes) -> bytes:
    """RFC 2759 8.2."""
    return hashlib.sha1(peer_challenge + auth_challenge + user_name).digest()[:8]


def lm_password_hash(password: str) -> bytes:
    """RFC 2433 A.2/A.3: DES("KGS!@#$%") under the upper-cased, zero-padded password."""
    upper = password.upper().encode("ascii")[:14].ljust(14, b"\x00")
    return des_encrypt(b"KGS!@#$%", upper[:7]) + des_encrypt(b"KGS!@#$%", upper[7:])


def authenticator_response(
    password: str, nt_response: bytes, peer_ch: bytes, auth_ch: bytes, user: bytes
) -> bytes:
    """RFC 2759 8.7 GenerateAuthenticatorResponse()."""
    pw_hash_hash = md4(nt_password_hash(password))
    digest = hashlib.sha1(pw_hash_hash + nt_response + v.RFC2759_MAGIC1).digest()
    ch = challenge_hash(peer_ch, auth_ch, user)
    digest = hashlib.sha1(digest + ch + v.RFC2759_MAGIC2).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def get_master_key(pw_hash_hash: bytes, nt_response: bytes) -> bytes:
    """RFC 3079 3.4 GetMasterKey()."""
    return hashlib.sha1(pw_hash_hash + nt_response + v.RFC3079_MAGIC1).digest()[:16]


def get_asymmetric_start_key(master: bytes, length: int, is_send: bool, is_server: bool) -> bytes:
    """RFC 3079 3.4 GetAsymetricStartKey()."""
    if is_send:
        magic = v.RFC3079_MAGIC3 if is_server else v.RFC3079_MAGIC2
    else:
        magic = v.RFC3079_MAGIC2 if is_server else v.RFC3079_MAGIC3
    data = master + v.RFC3079_SHS_PAD1 + magic + v.RFC3079_SHS_PAD2
    return hashlib.sha1(data).digest()[:length]


def get_new_key_from_sha(start: bytes, current: bytes, length: int) -> bytes:
    """RFC 3079 2.4 Get_Key() == RFC 3078 GetNewKeyFromSHA()."""
    data = start[:length] + v.RFC3079_SHS_PAD1 + current[:length] + v.RFC3079_SHS_PAD2
    return hashlib.sha1(data).digest()[:length]


def rc4(key: bytes, data: bytes) -> bytes:
    return pytest.importorskip("Crypto.Cipher.ARC4").new(key).encrypt(data)


def rc4_pure(key: bytes, data: bytes) -> bytes:
    """A second RC4, to rule out a library quirk where the RFC text disagrees."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for c in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(c ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def user_password_decrypt(encrypted: bytes, secret: bytes, request_auth: bytes) -> bytes:
    """RFC 2865 5.2: b1 = MD5(S + RA), bi = MD5(S + c(i-1)); strip NUL padding."""
    out = b""
    prev = request_auth
    for i in range(0, len(encrypted), 16):
        block = encrypted[i : i + 16]
        pad = hashlib.md5(secret + prev).digest()
        out += bytes(a ^ b for a, b in zip(block, pad, strict=True))
        prev = block
    return out.rstrip(b"\x00")


def response_authenticator(response: bytes, request_auth: bytes, secret: bytes) -> bytes:
    """RFC 2865 3: MD5(Code + ID + Length + RequestAuth + Attributes + Secret)."""
    length = struct.unpack("!H", response[2:4])[0]
    return hashlib.md5(response[:4] + request_auth + response[20:length] + secret).digest()


def attributes(packet: bytes) -> list[tuple[int, bytes]]:
    """Strict RFC 2865 attribute walk; raises ValueError on a malformed attribute list."""
    length = struct.unpack("!H", packet[2:4])[0]
    if length != len(packet):
        raise ValueError("length field does not match the packet")
    out = []
    pos = 20
    while pos < length:
        if pos + 2 > length:
            raise ValueError("truncated attribute header")
        a_type, a_len = packet[pos], packet[pos + 1]
        if a_len < 2 or pos + a_len > length:
            raise ValueError(f"bad attribute length {a_len} at offset {pos}")
        out.append((a_type, packet[pos + 2 : pos + a_len]))
        pos += a_len
    return out


# --------------------------------------------------------------------------------------
# RFC 2759 (MS-CHAPv2)
# --------------------------------------------------------------------------------------


def test_rfc2759_unicode_password_and_hashes() -> None:
    assert v.RFC2759_PASSWORD.encode("utf-16-le") == v.RFC2759_UNICODE_PASSWORD
    assert nt_password_hash(v.RFC2759_PASSWORD) == v.RFC2759_PASSWORD_HASH
    assert md4(v.RFC2759_PASSWORD_HASH) == v.RFC2759_PASSWORD_HASH_HASH
    assert len(v.RFC2759_MAGIC1) == 39
    assert len(v.RFC2759_MAGIC2) == 41


def test_rfc2759_challenge_hash() -> None:
    got = challenge_hash(
        v.RFC2759_PEER_CHALLENGE, v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_USER_NAME
    )
    assert got == v.RFC2759_CHALLENGE


def test_rfc2759_nt_response() -> None:
    assert challenge_response(v.RFC2759_CHALLENGE, v.RFC2759_PASSWORD_HASH) == (
        v.RFC2759_NT_RESPONSE
    )


def test_rfc2759_authenticator_response() -> None:
    got = authenticator_response(
        v.RFC2759_PASSWORD,
        v.RFC2759_NT_RESPONSE,
        v.RFC2759_PEER_CHALLENGE,
        v.RFC2759_AUTHENTICATOR_CHALLENGE,
        v.RFC2759_USER_NAME,
    )
    assert got == v.RFC2759_AUTHENTICATOR_RESPONSE
    assert len(got) == 42


def test_rfc2759_9_3_des_parity_expansion() -> None:
    assert nt_password_hash(v.RFC2759_9_3_PASSWORD) == v.RFC2759_9_3_PASSWORD_HASH
    assert v.RFC2759_9_3_PASSWORD_HASH[:7] == v.RFC2759_9_3_RAW_DES_KEY_1
    assert v.RFC2759_9_3_PASSWORD_HASH[7:14] == v.RFC2759_9_3_RAW_DES_KEY_2
    assert des_key_with_parity(v.RFC2759_9_3_RAW_DES_KEY_1) == v.RFC2759_9_3_PARITY_DES_KEY_1
    assert des_key_with_parity(v.RFC2759_9_3_RAW_DES_KEY_2) == v.RFC2759_9_3_PARITY_DES_KEY_2


# --------------------------------------------------------------------------------------
# RFC 2433 (MS-CHAPv1)
# --------------------------------------------------------------------------------------


def test_rfc2433_b2_nt_challenge_response() -> None:
    assert v.RFC2433_PASSWORD.encode("utf-16-le") == v.RFC2433_UNICODE_PASSWORD
    assert nt_password_hash(v.RFC2433_PASSWORD) == v.RFC2433_NT_PASSWORD_HASH
    got = challenge_response(v.RFC2433_CHALLENGE, v.RFC2433_NT_PASSWORD_HASH)
    assert got == v.RFC2433_NT_CHALLENGE_RESPONSE


# --------------------------------------------------------------------------------------
# RFC 3079 (MPPE keys)
# --------------------------------------------------------------------------------------


def test_rfc3079_magic_lengths() -> None:
    assert len(v.RFC3079_MAGIC1) == 27
    assert len(v.RFC3079_MAGIC2) == 84
    assert len(v.RFC3079_MAGIC3) == 84


def test_rfc3079_3_5_master_and_128_bit_keys() -> None:
    master = get_master_key(v.RFC2759_PASSWORD_HASH_HASH, v.RFC2759_NT_RESPONSE)
    assert master == v.RFC3079_3_5_MASTER_KEY
    server_send = get_asymmetric_start_key(master, 16, is_send=True, is_server=True)
    client_recv = get_asymmetric_start_key(master, 16, is_send=False, is_server=False)
    assert server_send == client_recv == v.RFC3079_3_5_3_SEND_START_KEY_128
    server_recv = get_asymmetric_start_key(master, 16, is_send=False, is_server=True)
    client_send = get_asymmetric_start_key(master, 16, is_send=True, is_server=False)
    assert server_recv == client_send == v.COMPUTED_3079_SERVER_RECV_START_KEY_128
    assert server_send != server_recv
    session = get_new_key_from_sha(server_send, server_send, 16)
    assert session == v.RFC3079_3_5_3_SEND_SESSION_KEY_128
    assert rc4(session, v.RFC3079_TEST_MESSAGE) == v.RFC3079_3_5_3_RC4_TEST_MESSAGE


def test_rfc3079_3_5_1_40_bit() -> None:
    start = get_asymmetric_start_key(v.RFC3079_3_5_MASTER_KEY, 8, is_send=True, is_server=True)
    assert start == v.RFC3079_3_5_1_SEND_START_KEY_40
    session = b"\xd1\x26\x9e" + get_new_key_from_sha(start, start, 8)[3:]
    assert session == v.RFC3079_3_5_1_SEND_SESSION_KEY_40
    assert rc4(session, v.RFC3079_TEST_MESSAGE) == v.RFC3079_3_5_1_RC4_TEST_MESSAGE


def test_rfc3079_3_5_2_56_bit_and_rfc_typo() -> None:
    start = get_asymmetric_start_key(v.RFC3079_3_5_MASTER_KEY, 8, is_send=True, is_server=True)
    assert start == v.RFC3079_3_5_2_SEND_START_KEY_56
    session = b"\xd1" + get_new_key_from_sha(start, start, 8)[1:]
    assert session == v.RFC3079_3_5_2_SEND_SESSION_KEY_56
    got = rc4(session, v.RFC3079_TEST_MESSAGE)
    assert got == rc4_pure(session, v.RFC3079_TEST_MESSAGE) == v.RFC3079_3_5_2_RC4_TEST_MESSAGE
    # The RFC's printed value differs in the last octet only.
    assert got[:11] == v.RFC3079_3_5_2_RC4_TEST_MESSAGE_LITERAL[:11]
    assert got[11] != v.RFC3079_3_5_2_RC4_TEST_MESSAGE_LITERAL[11]


def test_rfc3079_2_5_mschapv1_40_56_bit() -> None:
    lm = lm_password_hash(v.RFC3079_2_5_PASSWORD)
    assert lm == v.RFC3079_2_5_LM_PASSWORD_HASH
    key8 = get_new_key_from_sha(lm, lm, 8)
    assert key8 == v.RFC3079_2_5_GET_KEY_8
    assert b"\xd1\x26\x9e" + key8[3:] == v.RFC3079_2_5_1_SESSION_KEY_40
    assert b"\xd1" + key8[1:] == v.RFC3079_2_5_2_SESSION_KEY_56


def test_rfc3079_2_5_3_mschapv1_128_bit_and_rfc_typo() -> None:
    assert nt_password_hash(v.RFC3079_2_5_PASSWORD) == v.RFC3079_2_5_3_PASSWORD_HASH
    phh = md4(v.RFC3079_2_5_3_PASSWORD_HASH)
    assert phh == v.RFC3079_2_5_3_PASSWORD_HASH_HASH
    initial = hashlib.sha1(phh + phh + v.RFC3079_2_5_3_CHALLENGE).digest()[:16]
    assert initial == v.RFC3079_2_5_3_INITIAL_SESSION_KEY
    assert initial != v.RFC3079_2_5_3_INITIAL_SESSION_KEY_STEP3_LITERAL
    current = get_new_key_from_sha(initial, initial, 16)
    assert current == v.RFC3079_2_5_3_CURRENT_SESSION_KEY
    # The typo'd Step 3 value would not give the RFC's own Step 5 result.
    typo = v.RFC3079_2_5_3_INITIAL_SESSION_KEY_STEP3_LITERAL
    assert get_new_key_from_sha(typo, typo, 16) != v.RFC3079_2_5_3_CURRENT_SESSION_KEY


# --------------------------------------------------------------------------------------
# RFC 2865 section 7 packets
# --------------------------------------------------------------------------------------

ALL_PACKETS = {
    "7.1 request": v.RFC2865_7_1_ACCESS_REQUEST,
    "7.1 accept": v.RFC2865_7_1_ACCESS_ACCEPT,
    "7.2 request": v.RFC2865_7_2_ACCESS_REQUEST,
    "7.2 accept": v.RFC2865_7_2_ACCESS_ACCEPT,
    "7.3 request 1": v.RFC2865_7_3_ACCESS_REQUEST_1,
    "7.3 challenge": v.RFC2865_7_3_ACCESS_CHALLENGE,
    "7.3 request 2": v.RFC2865_7_3_ACCESS_REQUEST_2,
    "7.3 reject": v.RFC2865_7_3_ACCESS_REJECT,
}


@pytest.mark.parametrize("name", sorted(ALL_PACKETS))
def test_rfc2865_packets_are_well_formed(name: str) -> None:
    attributes(ALL_PACKETS[name])


def test_rfc2865_7_3_literal_request_2_is_malformed() -> None:
    with pytest.raises(ValueError, match="bad attribute length 16"):
        attributes(v.RFC2865_7_3_ACCESS_REQUEST_2_LITERAL)
    fixed = v.RFC2865_7_3_ACCESS_REQUEST_2
    diff = [
        i
        for i, (a, b) in enumerate(zip(fixed, v.RFC2865_7_3_ACCESS_REQUEST_2_LITERAL, strict=True))
        if a != b
    ]
    assert diff == [58]
    assert attributes(fixed)[-1] == (24, v.RFC2865_7_3_STATE)


def test_rfc2865_7_1_user_password() -> None:
    req = v.RFC2865_7_1_ACCESS_REQUEST
    assert req[4:20] == v.RFC2865_7_1_REQUEST_AUTHENTICATOR
    attrs = dict(attributes(req))
    assert attrs[1] == v.RFC2865_7_1_USER_NAME.encode()
    assert attrs[2] == v.RFC2865_7_1_USER_PASSWORD_ENCRYPTED
    plain = user_password_decrypt(attrs[2], v.RFC2865_SECRET, v.RFC2865_7_1_REQUEST_AUTHENTICATOR)
    assert plain == v.RFC2865_7_1_PASSWORD.encode()
    assert attrs[4] == bytes([192, 168, 1, 16])
    assert attrs[5] == struct.pack("!I", v.RFC2865_7_1_NAS_PORT)


def test_rfc2865_7_1_response_authenticator() -> None:
    acc = v.RFC2865_7_1_ACCESS_ACCEPT
    assert acc[4:20] == v.RFC2865_7_1_RESPONSE_AUTHENTICATOR
    got = response_authenticator(acc, v.RFC2865_7_1_REQUEST_AUTHENTICATOR, v.RFC2865_SECRET)
    assert got == v.RFC2865_7_1_RESPONSE_AUTHENTICATOR
    assert dict(attributes(acc)) == {
        6: struct.pack("!I", 1),
        15: struct.pack("!I", 0),
        14: bytes([192, 168, 1, 3]),
    }


def test_rfc2865_7_2_chap_framing_and_accept() -> None:
    req = v.RFC2865_7_2_ACCESS_REQUEST
    assert req[4:20] == v.RFC2865_7_2_REQUEST_AUTHENTICATOR
    attrs = dict(attributes(req))
    assert attrs[1] == v.RFC2865_7_2_USER_NAME.encode()
    assert attrs[3] == v.RFC2865_7_2_CHAP_PASSWORD
    assert attrs[3][0] == v.RFC2865_7_2_CHAP_IDENT
    assert 60 not in attrs  # no CHAP-Challenge: the Request Authenticator is the challenge
    acc = v.RFC2865_7_2_ACCESS_ACCEPT
    assert acc[4:20] == response_authenticator(acc, req[4:20], v.RFC2865_SECRET)
    assert dict(attributes(acc))[10] == struct.pack("!I", 2)  # hex dump, not annotation


def test_rfc2865_7_3_challenge_exchange() -> None:
    req1 = v.RFC2865_7_3_ACCESS_REQUEST_1
    a1 = dict(attributes(req1))
    assert a1[1] == v.RFC2865_7_3_USER_NAME.encode()
    assert user_password_decrypt(a1[2], v.RFC2865_SECRET, req1[4:20]) == b"challenge"
    ch = v.RFC2865_7_3_ACCESS_CHALLENGE
    assert ch[4:20] == response_authenticator(ch, req1[4:20], v.RFC2865_SECRET)
    assert dict(attributes(ch)) == {
        18: v.RFC2865_7_3_REPLY_MESSAGE.encode(),
        24: v.RFC2865_7_3_STATE,
    }
    req2 = v.RFC2865_7_3_ACCESS_REQUEST_2
    a2 = dict(attributes(req2))
    assert user_password_decrypt(a2[2], v.RFC2865_SECRET, req2[4:20]) == b"99101462"
    assert a2[24] == v.RFC2865_7_3_STATE
    rej = v.RFC2865_7_3_ACCESS_REJECT
    assert rej[4:20] == response_authenticator(rej, req2[4:20], v.RFC2865_SECRET)
    assert attributes(rej) == []


# --------------------------------------------------------------------------------------
# Decode RFC 2865 7.1 with third-party RADIUS code: pyrad and scapy
# --------------------------------------------------------------------------------------

PYRAD_DICTIONARY = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE NAS-Port 5 integer
ATTRIBUTE Service-Type 6 integer
ATTRIBUTE Login-IP-Host 14 ipaddr
ATTRIBUTE Login-Service 15 integer
VALUE Service-Type Login-User 1
VALUE Login-Service Telnet 0
"""


def test_rfc2865_7_1_decodes_with_pyrad() -> None:
    dictionary = pytest.importorskip("pyrad.dictionary")
    packet = pytest.importorskip("pyrad.packet")

    d = dictionary.Dictionary(io.StringIO(PYRAD_DICTIONARY))
    req = packet.AuthPacket(packet=v.RFC2865_7_1_ACCESS_REQUEST, secret=v.RFC2865_SECRET, dict=d)
    assert (req.code, req.id) == (packet.AccessRequest, 0)
    assert req.authenticator == v.RFC2865_7_1_REQUEST_AUTHENTICATOR
    assert req["User-Name"] == [v.RFC2865_7_1_USER_NAME]
    assert req.PwDecrypt(req["User-Password"][0]) == v.RFC2865_7_1_PASSWORD
    assert req["NAS-IP-Address"] == [v.RFC2865_7_1_NAS_IP_ADDRESS]
    assert req["NAS-Port"] == [v.RFC2865_7_1_NAS_PORT]

    acc = packet.Packet(packet=v.RFC2865_7_1_ACCESS_ACCEPT, secret=v.RFC2865_SECRET, dict=d)
    assert (acc.code, acc.id) == (packet.AccessAccept, 0)
    assert acc["Service-Type"] == ["Login-User"]
    assert acc["Login-Service"] == ["Telnet"]
    assert acc["Login-IP-Host"] == [v.RFC2865_7_1_LOGIN_IP_HOST]
    assert req.VerifyReply(acc, v.RFC2865_7_1_ACCESS_ACCEPT)
    tampered = bytearray(v.RFC2865_7_1_ACCESS_ACCEPT)
    tampered[-1] ^= 1
    assert not req.VerifyReply(acc, bytes(tampered))


def test_rfc2865_7_1_decodes_with_scapy() -> None:
    radius = pytest.importorskip("scapy.layers.radius")
    Radius = radius.Radius

    req = Radius(v.RFC2865_7_1_ACCESS_REQUEST)
    assert (req.code, req.id, req.len) == (1, 0, 56)
    assert req.authenticator == v.RFC2865_7_1_REQUEST_AUTHENTICATOR
    by_type = {a.type: a for a in req.attributes}
    assert by_type[1].value == b"nemo"
    assert by_type[2].value == v.RFC2865_7_1_USER_PASSWORD_ENCRYPTED
    # (scapy's own RadiusAttr_User_Password.decrypt() needs the optional "cryptography"
    # package, so the value scapy parsed is decrypted with the reference function.)
    plain = user_password_decrypt(by_type[2].value, v.RFC2865_SECRET, req.authenticator)
    assert plain == b"arctangent"
    assert by_type[4].value == v.RFC2865_7_1_NAS_IP_ADDRESS
    assert by_type[5].value == 3
    assert bytes(req) == v.RFC2865_7_1_ACCESS_REQUEST

    acc = Radius(v.RFC2865_7_1_ACCESS_ACCEPT)
    assert (acc.code, acc.id, acc.len) == (2, 0, 38)
    assert [a.type for a in acc.attributes] == [6, 15, 14]
    assert acc.compute_authenticator(req.authenticator, v.RFC2865_SECRET) == acc.authenticator
    assert bytes(acc) == v.RFC2865_7_1_ACCESS_ACCEPT


# --------------------------------------------------------------------------------------
# Packets captured from radtest / eapol_test (see vectors.py)
# --------------------------------------------------------------------------------------


def message_authenticator(packet: bytes, secret: bytes, request_auth: bytes | None = None) -> bytes:
    """RFC 3579 3.2: HMAC-MD5 over the packet with the MA value zeroed; in a reply the
    Authenticator field holds the Request Authenticator while hashing."""
    pos = 20
    while packet[pos] != 80:
        pos += packet[pos + 1]
    zeroed = packet[: pos + 2] + bytes(16) + packet[pos + 18 :]
    if request_auth is not None:
        zeroed = zeroed[:4] + request_auth + zeroed[20:]
    return hmac.new(secret, zeroed, hashlib.md5).digest()


def first(packet: bytes, a_type: int) -> bytes:
    return next(val for t, val in attributes(packet) if t == a_type)


def eap_message(packet: bytes) -> bytes:
    return b"".join(val for t, val in attributes(packet) if t == 79)


def ms_vsas(packet: bytes) -> dict[int, bytes]:
    """Microsoft (311) sub-attributes, one per Vendor-Specific attribute."""
    out = {}
    for t, val in attributes(packet):
        if t == 26 and val[:4] == struct.pack("!I", 311):
            assert val[5] == len(val) - 4
            out[val[4]] = val[6:]
    return out


def mppe_key_decrypt(value: bytes, secret: bytes, request_auth: bytes) -> bytes:
    """RFC 2548 2.4.2: value = Salt(2) + C; b1 = MD5(S + R + A), bi = MD5(S + c(i-1))."""
    salt, cipher = value[:2], value[2:]
    plain = b""
    prev = request_auth + salt
    for i in range(0, len(cipher), 16):
        block = cipher[i : i + 16]
        pad = hashlib.md5(secret + prev).digest()
        plain += bytes(a ^ b for a, b in zip(block, pad, strict=True))
        prev = block
    assert salt[0] & 0x80
    return plain[1 : 1 + plain[0]]


EXCHANGES = [
    (v.RADTEST_PAP_ACCESS_REQUEST, v.RADTEST_PAP_ACCESS_ACCEPT),
    (v.RADTEST_CHAP_ACCESS_REQUEST, v.RADTEST_CHAP_ACCESS_ACCEPT),
    (v.RADTEST_MSCHAP_ACCESS_REQUEST, v.RADTEST_MSCHAP_ACCESS_ACCEPT),
    (v.EAPOL_TEST_MSCHAPV2_REQUEST_1, v.EAPOL_TEST_MSCHAPV2_CHALLENGE_1),
    (v.EAPOL_TEST_MSCHAPV2_REQUEST_2, v.EAPOL_TEST_MSCHAPV2_CHALLENGE_2),
    (v.EAPOL_TEST_MSCHAPV2_REQUEST_3, v.EAPOL_TEST_MSCHAPV2_ACCEPT),
    (v.EAPOL_TEST_MD5_REQUEST_1, v.EAPOL_TEST_MD5_CHALLENGE_1),
    (v.EAPOL_TEST_MD5_REQUEST_2, v.EAPOL_TEST_MD5_ACCEPT),
]


@pytest.mark.parametrize(("request_pkt", "reply_pkt"), EXCHANGES)
def test_peer_packets_authenticators(request_pkt: bytes, reply_pkt: bytes) -> None:
    secret = v.PEER_SECRET
    assert request_pkt[0] == 1
    assert first(request_pkt, 80) == message_authenticator(request_pkt, secret)
    ra = request_pkt[4:20]
    assert reply_pkt[1] == request_pkt[1]
    assert reply_pkt[4:20] == response_authenticator(reply_pkt, ra, secret)
    assert first(reply_pkt, 80) == message_authenticator(reply_pkt, secret, ra)


def test_radtest_pap() -> None:
    req = v.RADTEST_PAP_ACCESS_REQUEST
    assert [t for t, _ in attributes(req)] == [1, 2, 4, 5, 80]
    assert first(req, 1) == v.PEER_USER_NAME.encode()
    plain = user_password_decrypt(first(req, 2), v.PEER_SECRET, req[4:20])
    assert plain == v.PEER_PASSWORD.encode()


def test_radtest_chap() -> None:
    req = v.RADTEST_CHAP_ACCESS_REQUEST
    assert [t for t, _ in attributes(req)] == [1, 3, 4, 5, 80]
    chap = first(req, 3)
    assert chap[1:] == hashlib.md5(chap[:1] + v.PEER_PASSWORD.encode() + req[4:20]).digest()


def test_radtest_mschap_v1() -> None:
    req = v.RADTEST_MSCHAP_ACCESS_REQUEST
    assert [t for t, _ in attributes(req)] == [1, 4, 5, 80, 26, 26]
    ms = ms_vsas(req)
    challenge, response = ms[11], ms[1]
    assert len(challenge) == 8
    assert len(response) == 50
    assert response[0] == 0  # Ident
    assert response[1] == 1  # Flags: use NT-Response
    assert response[2:26] == bytes(24)  # LM-Response zero-filled
    nt = challenge_response(challenge, nt_password_hash(v.PEER_PASSWORD))
    assert response[26:50] == nt


def test_eapol_test_mschapv2_exchange() -> None:
    user = v.PEER_USER_NAME.encode()
    ac, pc, nt = (
        v.EAPOL_TEST_MSCHAPV2_AUTHENTICATOR_CHALLENGE,
        v.EAPOL_TEST_MSCHAPV2_PEER_CHALLENGE,
        v.EAPOL_TEST_MSCHAPV2_NT_RESPONSE,
    )
    # EAP-Request/MSCHAPv2 Challenge: type 26, OpCode 1, MS-Length = EAP length - 5.
    for pkt in (
        v.EAPOL_TEST_MSCHAPV2_REQUEST_1,
        v.EAPOL_TEST_MSCHAPV2_REQUEST_2,
        v.EAPOL_TEST_MSCHAPV2_REQUEST_3,
    ):
        assert attributes(pkt)[-1][0] == 80  # eapol_test puts Message-Authenticator last
    e = eap_message(v.EAPOL_TEST_MSCHAPV2_CHALLENGE_1)
    assert (e[0], e[4], e[5]) == (1, 26, 1)
    assert struct.unpack("!H", e[7:9])[0] == len(e) - 5
    assert e[9] == 16
    assert e[10:26] == ac
    # EAP-Response/MSCHAPv2 Response: Value-Size 49 = PeerChallenge + 8 zero + NT + Flags.
    e = eap_message(v.EAPOL_TEST_MSCHAPV2_REQUEST_2)
    assert (e[0], e[4], e[5], e[9]) == (2, 26, 2, 49)
    assert e[10:26] == pc
    assert e[26:34] == bytes(8)
    assert e[34:58] == nt
    assert e[58] == 0
    assert e[59:] == user
    ch = challenge_hash(pc, ac, user)
    assert challenge_response(ch, nt_password_hash(v.PEER_PASSWORD)) == nt
    # EAP-Request/MSCHAPv2 Success carries the RFC 2759 AuthenticatorResponse.
    e = eap_message(v.EAPOL_TEST_MSCHAPV2_CHALLENGE_2)
    assert (e[4], e[5]) == (26, 3)
    s = authenticator_response(v.PEER_PASSWORD, nt, pc, ac, user)
    assert e[9:] == s + b" M=ok"
    # Access-Accept: MS-MPPE keys, RFC 3079 derivation + RFC 2548 encryption.
    accept = v.EAPOL_TEST_MSCHAPV2_ACCEPT
    assert eap_message(accept)[0] == 3  # EAP-Success
    ra = v.EAPOL_TEST_MSCHAPV2_REQUEST_3[4:20]
    ms = ms_vsas(accept)
    send = mppe_key_decrypt(ms[16], v.PEER_SECRET, ra)
    recv = mppe_key_decrypt(ms[17], v.PEER_SECRET, ra)
    assert send == v.EAPOL_TEST_MSCHAPV2_MPPE_SEND_KEY
    assert recv == v.EAPOL_TEST_MSCHAPV2_MPPE_RECV_KEY
    master = get_master_key(md4(nt_password_hash(v.PEER_PASSWORD)), nt)
    assert send == get_asymmetric_start_key(master, 16, is_send=True, is_server=True)
    assert recv == get_asymmetric_start_key(master, 16, is_send=False, is_server=True)


def test_eapol_test_md5_exchange() -> None:
    challenge = eap_message(v.EAPOL_TEST_MD5_CHALLENGE_1)
    assert (challenge[0], challenge[4], challenge[5]) == (1, 4, 16)
    response = eap_message(v.EAPOL_TEST_MD5_REQUEST_2)
    assert (response[0], response[1], response[4], response[5]) == (2, challenge[1], 4, 16)
    expected = hashlib.md5(response[1:2] + v.PEER_PASSWORD.encode() + challenge[6:22]).digest()
    assert response[6:22] == expected
    assert eap_message(v.EAPOL_TEST_MD5_ACCEPT) == bytes([3, response[1], 0, 4])
