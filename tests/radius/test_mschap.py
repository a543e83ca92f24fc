"""Our MS-CHAP and MPPE code against the published vectors (RFC 2433, 2759, 3079)."""

from __future__ import annotations

from daemons.radius import mschap
from daemons.radius.codec import salt_decrypt, salt_encrypt
from tests.radius import vectors as v


def test_rfc2759_9_2_exactly() -> None:
    ph = mschap.nt_password_hash(v.RFC2759_PASSWORD)
    assert ph == v.RFC2759_PASSWORD_HASH
    assert mschap.md4(ph) == v.RFC2759_PASSWORD_HASH_HASH
    assert (
        mschap.challenge_hash(
            v.RFC2759_PEER_CHALLENGE, v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_USER_NAME
        )
        == v.RFC2759_CHALLENGE
    )
    nt = mschap.v2_nt_response(
        v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_PEER_CHALLENGE, v.RFC2759_USER_NAME, ph
    )
    assert nt == v.RFC2759_NT_RESPONSE
    assert mschap.v2_verify(
        v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_PEER_CHALLENGE, v.RFC2759_USER_NAME, ph, nt
    )
    assert not mschap.v2_verify(
        v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_PEER_CHALLENGE, b"Other", ph, nt
    )
    assert (
        mschap.v2_authenticator_response(
            ph, nt, v.RFC2759_PEER_CHALLENGE, v.RFC2759_AUTHENTICATOR_CHALLENGE, v.RFC2759_USER_NAME
        )
        == v.RFC2759_AUTHENTICATOR_RESPONSE
    )


def test_domain_is_stripped_from_the_challenge_hash() -> None:
    assert (
        mschap.challenge_hash(
            v.RFC2759_PEER_CHALLENGE, v.RFC2759_AUTHENTICATOR_CHALLENGE, b"CORP\\User"
        )
        == v.RFC2759_CHALLENGE
    )


def test_rfc2759_9_3_des_key_parity() -> None:
    assert mschap.nt_password_hash(v.RFC2759_9_3_PASSWORD) == v.RFC2759_9_3_PASSWORD_HASH
    assert mschap._des_key(v.RFC2759_9_3_RAW_DES_KEY_1) == v.RFC2759_9_3_PARITY_DES_KEY_1
    assert mschap._des_key(v.RFC2759_9_3_RAW_DES_KEY_2) == v.RFC2759_9_3_PARITY_DES_KEY_2


def test_rfc2433_ms_chap_v1() -> None:
    ph = mschap.nt_password_hash(v.RFC2433_PASSWORD)
    assert ph == v.RFC2433_NT_PASSWORD_HASH
    resp = mschap.challenge_response(v.RFC2433_CHALLENGE, ph)
    assert resp == v.RFC2433_NT_CHALLENGE_RESPONSE
    assert mschap.v1_verify(v.RFC2433_CHALLENGE, ph, resp)


def test_rfc3079_mppe_keys() -> None:
    master = mschap.mppe_master_key(v.RFC2759_PASSWORD_HASH, v.RFC2759_NT_RESPONSE)
    assert master == v.RFC3079_3_5_MASTER_KEY
    send, recv = mschap.v2_server_keys(v.RFC2759_PASSWORD_HASH, v.RFC2759_NT_RESPONSE)
    assert send == v.RFC3079_3_5_3_SEND_START_KEY_128  # MS-MPPE-Send-Key
    assert recv == v.COMPUTED_3079_SERVER_RECV_START_KEY_128  # MS-MPPE-Recv-Key
    # The client's keys mirror the server's.
    assert mschap.mppe_asymmetric_key(master, is_send=False, is_server=False) == send


def test_salt_encryption_roundtrip() -> None:
    secret, auth = b"secret", bytes(range(16))
    for key in (b"", bytes(16), bytes(range(32)), b"x" * 239):
        sealed = salt_encrypt(key, secret, auth, b"\x01\x02")
        assert sealed[0] & 0x80 and (len(sealed) - 2) % 16 == 0
        assert salt_decrypt(sealed, secret, auth) == key
