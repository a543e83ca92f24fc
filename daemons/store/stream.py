"""The event stream: one Redis stream that every daemon publishes to and the API reads.

Session start, interim and stop (from accounting) and the events of the events table go
here, so a NOC screen (SSE) or a billing system (gRPC Watch) follows them live and resumes
from the last id it saw. The stream is capped at ``redis.event_stream_max_len`` entries
(approximately: Redis trims whole nodes); older entries are gone, the events table and
the accounting ledger in PostgreSQL stay the record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from daemons.store.cache import Cache, pack, unpack

Entry = tuple[str, str, dict[str, Any]]  # (stream id, kind, data)


def stream_key(cache: Cache) -> str:
    return cache.key("ev", "stream")


def add(pipe: Any, cache: Cache, kind: str, data: dict[str, Any]) -> None:
    """Queue one XADD on a pipeline (the caller's round trip carries it)."""
    pipe.xadd(
        stream_key(cache),
        {"k": kind, "d": pack(data), "t": repr(time.time())},
        maxlen=cache.stream_max_len,
        approximate=True,
    )


async def publish(cache: Cache, kind: str, data: dict[str, Any]) -> str:
    """Append one entry now; its id."""
    entry_id = await cache.client.xadd(
        stream_key(cache),
        {"k": kind, "d": pack(data), "t": repr(time.time())},
        maxlen=cache.stream_max_len,
        approximate=True,
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _entry(raw_id: Any, fields: Any) -> Entry:
    entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    kind = fields.get(b"k", b"").decode("utf-8", "replace")
    try:
        data = unpack(fields.get(b"d", b"\x80"))
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {"value": data}
    return entry_id, kind, data


async def read_after(cache: Cache, after: str, count: int, block_ms: int = 0) -> list[Entry]:
    """Entries after the id ``after`` ("$" is "from now on"), waiting up to ``block_ms``
    for the first one when there are none (0: do not wait)."""
    key = stream_key(cache)
    if block_ms > 0:
        reply = await cache.client.xread({key: after}, count=count, block=block_ms)
    else:
        reply = await cache.client.xread({key: after}, count=count)
    out: list[Entry] = []
    streams: Any = reply or ()
    for _name, entries in streams:
        out += [_entry(i, f) for i, f in entries]
    return out


async def last_id(cache: Cache) -> str:
    """The id of the newest entry ("0-0" for an empty stream)."""
    newest: Any = await cache.client.xrevrange(stream_key(cache), count=1)
    return _entry(*newest[0])[0] if newest else "0-0"


async def recent(cache: Cache, count: int) -> list[Entry]:
    """The newest ``count`` entries, newest first (the console's rates and recent events)."""
    got: Any = await cache.client.xrevrange(stream_key(cache), count=count)
    return [_entry(i, f) for i, f in got]


async def oldest_id(cache: Cache) -> str | None:
    first: Any = await cache.client.xrange(stream_key(cache), count=1)
    return _entry(*first[0])[0] if first else None


def parse_id(text: str) -> tuple[int, int] | None:
    """A stream id ``ms-seq`` (or ``ms``) as a tuple for comparison; None if malformed."""
    ms, _, seq = text.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()) or len(ms) > 20 or len(seq) > 20:
        return None
    return int(ms), int(seq or 0)


FROM_START = ("0", "0-0")  # resume ids that mean "everything the stream holds"


@dataclass(frozen=True, slots=True)
class Gap:
    """The stream no longer holds every entry after ``after``: its oldest is ``oldest``."""

    after: str
    oldest: str


async def resume_point(cache: Cache, resume: str | None) -> tuple[str, Gap | None]:
    """Where a follower starts, and whether entries it asked for are gone.

    ``resume`` is the id of the last entry the follower saw: it starts after it, with a
    Gap when the oldest entry held is newer (entries were trimmed since; with Redis before
    7.0 nothing tells whether the one right after ``resume`` was among them, so this errs
    on the side of saying so). "0-0" is everything held, with no gap; None starts after
    the newest entry now. Raises ValueError if ``resume`` is not a stream id.
    """
    if resume is None:
        return await last_id(cache), None
    wanted = parse_id(resume)
    if wanted is None:
        raise ValueError(f"{resume!r} is not an id of the event stream")
    if resume in FROM_START:
        return "0-0", None
    oldest = await oldest_id(cache)
    if oldest is not None and (parse_id(oldest) or (0, 0)) > wanted:
        return resume, Gap(resume, oldest)
    return resume, None


async def follow(
    cache: Cache, after: str, count: int, block_ms: int
) -> AsyncGenerator[list[Entry], None]:
    """Batches of up to ``count`` entries after ``after``, in order, for ever; an empty
    batch when none came for ``block_ms`` (a follower's cue for a keepalive)."""
    cursor = after
    while True:
        entries = await read_after(cache, cursor, count, block_ms)
        if entries:
            cursor = entries[-1][0]
        yield entries


def block_ms(keepalive: float, socket_timeout: float) -> int:
    """How long one blocking read may wait: the keepalive period, within the Redis
    client's socket timeout."""
    return int(max(0.1, min(keepalive, socket_timeout - 1.0)) * 1000)
