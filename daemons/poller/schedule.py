"""When each target is polled, and which poller polls it. Pure.

Polls fall on fixed slots of wall-clock time: a target of interval I is polled at
``k * I + offset`` (the offset a hash of its name, spreading targets over the interval),
whichever poller holds it. A target handed from one poller to another (a poller added,
stopped or dead) is polled by the new one at the next slot: never twice in one slot, and
the handovers of a rebalance happen target by target at their own slots, not in a burst.

Which poller should hold a target: rendezvous (highest random weight) hashing over the live
pollers. Every poller computes the same answer from the same list; a poller joining or
leaving moves only the targets it gains or had (about 1/n of them).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence


def offset(name: str, interval: float) -> float:
    """Where in its interval a target's slots fall (seconds), stable for its name."""
    return (zlib.crc32(name.encode()) % 1000) / 1000 * interval


def next_slot(name: str, interval: float, after: float) -> float:
    """The first slot of the target strictly after ``after`` (epoch seconds)."""
    off = offset(name, interval)
    return (math.floor((after - off) / interval) + 1) * interval + off


def owner(target: str, pollers: Sequence[str]) -> str | None:
    """The poller that should hold ``target`` (None when there is none)."""
    best, chosen = b"", None
    for p in pollers:
        weight = hashlib.blake2b(f"{p}\0{target}".encode(), digest_size=8).digest()
        if weight > best:
            best, chosen = weight, p
    return chosen
