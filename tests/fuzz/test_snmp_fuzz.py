"""Hostile SNMP notifications: any datagram on the trap socket, v1, v2c and v3/USM.

The property: the v1/v2c decoder gives a ``Trap`` or raises ``TrapError``; the v3 receiver
gives notifications or a refusal reason; nothing else escapes, every trap serializes, and
an inform's response decodes as the same version. Inputs are net-snmp's own datagrams
(snmptrap v1/v2c/v3, snmpinform) mutated, and random bytes.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from daemons.poller import traps
from tests.fuzz import seeds
from tests.fuzz.paths import receivers, snmp_receive
from tests.fuzz.strategies import budget, mutated


@budget(300)
@given(st.binary(max_size=200))
@example(b"\x30\x03\x02\x01\x05garbage")
def test_random_bytes(data: bytes) -> None:
    snmp_receive(data)


@budget(600)
@given(mutated(seeds.snmp_datagrams(), max_ops=3))
def test_mutated_datagrams(data: bytes) -> None:
    snmp_receive(data)


def test_the_seeds_decode() -> None:
    assert [t.trap_oid for t in snmp_receive(seeds.SNMP_V1_TRAP)] == ["1.3.6.1.4.1.5875.0.17"]
    assert [t.name for t in snmp_receive(seeds.SNMP_V2C_TRAP)] == ["linkDown"]
    assert [t.inform for t in snmp_receive(seeds.SNMP_V2C_INFORM)] == [True]
    authpriv, _noauth = receivers()
    got, _replies, refused = authpriv.handle(seeds.SNMP_V3_AUTHPRIV, ("127.0.0.1", 162))
    assert refused == "" and [t.name for t in got] == ["authenticationFailure"]


def test_a_user_with_keys_is_not_accepted_without_them() -> None:
    """snmptrap -v3 -u trapper -l noAuthNoPriv: USM took this message from a user whose
    keys are configured (authPriv), so anyone who knew a user name could send traps as that
    user without its passphrases. It is refused now; a user configured without keys still
    gets it."""
    authpriv, noauth = receivers()
    got, replies, refused = authpriv.handle(seeds.SNMP_V3_NOAUTH, ("127.0.0.1", 162))
    assert (got, replies, refused) == ([], [], "level")
    got, _replies, refused = noauth.handle(seeds.SNMP_V3_NOAUTH, ("127.0.0.1", 162))
    assert refused == "" and [t.varbinds for t in got] == [{"1.3.6.1.2.1.1.5.0": "olt1"}]


# Indefinite-length BER (0x80) whose contents hold one component more than the type: pyasn1
# raised IndexError from inside its decoder, past the decoders' except clauses, out of the
# trap socket's datagram_received (a traceback logged for each such datagram).
INDEFINITE = {
    "v1": "302802010004067075626c6963a48006032b06014004c000020202010602011143010030000201000000",
    "v2c": "301d02010104067075626c6963a78002010102010002010030000201000000",
    "v3": "30170201033080020101020201e40401000201030201000000",
}


def test_indefinite_lengths_with_extra_components_are_refused() -> None:
    for version in ("v1", "v2c"):
        try:
            traps.decode(bytes.fromhex(INDEFINITE[version]))
        except traps.TrapError:
            pass
        else:
            raise AssertionError(f"{version}: decoded")
    for receiver in receivers():
        assert receiver.handle(bytes.fromhex(INDEFINITE["v3"]), ("127.0.0.1", 162)) == (
            [],
            [],
            "malformed",
        )
