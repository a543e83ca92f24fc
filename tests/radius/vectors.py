"""Published test vectors for RADIUS, MS-CHAP and MPPE key derivation.

Every hex dump below is transcribed from the RFC text itself (the copies kept in
FreeRADIUS' ``doc/rfc/`` tree, identical to the RFC Editor's text). Where an RFC's text is
wrong, the literal value is kept and a corrected constant sits beside it, with a comment
saying what was recomputed and how.

``tests/radius/test_vectors_selfcheck.py`` recomputes all of them with hashlib and
pycryptodome alone, so these constants are known-good before any project code uses them.

Naming: ``RFC<nnnn>_<section>_<WHAT>``; all byte values are ``bytes``.
"""

from __future__ import annotations


def _hex(text: str) -> bytes:
    """Bytes from an RFC-style hex dump (whitespace and line breaks ignored)."""
    return bytes.fromhex(text)


# ======================================================================================
# RFC 2865 section 7: Examples. "Hexadecimal dumps of the example packets are given in
# network byte order, using the shared secret "xyzzy5461"."
# ======================================================================================

RFC2865_SECRET = b"xyzzy5461"

# --- RFC 2865 section 7.1: User Telnet to Specified Host -------------------------------
# The NAS at 192.168.1.16 sends an Access-Request for user "nemo" on port 3 with password
# "arctangent". User-Password = password padded with NULs XOR MD5(secret + Request Auth).
RFC2865_7_1_USER_NAME = "nemo"
RFC2865_7_1_PASSWORD = "arctangent"
RFC2865_7_1_NAS_IP_ADDRESS = "192.168.1.16"
RFC2865_7_1_NAS_PORT = 3
RFC2865_7_1_ACCESS_REQUEST = _hex(
    """
    01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
    93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
    01 10 05 06 00 00 00 03
    """
)
# Code 1, ID 0, Length 56, then the 16-octet Request Authenticator:
RFC2865_7_1_REQUEST_AUTHENTICATOR = _hex("0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a")
# The User-Password attribute's value (type 2, length 18):
RFC2865_7_1_USER_PASSWORD_ENCRYPTED = _hex("0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee")

# The Access-Accept: Response Authenticator = MD5(Code + ID + Length + Request
# Authenticator + Attributes + Secret). Attributes: Service-Type (6) = Login (1),
# Login-Service (15) = Telnet (0), Login-IP-Host (14) = 192.168.1.3.
RFC2865_7_1_ACCESS_ACCEPT = _hex(
    """
    02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
    0e 06 c0 a8 01 03
    """
)
RFC2865_7_1_RESPONSE_AUTHENTICATOR = _hex("86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2")
RFC2865_7_1_LOGIN_IP_HOST = "192.168.1.3"

# --- RFC 2865 section 7.2: Framed User Authenticating with CHAP ------------------------
# User "flopsy" on port 20 with PPP. The Request Authenticator is also the CHAP
# challenge (no CHAP-Challenge attribute). CHAP-Password = CHAP ID (22) + 16-octet
# response. The RFC does not give flopsy's password, so the CHAP response cannot be
# recomputed; only the framing and the Access-Accept's authenticator can be checked.
# Attributes: User-Name "flopsy", CHAP-Password, NAS-IP-Address 192.168.1.16,
# NAS-Port 20, Service-Type Framed (2), Framed-Protocol PPP (1).
RFC2865_7_2_USER_NAME = "flopsy"
RFC2865_7_2_CHAP_IDENT = 22
RFC2865_7_2_ACCESS_REQUEST = _hex(
    """
    01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
    0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
    75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
    06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
    02 07 06 00 00 00 01
    """
)
RFC2865_7_2_REQUEST_AUTHENTICATOR = _hex("2a ee 86 f0 8d 0d 55 96 9c a5 97 8e 0d 33 67 a2")
# CHAP-Password value: ident 0x16 (22) then the 16-octet MD5 response.
RFC2865_7_2_CHAP_PASSWORD = _hex("16 e9 75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75")

