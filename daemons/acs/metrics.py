"""The ACS daemon's Prometheus metrics: sessions by outcome and duration, open sessions,
CWMP messages by method, refusals by reason, CPE faults by code, and the per-source rate
limit (refusals, addresses tracked).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram


class AcsMetrics:
    def __init__(self, registry: Any) -> None:
        self.sessions = Counter(
            "netd_acs_sessions_total", "CWMP sessions by outcome", ["outcome"], registry=registry
        )
        self.live = Gauge("netd_acs_sessions_live", "CWMP sessions open now", registry=registry)
        self.rpcs = Counter(
            "netd_acs_messages_total",
            "CWMP messages received by method",
            ["method"],
            registry=registry,
        )
        self.rejects = Counter(
            "netd_acs_rejects_total", "requests refused, by reason", ["reason"], registry=registry
        )
        self.faults = Counter(
            "netd_acs_cpe_faults_total",
            "faults CPEs answered with, by code",
            ["code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "netd_acs_session_seconds",
            "session duration",
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.rate_limited = Counter(
            "netd_acs_rate_limited_total",
            "requests refused with 503 by the per-source-IP rate limit (acs.rate_limit)",
            registry=registry,
        )
        self.rate_table = Gauge(
            "netd_acs_rate_limit_sources",
            "source addresses tracked by the per-source-IP rate limit",
            registry=registry,
        )
