"""Token buckets, one or one per key (a NAS, a source address), with a bounded table.

Pure: no clock of its own, no I/O. The caller passes ``now`` (seconds, monotonic) to every
call, so the same code serves the RADIUS per-NAS limit, the ACS per-source-IP limit and the
tests, which drive the clock by hand.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens a second. A request takes
one token; with none left it is refused, and :meth:`TokenBucket.retry_after` says how long
until a token is back (the HTTP ``Retry-After``).

:class:`KeyedBuckets` keeps one bucket per key in insertion/refresh order. Keys come from
the network (a spoofed-source flood makes a new key per packet), so the table is capped:
an idle bucket that has refilled to ``burst`` carries no information and is dropped, and
when the table is full the least recently used bucket goes. An evicted key starts again
with a full bucket, which is the most it could have had anyway after being idle; a key
evicted while still in debt gets its burst back early, which only a flood of more than
``max_keys`` distinct keys can cause, and then the flood is the larger problem.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst``; starts full."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        """Raises ValueError if ``rate`` is not positive or ``burst`` is below 1."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed > 0:  # a clock that steps back adds nothing
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; whether they were taken."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def retry_after(self, now: float, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are there (0 if they are now)."""
        self._refill(now)
        missing = n - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to its burst (it then says nothing a new one would
        not)."""
        self._refill(now)
        return self.tokens >= self.burst


class KeyedBuckets(Generic[K]):
    """One :class:`TokenBucket` per key, at most ``max_keys`` of them."""

    def __init__(self, rate: float, burst: float, max_keys: int = 65_536) -> None:
        """Raises ValueError on a rate <= 0, a burst < 1 or max_keys < 1."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()
        #: buckets dropped because the table was full (not the idle ones)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def take(self, key: K, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens from ``key``'s bucket (made full if new); whether they were
        taken."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, n)

    def retry_after(self, key: K, now: float, n: float = 1.0) -> float:
        """Seconds until ``key`` has ``n`` tokens (0 for an unknown key)."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.retry_after(now, n)

    def prune(self, now: float, limit: int | None = None) -> int:
        """Drop idle (refilled) buckets from the least recently used end, stopping at the
        first one still in debt or after ``limit`` looks; how many were dropped."""
        dropped = 0
        looked = 0
        while self._buckets and (limit is None or looked < limit):
            key, bucket = next(iter(self._buckets.items()))
            looked += 1
            if not bucket.full(now):
                break
            del self._buckets[key]
            dropped += 1
        return dropped

    def _make_room(self, now: float) -> None:
        # Cheap first: idle buckets at the old end (a few looks, amortised O(1)).
        self.prune(now, limit=8)
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)
            self.evicted += 1