# Access-Accept: Service-Type Framed (2), Framed-Protocol PPP (1), Framed-IP-Address
# 255.255.255.254, Framed-Routing, Framed-Compression VJ (1), Framed-MTU 1500.
# NOTE: the RFC's annotation says "Framed-Routing (10) = None (0)" but the hex dump
# carries 00 00 00 02; the hex dump is what the Response Authenticator covers (verified).
RFC2865_7_2_ACCESS_ACCEPT = _hex(
    """
    02 01 00 38 15 ef bc 7d ab 26 cf a3 dc 34 d9 c0
    3c 86 01 a4 06 06 00 00 00 02 07 06 00 00 00 01
    08 06 ff ff ff fe 0a 06 00 00 00 02 0d 06 00 00
    00 01 0c 06 00 00 05 dc
    """
)

# --- RFC 2865 section 7.3: User with Challenge-Response card ---------------------------
# User "mopsy" on port 7 enters the dummy password "challenge"; the server answers with
# an Access-Challenge (Reply-Message + State "32769430"); the NAS sends a second
# Access-Request with the card's response "99101462" and the State; the server rejects.
# (There is no Service-Type in any of these packets.)
RFC2865_7_3_USER_NAME = "mopsy"
RFC2865_7_3_PASSWORD_1 = "challenge"
RFC2865_7_3_PASSWORD_2 = "99101462"
RFC2865_7_3_STATE = b"32769430"
RFC2865_7_3_REPLY_MESSAGE = "Challenge 32769430.  Enter response at prompt."
RFC2865_7_3_NAS_PORT = 7

RFC2865_7_3_ACCESS_REQUEST_1 = _hex(
    """
    01 02 00 39 f3 a4 7a 1f 6a 6d 76 71 0b 94 7a b9
    30 41 a0 39 01 07 6d 6f 70 73 79 02 12 33 65 75
    73 77 82 89 b5 70 88 5e 15 08 48 25 c5 04 06 c0
    a8 01 10 05 06 00 00 00 07
    """
)
RFC2865_7_3_ACCESS_CHALLENGE = _hex(
    """
    0b 02 00 4e 36 f3 c8 76 4a e8 c7 11 57 40 3c 0c
    71 ff 9c 45 12 30 43 68 61 6c 6c 65 6e 67 65 20
    33 32 37 36 39 34 33 30 2e 20 20 45 6e 74 65 72
    20 72 65 73 70 6f 6e 73 65 20 61 74 20 70 72 6f
    6d 70 74 2e 18 0a 33 32 37 36 39 34 33 30
    """
)
# Literal transcription of the second Access-Request. ERROR IN THE RFC TEXT: the State
# attribute is written "18 10" (length 16) although only 8 value octets follow and the
# packet Length (0x43 = 67) only fits length 10. A strict decoder must reject this literal
# packet (the attribute overruns the packet); use the corrected constant to decode it.
RFC2865_7_3_ACCESS_REQUEST_2_LITERAL = _hex(
    """
    01 03 00 43 b1 22 55 6d 42 8a 13 d0 d6 25 38 07
    c4 57 ec f0 01 07 6d 6f 70 73 79 02 12 69 2c 1f
    20 5f c0 81 b9 19 b9 51 95 f5 61 a5 81 04 06 c0
    a8 01 10 05 06 00 00 00 07 18 10 33 32 37 36 39
    34 33 30
    """
)
# Same packet with the State length octet fixed to 0x0a (the only change).
RFC2865_7_3_ACCESS_REQUEST_2 = (
    RFC2865_7_3_ACCESS_REQUEST_2_LITERAL[:58] + b"\x0a" + RFC2865_7_3_ACCESS_REQUEST_2_LITERAL[59:]
)
# Access-Reject (no attributes); its Response Authenticator verifies against request 2.
RFC2865_7_3_ACCESS_REJECT = _hex(
    """
    03 03 00 14 a4 2f 4f ca 45 91 6c 4e 09 c8 34 0f
    9e 74 6a a0
    """
)


# ======================================================================================
# RFC 2759 (MS-CHAP-V2) section 9.2 "Hash Example": intermediate values for user name
# "User" and password "clientPass". Section 8.7 defines the AuthenticatorResponse.
# ======================================================================================

