"""One poll of one target: read what its profiles ask (the known rows with GET between
walks), and turn the answer into samples. The service calls it on its schedule; tests and
the benchmark call it with a clock of their own (``now``: monotonic seconds), so hours of
polls run in seconds against a real agent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemons.poller import engine
from daemons.poller.client import Credentials, read_rows
from daemons.poller.profiles import Profile


@dataclass(frozen=True, slots=True)
class Polled:
    values: dict[str, Any]  # every varbind read, by OID
    samples: list[engine.Sample]
    walked: bool  # the tables were walked (not read by GET of the known rows)


async def poll_once(
    address: str,
    port: int,
    creds: Credentials,
    profiles: Sequence[Profile],
    state: engine.TargetState,
    now: float,
    *,
    wait: float = 2.0,
    retries: int = 2,
    rediscover: float = 900.0,
) -> Polled:
    """Read and digest one poll; ``state`` carries counters and known rows to the next.
    Raises client.PollError."""
    gets, walks = engine.plan(profiles, state)
    walk = state.walk_due(walks, now, rediscover)
    got = await read_rows(
        address, port, creds, gets, walks, wait, retries, () if walk else state.rows
    )
    resets = state.resets
    samples = engine.samples(profiles, got.values, state, now)
    state.after_read(
        walks,
        gets,
        got.values,
        got.walked,
        now,
        resets,
        None if got.walked else got.rows,
        creds.get_budget,
    )
    return Polled(got.values, samples, got.walked)
