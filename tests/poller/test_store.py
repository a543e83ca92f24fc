"""Samples in PostgreSQL: every gauge and rate a row, with its time, target and labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from daemons.poller.engine import Sample
from daemons.store import snmp as store


async def test_write_samples_stores_each_gauge_and_rate(migrated: str) -> None:
    pool = await asyncpg.create_pool(migrated, min_size=1, max_size=2)
    try:
        now = datetime.now(UTC).replace(microsecond=123456)
        earlier = now - timedelta(minutes=1)
        await store.ensure_partitions(pool, now, 30)
        row1 = (("ifIndex", "1"), ("ifAlias", 'say "hi" \\ tab\there'))
        row2 = (("ifIndex", "2"), ("ifName", "ge-0/0/2"))
        rows = [
            (now, "olt-1", Sample("ifOperStatus", row1, 1.0, "gauge")),
            (now, "olt-1", Sample("ifHCInOctets", row1, 10.0**15, "counter")),  # not kept
            (earlier, "olt-2", Sample("ifHCInOctets_rate", row2, 12.5, "rate")),
            (now, "olt-1", Sample("ifHCInOctets_rate", row1, 1e-3, "rate")),
            (now, "olt-1", Sample("ifOperStatus", row2, 2.0, "gauge")),
            (earlier, "olt-2", Sample("ifOperStatus", (("ifIndex", "2"),), -1.5, "gauge")),
            (now, "olt-1", Sample("sysUpTime", (), 4_294_967_295.0, "gauge")),
        ]
        await store.write_samples(pool, rows)
        await store.write_samples(pool, [])
        got = await pool.fetch("SELECT ts, target, metric, labels, value FROM snmp_samples")
        assert sorted(
            (r["ts"], r["target"], r["metric"], sorted(json.loads(r["labels"]).items()), r["value"])
            for r in got
        ) == sorted(
            (ts, target, s.metric, sorted(s.labels), s.value)
            for ts, target, s in rows
            if s.kind != "counter"
        )
    finally:
        await pool.close()
