"""What the proxy has sent to a home server and not yet had answered (issue 28): a link per
home server, its identifier keys and the deadlines its sweep times out. Split from
``proxy_shell`` (which routes, fails over and answers the NAS) to keep each readable.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from daemons.radius import proxy
from daemons.radius.homeservers import Ids
from daemons.radius.realms import HomePool, HomeServer, Realm
from daemons.radius.shared import Job
from daemons.radius.upstream import Upstream, make_upstream


@dataclass(slots=True)
class Outstanding:
    """One request sent on a link and not yet answered."""

    kind: str  # "request", "probe" or "spool"
    fwd: proxy.Forward | None
    authenticator: bytes  # the Request Authenticator it carried
    sent_at: float
    job: Job | None = None
    pool: HomePool | None = None
    realm: Realm | None = None
    tried: list[str] = field(default_factory=list)
    done: Callable[[bool], None] | None = None  # spool forwards: answered or not
    serial: int = 0  # its entry in the link's deadlines (Link.sent)


class Link:
    """One home server's upstream, its identifier keys (``channel << 8 | identifier``) and
    what is outstanding under each."""

    def __init__(self, server: HomeServer, on_reply: Callable[[Link, bytes, int], None]) -> None:
        self.server = server
        self.upstream: Upstream = make_upstream(
            server, lambda data, channel: on_reply(self, data, channel)
        )
        self.ids = Ids(self.upstream.channels)
        self.outstanding: dict[int, Outstanding] = {}
        # (deadline, key, serial of what was sent): in send and so deadline order, swept
        # every SWEEP s. Numbers only: an answered request is freed at once (holding them
        # kept rate x response_window requests alive, and the collections walking them
        # stalled the loop up to 0.4 s at 6,000/s: tests/radius/test_proxy_link.py).
        self.deadlines: deque[tuple[float, int, int]] = deque()
        self._serials = itertools.count(1)

    def sent(self, key: int, out: Outstanding, deadline: float) -> None:
        """``out`` is outstanding under ``key`` until answered or ``deadline``."""
        out.serial = serial = next(self._serials)
        self.outstanding[key] = out
        self.deadlines.append((deadline, key, serial))

    def expired(self, now: float) -> list[tuple[int, Outstanding]]:
        """What is still outstanding past its deadline, taken off the sweep."""
        out: list[tuple[int, Outstanding]] = []
        deadlines = self.deadlines
        outstanding = self.outstanding
        while deadlines and deadlines[0][0] <= now:
            _, key, serial = deadlines.popleft()
            sent = outstanding.get(key)
            if sent is not None and sent.serial == serial:
                out.append((key, sent))
        return out
