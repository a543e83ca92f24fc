"""daemons.core.ratelimit: token buckets driven by a hand clock."""

from __future__ import annotations

import pytest

from daemons.core.ratelimit import KeyedBuckets, TokenBucket


def test_bucket_burst_then_rate() -> None:
    b = TokenBucket(rate=10, burst=5, now=0.0)
    assert [b.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert b.retry_after(0.0) == pytest.approx(0.1)
    assert not b.take(0.05)
    assert b.take(0.1)
    assert not b.take(0.1)
    # never more than the burst, however long idle
    assert sum(b.take(100.0) for _ in range(20)) == 5


def test_bucket_clock_stepping_back_adds_nothing() -> None:
    b = TokenBucket(rate=1, burst=1, now=10.0)
    assert b.take(10.0)
    assert not b.take(5.0)
    assert not b.take(10.5)
    assert b.take(11.0)


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0.5, now=0)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1, burst=1, max_keys=0)


def test_keyed_buckets_are_independent() -> None:
    kb: KeyedBuckets[str] = KeyedBuckets(rate=1, burst=3)
    assert [kb.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert kb.take("b", 0.0)
    assert kb.retry_after("a", 0.0) == pytest.approx(1.0)
    assert kb.retry_after("nobody", 0.0) == 0.0


def test_keyed_buckets_bounded_under_a_flood_of_new_keys() -> None:
    kb: KeyedBuckets[int] = KeyedBuckets(rate=1, burst=2, max_keys=100)
    for i in range(10_000):  # a spoofed-source flood, one packet per address, no time passing
        kb.take(i, 0.0)
        assert len(kb) <= 100
    assert kb.evicted == 10_000 - 100
    # the newest keys are the ones kept
    assert 9_999 in kb and 0 not in kb


def test_idle_buckets_are_pruned_before_busy_ones_are_evicted() -> None:
    kb: KeyedBuckets[str] = KeyedBuckets(rate=10, burst=2, max_keys=3)
    kb.take("idle1", 0.0)
    kb.take("idle2", 0.0)
    kb.take("busy", 0.0)
    kb.take("busy", 0.0)
    kb.take("busy", 0.0)  # refused: busy is in debt
    # one second later idle1/idle2 have refilled, busy is used again (still tracked)
    assert kb.take("busy", 1.0)
    assert kb.take("new", 1.0)
    assert "idle1" not in kb and "busy" in kb and "new" in kb
    assert kb.evicted == 0  # dropped as idle, not evicted
    assert kb.prune(100.0) == 2  # busy and new, refilled by now
    assert len(kb) == 0


def test_prune_drops_refilled_buckets() -> None:
    kb: KeyedBuckets[str] = KeyedBuckets(rate=1, burst=1)
    for k in "abc":
        kb.take(k, 0.0)
    assert kb.prune(0.5) == 0
    assert kb.prune(1.0) == 3
    assert len(kb) == 0
