"""Counter32/Counter64 samples to rates, with wrap and reset detection. Pure.

A rate needs two readings of the same counter. Between them:
- the agent may have restarted (its sysUpTime went down): counters start again from
  zero, so the interval has no rate (a *reset*);
- a Counter32 may have wrapped past 2^32 once: the difference is taken modulo 2^32, but
  only if the rate that implies is believable (at most ``max_rate``; for an interface,
  its speed). Otherwise the counter went backwards for another reason, a *reset*;
- a Counter64 does not wrap in practice (2^64 octets at 100 Gbit/s is 46 years), so going
  backwards is always a reset.
RFC 2863 §3.1.6 (discontinuities) and RFC 2578 §7.1.6/§7.1.10 (Counter32/Counter64).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

WRAP32 = 2**32
WRAP64 = 2**64


class Outcome(Enum):
    RATE = "rate"
    WRAP = "wrap"  # a rate, after one Counter32 wrap
    RESET = "reset"  # agent restart or counter discontinuity: no rate for this interval
    STALE = "stale"  # no time passed, or time went backwards: no rate


class Reading(NamedTuple):  # NamedTuples: immutable, and cheaper to make than dataclasses
    value: int
    at: float  # seconds (the poller's monotonic clock)
    uptime: int | None = None  # the agent's sysUpTime in hundredths, if read with it


class Rate(NamedTuple):
    outcome: Outcome
    per_second: float | None


def rate(prev: Reading, cur: Reading, bits: int = 64, max_rate: float | None = None) -> Rate:
    """The rate per second between two readings of one counter."""
    dt = cur.at - prev.at
    if dt <= 0:
        return Rate(Outcome.STALE, None)
    if prev.uptime is not None and cur.uptime is not None and cur.uptime < prev.uptime:
        return Rate(Outcome.RESET, None)
    delta = cur.value - prev.value
    if delta >= 0:
        return Rate(Outcome.RATE, delta / dt)
    if bits == 32 and 0 <= prev.value < WRAP32 and 0 <= cur.value < WRAP32:
        wrapped = (delta + WRAP32) / dt
        if max_rate is None or wrapped <= max_rate:
            return Rate(Outcome.WRAP, wrapped)
    return Rate(Outcome.RESET, None)


def octets_limit(if_speed_bps: int | None, slack: float = 1.1) -> float | None:
    """The most octets/s an interface of this speed can count (a wrap is believable only
    below it); None when the speed is unknown."""
    if not if_speed_bps:
        return None
    return if_speed_bps / 8 * slack
