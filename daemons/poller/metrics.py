"""The poller's own Prometheus metrics (on its status port): polls by outcome, their
duration and lateness, traps, targets held, and ``netd_snmp_target_up`` per target."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram


class PollerMetrics:
    def __init__(self, registry: Any) -> None:
        self.polls = Counter(
            "netd_snmp_polls_total",
            "polls by target and result",
            ["target", "result"],
            registry=registry,
        )
        # Durations: a histogram of all polls, and each target's last one as a gauge (a
        # histogram per target was 12 series a target: 6,000 for 500 targets, two thirds
        # of the cost of a /metrics scrape).
        self.seconds = Histogram(
            "netd_snmp_poll_seconds",
            "time one poll took, all targets",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.duration = Gauge(
            "netd_snmp_poll_duration_seconds",
            "time the target's last poll took",
            ["target"],
            registry=registry,
        )
        self.lateness = Gauge(
            "netd_snmp_poll_lateness_seconds",
            "how late the last poll started against its schedule",
            ["target"],
            registry=registry,
        )
        self.samples = Counter(
            "netd_snmp_samples_total", "samples produced", ["target"], registry=registry
        )
        self.targets = Gauge(
            "netd_snmp_targets", "targets this poller holds (polls)", registry=registry
        )
        self.pollers = Gauge(
            "netd_snmp_pollers", "pollers alive, this one included", registry=registry
        )
        self.skipped = Counter(
            "netd_snmp_lease_skips_total",
            "slots not polled: the target's lease was not renewed in time",
            registry=registry,
        )
        self.lost = Counter(
            "netd_snmp_leases_lost_total",
            "leases lost (not renewed before they lapsed, and taken by another poller)",
            registry=registry,
        )
        self.handovers = Counter(
            "netd_snmp_handovers_total",
            "targets handed to another poller after their poll (a rebalance)",
            registry=registry,
        )
        self.walks = Counter(
            "netd_snmp_table_walks_total",
            "polls that walked the tables (the others read the known rows with GET)",
            registry=registry,
        )
        self.up = Gauge(
            "netd_snmp_target_up",
            "1 if the target's last poll answered, 0 if it failed",
            ["target"],
            registry=registry,
        )
