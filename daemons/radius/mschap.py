"""MS-CHAP v1 (RFC 2433) and v2 (RFC 2759), MPPE keys (RFC 3079), as pure functions.

MD4 and DES come from pycryptodome: OpenSSL 3 no longer offers MD4 through hashlib.
"""

from __future__ import annotations

import hashlib
import hmac

from Crypto.Cipher import DES
from Crypto.Hash import MD4

# RFC 2759 §8.7
_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 §3.4
_MASTER = b"This is the MPPE Master Key"
_CLIENT_SEND = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_CLIENT_RECV = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_PAD1 = bytes(40)
_PAD2 = b"\xf2" * 40


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 §8.3): MD4 of the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def md4(data: bytes) -> bytes:
    return MD4.new(data).digest()


def _sha1(*parts: bytes) -> bytes:
    h = hashlib.sha1(usedforsecurity=False)
    for p in parts:
        h.update(p)
    return h.digest()


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 octets with odd parity (RFC 2759 §8.6 DesEncrypt)."""
    bits = int.from_bytes(seven, "big")
    out = bytearray()
    for i in range(8):
        b = ((bits >> (49 - 7 * i)) & 0x7F) << 1
        out.append(b | (bin(b).count("1") % 2 == 0))
    return bytes(out)


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): three DES encryptions of the 8-octet challenge."""
    z = password_hash + bytes(21 - len(password_hash))
    return b"".join(
        DES.new(_des_key(z[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14)
    )


def strip_domain(username: bytes) -> bytes:
    """RFC 2759 §8.2 hashes the user name without a ``DOMAIN\\`` prefix."""
    return username.rsplit(b"\\", 1)[-1]


def challenge_hash(peer_challenge: bytes, auth_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (RFC 2759 §8.2)."""
    return _sha1(peer_challenge, auth_challenge, strip_domain(username))[:8]


def v2_nt_response(
    auth_challenge: bytes, peer_challenge: bytes, username: bytes, password_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1)."""
    return challenge_response(
        challenge_hash(peer_challenge, auth_challenge, username), password_hash
    )


def v2_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    auth_challenge: bytes,
    username: bytes,
) -> bytes:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): ``S=`` and 40 upper-case hex digits."""
    digest = _sha1(md4(password_hash), nt_response, _MAGIC1)
    challenge = challenge_hash(peer_challenge, auth_challenge, username)
    return b"S=" + _sha1(digest, challenge, _MAGIC2).hex().upper().encode()


def v2_verify(
    auth_challenge: bytes,
    peer_challenge: bytes,
    username: bytes,
    password_hash: bytes,
    nt_response: bytes,
) -> bool:
    expected = v2_nt_response(auth_challenge, peer_challenge, username, password_hash)
    return hmac.compare_digest(expected, nt_response)


def v1_verify(challenge: bytes, password_hash: bytes, nt_response: bytes) -> bool:
    """MS-CHAPv1 NT-Response check (RFC 2433 §A.5)."""
    return hmac.compare_digest(challenge_response(challenge, password_hash), nt_response)


def mppe_master_key(password_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4)."""
    return _sha1(md4(password_hash), nt_response, _MASTER)[:16]


def mppe_asymmetric_key(master: bytes, is_send: bool, is_server: bool, length: int = 16) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 §3.4)."""
    magic = _CLIENT_RECV if is_send == is_server else _CLIENT_SEND
    return _sha1(master, _PAD1, magic, _PAD2)[:length]


def v2_server_keys(password_hash: bytes, nt_response: bytes) -> tuple[bytes, bytes]:
    """The RADIUS server's (send, receive) keys: MS-MPPE-Send-Key and MS-MPPE-Recv-Key."""
    master = mppe_master_key(password_hash, nt_response)
    return (
        mppe_asymmetric_key(master, is_send=True, is_server=True),
        mppe_asymmetric_key(master, is_send=False, is_server=True),
    )


def v1_mppe_keys(password_hash: bytes) -> bytes:
    """MS-CHAP-MPPE-Keys plaintext (RFC 2548 §2.4.1): LM key (unused, zero), NT key, pad."""
    return bytes(8) + md4(password_hash) + bytes(8)
