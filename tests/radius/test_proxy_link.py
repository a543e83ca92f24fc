"""A home server's link keeps what it must to time requests out, and no more: an answered
request is freed at once. On main each link's deadline queue held every request it had
sent (with its job and packets) until its response_window passed, whether answered or not:
response_window x rate objects alive, and the garbage collections that walked them stalled
the event loop (open loop at 6,000 requests/s through the proxy: p99 371 ms; after: tens
of ms, benchmarks/radius_proxy.py)."""

from __future__ import annotations

import gc
import weakref

from daemons.radius.proxy_link import Link, Outstanding
from daemons.radius.realms import HomeServer


class Tracked:
    """Stands for the request's job (weak-referenceable, so its lifetime is observable)."""


def link() -> Link:
    server = HomeServer("home", "127.0.0.1", 1812, 1813, b"s3cret", response_window=5.0)
    return Link(server, lambda _link, _data, _channel: None)


def test_an_answered_request_is_freed_before_its_deadline() -> None:
    home = link()
    job = Tracked()
    gone = weakref.ref(job)
    out = Outstanding("request", None, bytes(16), 100.0, job=job)  # type: ignore[arg-type]
    home.sent(7, out, 105.0)
    del job, out
    assert gone() is not None
    del home.outstanding[7]  # answered
    gc.collect()
    assert gone() is None, "the deadline queue still holds the answered request"
    # What the queue keeps is numbers, which the garbage collector does not track.
    assert all(isinstance(x, int | float) for entry in home.deadlines for x in entry)
    assert home.expired(200.0) == []  # answered: not timed out


def test_an_unanswered_request_times_out_once_and_a_reused_key_is_not_confused() -> None:
    home = link()
    first = Outstanding("request", None, bytes(16), 100.0)
    home.sent(7, first, 105.0)
    del home.outstanding[7]  # answered; key 7 is free again
    second = Outstanding("request", None, bytes(16), 101.0)
    home.sent(7, second, 106.0)
    assert home.expired(105.5) == []  # the first entry's deadline: not the second request
    assert home.expired(106.0) == [(7, second)]
    assert home.expired(300.0) == []