RFC2759_USER_NAME = b"User"  # 55 73 65 72
RFC2759_PASSWORD = "clientPass"
RFC2759_UNICODE_PASSWORD = _hex("63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00")
RFC2759_AUTHENTICATOR_CHALLENGE = _hex("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
RFC2759_PEER_CHALLENGE = _hex("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
# ChallengeHash() = SHA1(PeerChallenge + AuthenticatorChallenge + UserName)[:8]
RFC2759_CHALLENGE = _hex("D0 2E 43 86 BC E9 12 26")
# NtPasswordHash() = MD4(UTF-16LE password)
RFC2759_PASSWORD_HASH = _hex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
RFC2759_NT_RESPONSE = _hex(
    "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF"
)
# HashNtPasswordHash() = MD4(PasswordHash)
RFC2759_PASSWORD_HASH_HASH = _hex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
# 42-octet AuthenticatorResponse (ASCII, upper-case hex), sent in the Success packet and,
# over RADIUS, in MS-CHAP2-Success after the Ident octet (RFC 2548 section 2.3.3).
RFC2759_AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"

# RFC 2759 section 8.7 "Magic" constants (ASCII text, no terminating NUL).
RFC2759_MAGIC1 = b"Magic server to client signing constant"  # 39 octets
RFC2759_MAGIC2 = b"Pad to make it do more than one iteration"  # 41 octets

# RFC 2759 section 9.3 (and RFC 2433 appendix B.3): DES key parity expansion for the
# password "MyPw" (PasswordHash below is RFC 2433 B.2's NtPasswordHash of "MyPw").
RFC2759_9_3_PASSWORD = "MyPw"
RFC2759_9_3_PASSWORD_HASH = _hex("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")
RFC2759_9_3_RAW_DES_KEY_1 = _hex("FC 15 6A F7 ED CD 6C")
RFC2759_9_3_PARITY_DES_KEY_1 = _hex("FD 0B 5B 5E 7F 6E 34 D9")
RFC2759_9_3_RAW_DES_KEY_2 = _hex("0E DD E3 33 7D 42 7F")
RFC2759_9_3_PARITY_DES_KEY_2 = _hex("0E 6E 79 67 37 EA 08 FE")


# ======================================================================================
# RFC 2433 (MS-CHAP v1) appendix B.2 "Hash Example": intermediate values for "MyPw".
# NtChallengeResponse() = ChallengeResponse(Challenge, NtPasswordHash(Password)), the same
# DES ChallengeResponse() as RFC 2759 section 8.5 (3 DES keys from the 21-octet
# zero-padded hash, 7 octets each, parity-expanded). In RADIUS this is the NT-Response
# inside MS-CHAP-Response (RFC 2548 section 2.1.3), with Flags = 1 and LM-Response zero.
# ======================================================================================

RFC2433_PASSWORD = "MyPw"
RFC2433_CHALLENGE = _hex("10 2D B5 DF 08 5D 30 41")
RFC2433_UNICODE_PASSWORD = _hex("4D 00 79 00 50 00 77 00")
RFC2433_NT_PASSWORD_HASH = _hex("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")
RFC2433_NT_CHALLENGE_RESPONSE = _hex(
    """
    4E 9D 3C 8F 9C FD 38 5D 5B F4 D3 24 67 91 95 6C
    A4 C3 51 AB 40 9A 3D 61
    """
)


# ======================================================================================
# RFC 3079 (MPPE key derivation).
# ======================================================================================

# RFC 3079 section 3.4 constants (ASCII, no NUL). SHSpad1 = 40 x 0x00, SHSpad2 = 40 x 0xf2.
RFC3079_SHS_PAD1 = b"\x00" * 40
RFC3079_SHS_PAD2 = b"\xf2" * 40
RFC3079_MAGIC1 = b"This is the MPPE Master Key"  # 27 octets, GetMasterKey()
RFC3079_MAGIC2 = (  # 84 octets; used for IsSend && !IsServer, or !IsSend && IsServer
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
RFC3079_MAGIC3 = (  # 84 octets; used for IsSend && IsServer, or !IsSend && !IsServer
    b"On the client side, this is the receive key; on the server side, it is the send key."
)

# --- RFC 3079 section 3.5 (MS-CHAPv2 credentials): same inputs as RFC 2759 section 9.2 --
# GetMasterKey() = SHA1(PasswordHashHash + NT-Response + Magic1)[:16]
RFC3079_3_5_MASTER_KEY = _hex("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
# Section 3.5.3 "Derive the send master session key": section 3.3 calls
# GetAsymmetricStartKey(MasterKey, MasterSendKey, 16, IsSend=TRUE, IsServer=TRUE), i.e.
# Magic3. So this is the SERVER's (authenticator's / NAS's) send key == the CLIENT's
# (peer's) receive key. FreeRADIUS puts exactly this key in MS-MPPE-Send-Key
# (rlm_mschap.c: mppe_GetAsymmetricStartKey(masterkey, sendkey, 16, issend=1) -> magic3),
# matching RFC 2548 2.4.2 ("for encrypting packets sent from the NAS to the remote host").
RFC3079_3_5_3_SEND_START_KEY_128 = _hex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
# NOT in the RFC: the server's receive key (== client's send key, Magic2), computed with
# hashlib from the master key above per section 3.4; FreeRADIUS sends it as
# MS-MPPE-Recv-Key. Recomputed in test_vectors_selfcheck.py.
COMPUTED_3079_SERVER_RECV_START_KEY_128 = _hex("D5 F0 E9 52 1E 3E A9 58 96 45 E8 60 51 C8 22 26")
# GetNewKeyFromSHA(SendStartKey, SendStartKey, 16) (RFC 3078 section 7.3 / RFC 3079 2.4
# Get_Key): SHA1(start + SHSpad1 + current + SHSpad2)[:16]
RFC3079_3_5_3_SEND_SESSION_KEY_128 = _hex("40 5C B2 24 7A 79 56 E6 E2 11 00 7A E2 7B 22 D4")
RFC3079_3_5_3_RC4_TEST_MESSAGE = _hex("81 84 83 17 DF 68 84 62 72 FB 5A BE")

RFC3079_TEST_MESSAGE = b"test message"

# Section 3.5.1 (40-bit): 8-octet start key, then GetNewKeyFromSHA, then first 3 octets
# replaced by D1 26 9E.
RFC3079_3_5_1_SEND_START_KEY_40 = _hex("8B 7C DC 14 9B 99 3A 1B")
RFC3079_3_5_1_SEND_SESSION_KEY_40 = _hex("D1 26 9E C4 9F A6 2E 3E")
RFC3079_3_5_1_RC4_TEST_MESSAGE = _hex("92 91 37 91 7E 58 03 D6 68 D7 58 98")

# Section 3.5.2 (56-bit): first octet replaced by D1.
RFC3079_3_5_2_SEND_START_KEY_56 = _hex("8B 7C DC 14 9B 99 3A 1B")
RFC3079_3_5_2_SEND_SESSION_KEY_56 = _hex("D1 5C 00 C4 9F A6 2E 3E")
# Literal RFC value (the RFC labels it "rc4(SendSessionKey40, ...)"). ERROR IN THE RFC
# TEXT: RC4 with SendSessionKey56 gives ... 57 B8 (last octet B8, not 58), checked with
# pycryptodome's ARC4 and a pure-Python RC4; the other 11 octets match.
RFC3079_3_5_2_RC4_TEST_MESSAGE_LITERAL = _hex("3F 10 68 33 FA 44 8D A8 42 BC 57 58")
RFC3079_3_5_2_RC4_TEST_MESSAGE = _hex("3F 10 68 33 FA 44 8D A8 42 BC 57 B8")

# --- RFC 3079 section 2.5 (MS-CHAPv1 credentials), password "clientPass" ----------------
RFC3079_2_5_PASSWORD = "clientPass"
# Sections 2.5.1 / 2.5.2: 40/56-bit keys from the LAN Manager hash.
RFC3079_2_5_LM_PASSWORD_HASH = _hex("76 a1 52 93 60 96 d7 83 0e 23 90 22 74 04 af d2")
RFC3079_2_5_GET_KEY_8 = _hex("d8 08 01 53 8c ec 4a 08")  # GetKey(PasswordHash, SessionKey, 8)
RFC3079_2_5_1_SESSION_KEY_40 = _hex("d1 26 9e 53 8c ec 4a 08")
RFC3079_2_5_2_SESSION_KEY_56 = _hex("d1 08 01 53 8c ec 4a 08")
# Section 2.5.3: 128-bit key from the NT hash and the 8-octet MS-CHAPv1 challenge.
RFC3079_2_5_3_CHALLENGE = _hex("10 2d b5 df 08 5d 30 41")
RFC3079_2_5_3_PASSWORD_HASH = _hex("44 eb ba 8d 53 12 b8 d6 11 47 44 11 f5 69 89 ae")
RFC3079_2_5_3_PASSWORD_HASH_HASH = _hex("41 c0 0c 58 4b d2 d9 1c 40 17 a2 a1 2f a5 9f 3f")
# GetStartKey(Challenge, PasswordHashHash) = SHA1(PHH + PHH + Challenge)[:16].
# ERROR IN THE RFC TEXT: Step 3 prints "... cf c0 ac ca d1 ..." while Step 4 (a plain copy
# of the same value) prints "... cf c0 ac c1 d1 ...". SHA-1 gives ac c1, and only ac c1
# yields the Step 5 key below, so Step 3's "ca" is the typo.
RFC3079_2_5_3_INITIAL_SESSION_KEY_STEP3_LITERAL = _hex(
    "a8 94 78 50 cf c0 ac ca d1 78 9f b6 2d dc dd b0"
)
RFC3079_2_5_3_INITIAL_SESSION_KEY = _hex("a8 94 78 50 cf c0 ac c1 d1 78 9f b6 2d dc dd b0")
RFC3079_2_5_3_CURRENT_SESSION_KEY = _hex("59 d1 59 bc 09 f7 6f 1d a2 a8 6a 28 ff ec 0b 1e")


# ======================================================================================
# RFC 2548 (MS-MPPE-Send-Key / MS-MPPE-Recv-Key salt encryption, section 2.4.2/2.4.3):
# the RFC publishes no worked example, and none was found elsewhere. The only vector here
# is the captured EAPOL_TEST_MSCHAPV2_ACCEPT below (computed, then accepted by eapol_test).
# ======================================================================================


# ======================================================================================
# Captured from real peers (NOT published by any RFC). Each exchange is between a real
# client from Debian 12 (freeradius-utils 3.2.1+dfsg-4+deb12u1 radtest/radclient, or
# eapoltest 2:2.10-12+deb12u3 eapol_test) and a throwaway Python responder on 127.0.0.1.
# The client accepted every reply shown here (radtest exit 0, eapol_test "SUCCESS",
# "MPPE keys OK: 1"), which cross-checks this file's reply-side computations too:
# Response Authenticator, reply Message-Authenticator (radclient and eapol_test both drop
# a reply whose Message-Authenticator is wrong), RFC 2759 AuthenticatorResponse, RFC 3079
# key derivation and RFC 2548 MS-MPPE key encryption. Same credentials throughout:
# ======================================================================================

PEER_SECRET = b"s3cret"
PEER_USER_NAME = "bob"
PEER_PASSWORD = "hello"

# --- radtest -t pap bob hello 127.0.0.1:PORT 0 s3cret ----------------------------------
# Attributes: User-Name, User-Password, NAS-IP-Address 127.0.0.1, NAS-Port 0,
# Message-Authenticator (5th and last; HMAC-MD5 keyed with the secret over the packet
# with the MA value zeroed, RFC 3579 section 3.2).
RADTEST_PAP_ACCESS_REQUEST = _hex(
    """
    01 d6 00 49 e5 e7 6d 09 f8 7f 2e c0 62 90 08 71 4f ee d6 76 01 05 62 6f
    62 02 12 71 37 16 fe 0e 87 e0 7d 9f 53 92 42 78 7d 05 e6 04 06 7f 00 00
    01 05 06 00 00 00 00 50 12 e0 37 69 51 50 cb 8b 99 d9 6a ee d5 a8 bf ac
    07
    """
)
# The responder's Access-Accept (only a Message-Authenticator), accepted by radclient.
RADTEST_PAP_ACCESS_ACCEPT = _hex(
    """
    02 d6 00 26 35 22 58 a7 26 78 bf 40 74 6d 8c 55 09 6e 49 05 50 12 fe e7
    9b 03 44 3f 25 3a fe 96 91 f3 79 d0 eb bc
    """
)

# --- radtest -t chap bob hello ... ----------------------------------------------------
# CHAP-Password = random CHAP ident + MD5(ident + password + Request Authenticator); no
# CHAP-Challenge attribute (the Request Authenticator is the challenge, RFC 2865 2.2).
RADTEST_CHAP_ACCESS_REQUEST = _hex(
    """
    01 67 00 4a 68 89 8d f3 11 76 51 6f 4f c6 2f c2 5c 27 99 94 01 05 62 6f
    62 03 13 ef 8e 75 8f 5a 5a 08 da 45 ca 6d d0 7f e3 4f 7b e4 04 06 7f 00
    00 01 05 06 00 00 00 00 50 12 fe 37 d4 0a 78 51 a2 54 32 c9 b4 af b0 35
    45 06
    """
)
RADTEST_CHAP_ACCESS_ACCEPT = _hex(
    """
    02 67 00 26 4b 06 6c 9e 4b 46 e5 b8 4e c6 0d c8 d2 5e 5d 09 50 12 89 40
    35 40 35 c3 3e fc ff 10 01 4c 80 a1 81 3d
    """
)

# --- radtest -t mschap bob hello ... (MS-CHAPv1, RFC 2548 2.1.2 / 2.1.3) ---------------
# Attributes in order: User-Name, NAS-IP-Address, NAS-Port, Message-Authenticator, then
# two Vendor-Specific (26) attributes of vendor 311, one sub-attribute each:
# MS-CHAP-Challenge (11, 8 octets) and MS-CHAP-Response (1, 50 octets: Ident 0x00,
# Flags 0x01, LM-Response 24 x 0x00, NT-Response 24 octets).
RADTEST_MSCHAP_ACCESS_REQUEST = _hex(
    """
    01 e4 00 81 d3 ca 60 c3 2a 15 2e e8 65 85 f9 c5 14 08 37 b7 01 05 62 6f
    62 04 06 7f 00 00 01 05 06 00 00 00 00 50 12 4e cc fd 50 63 fa 79 00 86
    00 34 a5 1a 07 c7 7c 1a 10 00 00 01 37 0b 0a 92 e0 99 ca 3a 25 28 a6 1a
    3a 00 00 01 37 01 34 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 5b 9c d4 07 69 ec e8 e0 cd 0c 80 3d 80 32 20
    19 3e e6 99 8e 6f f9 ea c2
    """
)
RADTEST_MSCHAP_ACCESS_ACCEPT = _hex(
    """
    02 e4 00 26 b9 16 ed af 09 e0 39 c8 d2 19 ae 0f ff 1d dd a1 50 12 c3 c8
    ea 5c 14 64 6c 90 81 fe 57 f6 3e 3c b6 15
    """
)

# --- eapol_test, EAP-MSCHAPv2 (network={ eap=MSCHAPV2 identity="bob" password="hello" }) -
# Every eapol_test Access-Request carries User-Name, NAS-IP-Address, Calling-Station-Id
# "02-00-00-00-00-01", Framed-MTU 1400, NAS-Port-Type 19, Service-Type 2, Connect-Info
# "CONNECT 11Mbps 802.11b", EAP-Message, [State,] Message-Authenticator (last).
# 1: EAP-Response/Identity "bob".
EAPOL_TEST_MSCHAPV2_REQUEST_1 = _hex(
    """
    01 00 00 78 9d 15 b2 b6 25 4c 56 d1 af 49 82 45 b7 6a 32 3c 01 05 62 6f
    62 04 06 7f 00 00 01 1f 13 30 32 2d 30 30 2d 30 30 2d 30 30 2d 30 30 2d
    30 31 0c 06 00 00 05 78 3d 06 00 00 00 13 06 06 00 00 00 02 4d 18 43 4f
    4e 4e 45 43 54 20 31 31 4d 62 70 73 20 38 30 32 2e 31 31 62 4f 0a 02 40
    00 08 01 62 6f 62 50 12 b2 d7 1c 7f 68 64 83 0f b2 98 12 f3 4f aa b8 e4
    """
)
# Responder: EAP-Request/MSCHAPv2 Challenge (OpCode 1, MS-CHAPv2-ID 0x41, MS-Length 0x23,
# Value-Size 16, the authenticator challenge, Name "responder") + State.
EAPOL_TEST_MSCHAPV2_CHALLENGE_1 = _hex(
    """
    0b 00 00 55 b2 bb a1 3d e3 53 fd fc c9 ea c9 f7 3e f6 7f 75 4f 25 01 41
    00 23 1a 01 41 00 1e 10 d6 22 e8 3b 6f ef 47 71 cd 6d 6d 8a a3 ca fb 22
    72 65 73 70 6f 6e 64 65 72 18 0a 0c 43 aa 27 6f e6 e2 f4 50 12 09 43 96
    e4 10 be 84 2b c0 80 55 d2 20 79 69 74
    """
)
# 2: EAP-Response/MSCHAPv2 Response (OpCode 2, Value-Size 49: PeerChallenge 16,
# Reserved 8, NT-Response 24, Flags 0; Name "bob").
EAPOL_TEST_MSCHAPV2_REQUEST_2 = _hex(
    """
    01 01 00 b8 f0 62 a6 8a c5 2b 1b 98 bd 58 7a 38 3e 9b 0d 39 01 05 62 6f
    62 04 06 7f 00 00 01 1f 13 30 32 2d 30 30 2d 30 30 2d 30 30 2d 30 30 2d
    30 31 0c 06 00 00 05 78 3d 06 00 00 00 13 06 06 00 00 00 02 4d 18 43 4f
    4e 4e 45 43 54 20 31 31 4d 62 70 73 20 38 30 32 2e 31 31 62 4f 40 02 41
    00 3e 1a 02 41 00 39 31 a3 cf 5b 9f eb cb c4 c6 93 45 94 60 68 fc 07 18
    00 00 00 00 00 00 00 00 ea e3 3c 40 69 15 03 da c1 d7 c3 e9 4f 2e 3f c8
    8b c0 5d 77 9a 65 e9 2f 00 62 6f 62 18 0a 0c 43 aa 27 6f e6 e2 f4 50 12
    e1 28 5f 74 2c 29 47 23 6f 39 8f 68 17 ad 6f a5
    """
)
# Responder: EAP-Request/MSCHAPv2 Success (OpCode 3) "S=<AuthenticatorResponse> M=ok".
EAPOL_TEST_MSCHAPV2_CHALLENGE_2 = _hex(
    """
    0b 01 00 6a 22 88 65 fa db 55 1b 76 00 81 cc 54 4b 45 73 00 4f 3a 01 42
    00 38 1a 03 41 00 33 53 3d 45 32 36 46 34 34 35 30 37 36 43 41 43 45 42
    32 31 31 37 36 42 38 36 45 38 46 39 30 42 39 39 30 45 36 30 46 43 30 43
    42 20 4d 3d 6f 6b 18 0a d8 ec 1d 95 70 9f 89 3f 50 12 5a 70 a3 08 69 cd
    70 3e 5d 1b 3e 20 e6 fb 6b 10
    """
)
# 3: EAP-Response/MSCHAPv2 Success (type data 0x03).
EAPOL_TEST_MSCHAPV2_REQUEST_3 = _hex(
    """
    01 02 00 80 2d 1c 6e 73 e6 4a 32 f5 a5 01 99 64 08 a7 07 fa 01 05 62 6f
    62 04 06 7f 00 00 01 1f 13 30 32 2d 30 30 2d 30 30 2d 30 30 2d 30 30 2d
    30 31 0c 06 00 00 05 78 3d 06 00 00 00 13 06 06 00 00 00 02 4d 18 43 4f
    4e 4e 45 43 54 20 31 31 4d 62 70 73 20 38 30 32 2e 31 31 62 4f 08 02 42
    00 06 1a 03 18 0a d8 ec 1d 95 70 9f 89 3f 50 12 12 90 e5 73 0e 07 0b 4c
    66 88 16 17 e3 4c e3 d8
    """
)
# Responder: Access-Accept with EAP-Success, MS-MPPE-Send-Key (salt 0x8001) and
# MS-MPPE-Recv-Key (salt 0x8002), RFC 2548 2.4.2/2.4.3 encrypted with request 3's
# authenticator. eapol_test decrypted them to the keys below and found
# PMK = Recv-Key || Send-Key equal to its own MSK[0:32] ("MPPE keys OK: 1").
EAPOL_TEST_MSCHAPV2_ACCEPT = _hex(
    """
    02 02 00 80 07 f4 58 d2 72 8e 74 d5 62 45 46 69 e7 c3 cc 73 4f 06 03 42
    00 04 1a 2a 00 00 01 37 10 24 80 01 45 4d 21 8b 71 f7 44 9e a7 48 dd d0
    ed c3 4b b0 73 86 c9 3a 29 f1 5c c8 ed 41 34 42 76 4a 1a c2 1a 2a 00 00
    01 37 11 24 80 02 0a a8 c7 a8 fb 07 e1 0a fc b1 c8 e4 57 1a 6e 9c fb 05
    38 30 84 01 00 ef b8 86 20 ce d1 5e 26 02 50 12 e1 b2 0e 18 14 18 02 3a
    7d a3 af a7 80 eb 33 8e
    """
)
# The MS-CHAPv2 fields inside those EAP-Messages:
EAPOL_TEST_MSCHAPV2_AUTHENTICATOR_CHALLENGE = _hex("d622e83b6fef4771cd6d6d8aa3cafb22")
EAPOL_TEST_MSCHAPV2_PEER_CHALLENGE = _hex("a3cf5b9febcbc4c69345946068fc0718")
EAPOL_TEST_MSCHAPV2_NT_RESPONSE = _hex("eae33c40691503dac1d7c3e94f2e3fc88bc05d779a65e92f")
# Server send key (RFC 3079 Magic3) and server receive key (Magic2), as eapol_test printed
# them ("MS-MPPE-Send-Key (sign)" / "MS-MPPE-Recv-Key (crypt)").
EAPOL_TEST_MSCHAPV2_MPPE_SEND_KEY = _hex("8b 41 e9 13 0b 8b 61 ac 99 0f 35 09 5d 48 38 8f")
EAPOL_TEST_MSCHAPV2_MPPE_RECV_KEY = _hex("63 91 55 28 a9 fe 5a 1b 3c f1 d2 36 7c 19 35 bd")

# --- eapol_test -n, EAP-MD5 (network={ eap=MD5 identity="bob" password="hello" }) -------
EAPOL_TEST_MD5_REQUEST_1 = _hex(
    """
    01 00 00 78 91 9a 25 53 8e 93 34 63 15 9c a3 72 f6 48 f7 91 01 05 62 6f
    62 04 06 7f 00 00 01 1f 13 30 32 2d 30 30 2d 30 30 2d 30 30 2d 30 30 2d
    30 31 0c 06 00 00 05 78 3d 06 00 00 00 13 06 06 00 00 00 02 4d 18 43 4f
    4e 4e 45 43 54 20 31 31 4d 62 70 73 20 38 30 32 2e 31 31 62 4f 0a 02 1a
    00 08 01 62 6f 62 50 12 7b ad 37 28 28 2e ed fc 53 c1 cb 79 60 ef 9c b6
    """
)
# Responder: EAP-Request/MD5-Challenge (type 4, Value-Size 16) + State.
EAPOL_TEST_MD5_CHALLENGE_1 = _hex(
    """
    0b 00 00 48 6e 07 dc 73 e8 b0 93 64 49 14 61 5a f9 19 8d c1 4f 18 01 1b
    00 16 04 10 76 f1 f4 0c 30 f9 f2 a4 07 fe 18 b9 aa 3c 42 09 18 0a f1 9f
    eb cb ce 24 3d 7c 50 12 1e 52 c3 7b db 13 11 2c f5 59 a7 76 ac 17 b8 61
    """
)
# EAP-Response/MD5: MD5(EAP identifier + password + challenge), RFC 1994 / RFC 3748 5.4.
EAPOL_TEST_MD5_REQUEST_2 = _hex(
    """
    01 01 00 90 bb 62 a0 fe b2 0d 75 2d 6a 2e 6d d2 50 82 c9 de 01 05 62 6f
    62 04 06 7f 00 00 01 1f 13 30 32 2d 30 30 2d 30 30 2d 30 30 2d 30 30 2d
    30 31 0c 06 00 00 05 78 3d 06 00 00 00 13 06 06 00 00 00 02 4d 18 43 4f
    4e 4e 45 43 54 20 31 31 4d 62 70 73 20 38 30 32 2e 31 31 62 4f 18 02 1b
    00 16 04 10 0b 78 9e 0a 3d f9 19 02 44 9f e6 80 31 e3 27 c0 18 0a f1 9f
    eb cb ce 24 3d 7c 50 12 87 46 c5 0a 0c 0a 57 5c f8 82 b5 5b 41 a2 03 95
    """
)
# Responder: Access-Accept with EAP-Success (no keys: EAP-MD5 derives none).
EAPOL_TEST_MD5_ACCEPT = _hex(
    """
    02 01 00 2c 40 c8 22 c7 05 1f d8 ad 4f 0c cb 44 7d 64 46 22 4f 06 03 1b
    00 04 50 12 88 77 50 2e 70 c2 f0 68 15 7e 1b 8f 39 fd af 9c
    """
)
