"""What a proxy does to the bytes (RFC 2865 §2.3, §5.33; RFC 5080 §2.2; RFC 3579 §3.2). Pure.

Toward the home server (:func:`upstream_request`): the NAS's attributes in their order,
without its Message-Authenticator; User-Password recovered with the NAS's secret and
hidden again with the home server's and a new Request Authenticator (RFC 2865 §5.2);
a CHAP-Password whose challenge was the Request Authenticator gets it as CHAP-Challenge
(RFC 2865 §5.3), since the authenticator changes; the User-Name stripped of its realm when
the realm says so; the NAS's Proxy-State kept and ours added last (§5.33); a new
Message-Authenticator on every packet, accounting included (BlastRADIUS: the home server
can require it, and ours is first).

Back to the NAS (:func:`downstream_reply`): the reply's Response Authenticator and (for
Access-* replies, unless told otherwise) its Message-Authenticator are checked with the
home server's secret, our Proxy-State must be the last one and is removed, salt-encrypted
values (Tunnel-Password, MS-MPPE keys) are re-encrypted for the NAS, and the rest is left
to ``Admission.answer`` (signed for the NAS, its Proxy-State copied back).

Randomness (authenticators, salts) comes in as arguments.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemons.radius.codec import (
    AUTH_LEN,
    Attr,
    Code,
    DecodeError,
    DropReason,
    Packet,
    check_response_authenticator,
    decode,
    encode_request,
    hide_password,
    iter_vsa,
    message_authenticator,
    salt_decrypt,
    salt_encrypt,
    unhide_password,
    vsa,
)

ACCT_DELAY_TIME = 41
TUNNEL_PASSWORD = 69
MICROSOFT = 311
MS_MPPE_KEYS = (16, 17)  # MS-MPPE-Send-Key, MS-MPPE-Recv-Key (RFC 2548 §2.4.2, 2.4.3)
ACCESS_REPLIES = (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE)


@dataclass(frozen=True, slots=True)
class Forward:
    """A request as it goes to home servers, whichever: re-hidden per server at send."""

    code: int
    attributes: tuple[tuple[int, bytes], ...]  # no Message-Authenticator, no User-Password
    password: bytes | None  # the User-Password in clear (memory only), re-hidden per server
    proxy_state: bytes  # ours, added last


def forward_of(
    pkt: Packet, nas_secret: bytes, user_name: str | None, proxy_state: bytes
) -> Forward:
    """What to send upstream for the NAS's ``pkt``. ``user_name``: the User-Name to put
    in its place (the realm stripped), None to keep it. Raises DecodeError (MALFORMED)."""
    attrs: list[tuple[int, bytes]] = []
    password = None
    has_challenge = pkt.get(Attr.CHAP_CHALLENGE) is not None
    for atype, value in pkt.attributes:
        if atype == Attr.MESSAGE_AUTHENTICATOR:
            continue
        if atype == Attr.USER_PASSWORD:
            password = unhide_password(value, nas_secret, pkt.authenticator)
            continue
        renamed = atype == Attr.USER_NAME and user_name is not None
        attrs.append((atype, user_name.encode() if renamed and user_name else value))
        if atype == Attr.CHAP_PASSWORD and not has_challenge:
            attrs.append((Attr.CHAP_CHALLENGE, pkt.authenticator))
            has_challenge = True
    return Forward(pkt.code, tuple(attrs), password, proxy_state)


def upstream_request(
    fwd: Forward,
    identifier: int,
    secret: bytes,
    authenticator: bytes,
    delay: int = 0,
) -> tuple[bytes, bytes]:
    """The packet for one home server and the Request Authenticator it carries.
    ``authenticator``: 16 random octets (used for Access-Request and Status-Server;
    accounting computes its own). ``delay``: seconds to add to Acct-Delay-Time (RFC 2866
    §5.2, a record sent later than it came). Raises ValueError (too big)."""
    attrs = list(fwd.attributes)
    if fwd.code == Code.ACCOUNTING_REQUEST and delay > 0:
        old = next((v for t, v in attrs if t == ACCT_DELAY_TIME and len(v) == 4), bytes(4))
        new = min(int.from_bytes(old, "big") + delay, 2**32 - 1).to_bytes(4, "big")
        attrs = [(t, v) for t, v in attrs if t != ACCT_DELAY_TIME] + [(ACCT_DELAY_TIME, new)]
    if fwd.password is not None:
        attrs.insert(
            _after_user_name(attrs),
            (Attr.USER_PASSWORD, hide_password(fwd.password, secret, authenticator)),
        )
    attrs.append((Attr.PROXY_STATE, fwd.proxy_state))
    computed = fwd.code == Code.ACCOUNTING_REQUEST
    raw = encode_request(fwd.code, identifier, attrs, secret, None if computed else authenticator)
    return raw, raw[4:20]


def _after_user_name(attrs: Sequence[tuple[int, bytes]]) -> int:
    for i, (t, _) in enumerate(attrs):
        if t == Attr.USER_NAME:
            return i + 1
    return 0


def status_server(identifier: int, secret: bytes, authenticator: bytes, nas_id: bytes) -> bytes:
    """A Status-Server probe (RFC 5997 §3: Message-Authenticator required)."""
    return encode_request(
        Code.STATUS_SERVER, identifier, [(Attr.NAS_IDENTIFIER, nas_id)], secret, authenticator
    )


def check_reply(
    raw: bytes, request_auth: bytes, secret: bytes, require_message_auth: bool
) -> Packet:
    """A home server's reply, verified: Response Authenticator always; the
    Message-Authenticator when present, and demanded on Access-* replies when
    ``require_message_auth`` (BlastRADIUS). Raises DecodeError."""
    pkt = decode(raw)
    if not check_response_authenticator(pkt.raw, request_auth, secret):
        raise DecodeError(DropReason.BAD_AUTHENTICATOR, "reply from home server")
    values = pkt.get_all(Attr.MESSAGE_AUTHENTICATOR)
    if not values:
        if require_message_auth and pkt.code in ACCESS_REPLIES:
            raise DecodeError(DropReason.MISSING_MESSAGE_AUTHENTICATOR, "reply from home server")
        return pkt
    want = message_authenticator(pkt.raw, secret, request_auth)
    if len(values) != 1 or not hmac.compare_digest(values[0], want):
        raise DecodeError(DropReason.BAD_MESSAGE_AUTHENTICATOR, "reply from home server")
    return pkt


def downstream_reply(
    reply: Packet,
    proxy_state: bytes,
    home_secret: bytes,
    home_auth: bytes,
    nas_secret: bytes,
    nas_auth: bytes,
    salt: Callable[[], bytes],
) -> list[tuple[int, bytes]]:
    """The reply's attributes for the NAS (Admission.answer signs them and adds the NAS's
    Proxy-State). Raises DecodeError when our Proxy-State is not the last one."""
    states = reply.get_all(Attr.PROXY_STATE)
    if not states or not hmac.compare_digest(states[-1], proxy_state):
        raise DecodeError(DropReason.MALFORMED, "reply without our Proxy-State")
    out: list[tuple[int, bytes]] = []
    for atype, value in reply.attributes:
        if atype in (Attr.MESSAGE_AUTHENTICATOR, Attr.PROXY_STATE):
            continue
        if atype == TUNNEL_PASSWORD and len(value) > 1:  # RFC 2868 §3.5: a tag, then salted
            plain = salt_decrypt(value[1:], home_secret, home_auth)
            out.append((atype, value[:1] + salt_encrypt(plain, nas_secret, nas_auth, salt())))
        elif atype == Attr.VENDOR_SPECIFIC:
            out.append(
                (atype, _reseal_vsa(value, home_secret, home_auth, nas_secret, nas_auth, salt))
            )
        else:
            out.append((atype, value))
    return out


def _reseal_vsa(
    value: bytes,
    home_secret: bytes,
    home_auth: bytes,
    nas_secret: bytes,
    nas_auth: bytes,
    salt: Callable[[], bytes],
) -> bytes:
    subs = list(iter_vsa(value))
    if not subs or subs[0][0] != MICROSOFT or not any(st in MS_MPPE_KEYS for _, st, _ in subs):
        return value
    out = bytearray(value[:4])
    for vendor, st, sv in subs:
        if st in MS_MPPE_KEYS:
            plain = salt_decrypt(sv, home_secret, home_auth)
            out += vsa(vendor, st, salt_encrypt(plain, nas_secret, nas_auth, salt()))[1][4:]
        else:
            out += vsa(vendor, st, sv)[1][4:]
    return bytes(out)


def proxy_state_token(counter: int, nonce: bytes) -> bytes:
    """Our Proxy-State value: a counter and a random nonce, opaque to everyone else."""
    if len(nonce) != AUTH_LEN // 2:
        raise ValueError("nonce is 8 octets")
    return b"nd" + counter.to_bytes(6, "big") + nonce
