"""netd's gRPC channel to a VOLTHA core against grpc-go's default keepalive enforcement
(rw_core sets no policy: MinTime 5 minutes, no pings without calls, GOAWAY
ENHANCE_YOUR_CALM "too_many_pings" at the third strike). The fake core enforces it; the
behavioural test scales both sides' times down 60 times."""

from __future__ import annotations

from typing import Any

from daemons.voltha.client import CHANNEL_OPTIONS
from tests.voltha.fake_core import GRPC_GO_MIN_PING_INTERVAL
from tests.voltha.test_fakes_learned import peers_across_idle

SCALE = 60


TIMES = ("grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms")


def scaled(options: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(k, max(1, v // SCALE) if k in TIMES else v) for k, v in options]


def test_the_channel_pings_no_sooner_than_grpc_go_allows() -> None:
    options = dict(CHANNEL_OPTIONS)
    assert options.get("grpc.keepalive_permit_without_calls", 0) == 0
    assert options.get("grpc.keepalive_time_ms", 2**31) >= GRPC_GO_MIN_PING_INTERVAL * 1000
    assert options.get("grpc.http2.max_pings_without_data", 2) != 0


async def test_netd_keeps_its_connection_between_calls() -> None:
    peers = await peers_across_idle(scaled(list(CHANNEL_OPTIONS)))
    assert peers[0] == peers[1], f"the core closed netd's connection: {peers}"
