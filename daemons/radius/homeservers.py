"""Home servers' liveness, the choice of a pool member, and per-connection identifiers. Pure.

Each home server is ``alive``, ``zombie`` or ``dead`` (RFC 5080 §2.2.1 on failover, RFC
5997 on Status-Server; the states and their names are FreeRADIUS's):

- alive → zombie: a request went unanswered for ``response_window`` and nothing at all
  has been answered for ``zombie_period``;
- zombie → alive: any answer (a request's or a Status-Server probe's);
- zombie → dead: still no answer ``zombie_period`` after it became a zombie;
- dead → alive: ``answers_to_alive`` Status-Server probes answered in a row.

A zombie or dead server is probed with Status-Server every ``status_interval`` (the shell
owns the timer and asks :meth:`ServerState.probe_due`). New requests go to alive servers
only; when a pool has none, the pool is dead and the realm's dead answer applies.

:class:`Ids` hands out the RADIUS identifiers of one upstream (RFC 2865 §3: an identifier
tells outstanding requests apart per source address and port): 256 per channel (a UDP
source port, or the one stream connection); a key is ``channel << 8 | identifier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from daemons.radius.realms import HomePool, HomeServer, PoolType


class State(StrEnum):
    ALIVE = "alive"
    ZOMBIE = "zombie"
    DEAD = "dead"


STATE_VALUE = {State.ALIVE: 1, State.ZOMBIE: 0.5, State.DEAD: 0}


@dataclass
class ServerState:
    server: HomeServer
    state: State = State.ALIVE
    last_answer: float = 0.0  # monotonic time of the last answer of any kind
    since: float = 0.0  # when the state was entered
    probes_answered: int = 0  # in a row, while dead
    last_probe: float = 0.0
    outstanding: int = 0  # requests sent and not answered or timed out
    changes: list[tuple[State, State]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.state is State.ALIVE

    def _move(self, to: State, now: float) -> None:
        if to is not self.state:
            self.changes.append((self.state, to))
            self.state, self.since = to, now
            self.probes_answered = 0

    def answered(self, now: float, probe: bool = False) -> None:
        """A reply came from the server (to a request, or to a probe when ``probe``)."""
        self.last_answer = now
        if self.state is State.DEAD:
            if not probe:
                return
            self.probes_answered += 1
            if self.probes_answered >= self.server.answers_to_alive:
                self._move(State.ALIVE, now)
        elif self.state is State.ZOMBIE:
            self._move(State.ALIVE, now)

    def timed_out(self, now: float) -> None:
        """A request went unanswered for ``response_window``."""
        if self.state is State.ALIVE and now - self.last_answer >= self.server.zombie_period:
            self._move(State.ZOMBIE, now)

    def probe_lost(self, now: float) -> None:
        """A probe went unanswered: a dead server starts counting again."""
        self.probes_answered = 0

    def tick(self, now: float) -> None:
        """Time passes: a zombie unanswered for ``zombie_period`` is dead."""
        if self.state is State.ZOMBIE and now - self.since >= self.server.zombie_period:
            self._move(State.DEAD, now)

    def probe_due(self, now: float) -> bool:
        if self.state is State.ALIVE:
            return False
        if now - self.last_probe >= self.server.status_interval:
            self.last_probe = now
            return True
        return False


def choose(
    pool: HomePool,
    states: dict[str, ServerState],
    exclude: Sequence[str] = (),
    key: int | None = None,
) -> ServerState | None:
    """The pool member for a new request (None: no live member left but those in
    ``exclude``). Fail-over: the first live one in the list. Load-balance: with ``key``
    (accounting: a hash of Acct-Session-Id, so a session's records keep their order on
    one server) the live member it falls on, else the one with the fewest outstanding."""
    live = [states[n] for n in pool.servers if n not in exclude and states[n].usable]
    if not live:
        return None
    if pool.type is PoolType.FAILOVER:
        return live[0]
    if key is not None:
        return live[key % len(live)]
    return min(live, key=lambda s: s.outstanding)


class Ids:
    """The identifier keys of one upstream: ``channels`` x 256. A key is ``channel << 8 |
    identifier``. The first channel with one free is used (the others only when it is
    full: at an ordinary load one socket carries everything, which costs the loop less
    than spreading the replies over several), its identifiers handed out round-robin so
    a late reply to a freed identifier is unlikely to meet its successor soon. ``take``
    returns None when every one is outstanding."""

    def __init__(self, channels: int = 1) -> None:
        self._used: list[set[int]] = [set() for _ in range(channels)]
        self._next = [0] * channels

    def take(self) -> int | None:
        for channel, used in enumerate(self._used):
            if len(used) < 256:
                ident = self._next[channel]
                while ident in used:
                    ident = (ident + 1) & 0xFF
                used.add(ident)
                self._next[channel] = (ident + 1) & 0xFF
                return channel << 8 | ident
        return None

    def release(self, key: int) -> None:
        channel = key >> 8
        if channel < len(self._used):
            self._used[channel].discard(key & 0xFF)

    def __len__(self) -> int:
        return sum(len(used) for used in self._used)
