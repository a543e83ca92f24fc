"""Counter rates: plain, Counter32 wrap, resets by sysUpTime or by going backwards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemons.poller.rates import WRAP32, Outcome, Reading, octets_limit, rate


def test_plain_rate() -> None:
    r = rate(Reading(1_000, 0.0), Reading(61_000, 60.0))
    assert r.outcome is Outcome.RATE and r.per_second == 1_000


def test_counter32_wrap_within_the_interface_speed() -> None:
    prev, cur = Reading(WRAP32 - 1_000, 0.0, 500), Reading(4_000, 10.0, 1_500)
    r = rate(prev, cur, bits=32, max_rate=octets_limit(1_000_000_000))
    assert r.outcome is Outcome.WRAP and r.per_second == 500


def test_counter32_backwards_too_far_for_the_speed_is_a_reset() -> None:
    # 4 GB in 10 s on a 100 Mbit/s port cannot be a wrap.
    prev, cur = Reading(10, 0.0), Reading(5, 10.0)
    assert rate(prev, cur, bits=32, max_rate=octets_limit(100_000_000)).outcome is Outcome.RESET


def test_counter64_backwards_is_a_reset_and_uptime_drop_is_a_reset() -> None:
    assert rate(Reading(10**12, 0.0), Reading(5, 10.0), bits=64).outcome is Outcome.RESET
    rebooted = rate(Reading(100, 0.0, 900_000), Reading(200, 10.0, 300), bits=64)
    assert rebooted.outcome is Outcome.RESET and rebooted.per_second is None


def test_no_time_no_rate() -> None:
    assert rate(Reading(1, 5.0), Reading(2, 5.0)).outcome is Outcome.STALE


@given(
    start=st.integers(0, WRAP32 - 1),
    increment=st.integers(0, WRAP32 - 1),
    dt=st.floats(0.5, 3600),
)
def test_a_single_counter32_wrap_always_gives_back_the_increment(
    start: int, increment: int, dt: float
) -> None:
    cur = (start + increment) % WRAP32
    r = rate(Reading(start, 0.0), Reading(cur, dt), bits=32)
    assert r.per_second is not None
    assert abs(r.per_second * dt - increment) < 1e-6 * max(1, increment)
