"""Issue 30: a batch's sessions go to radius_sessions in one statement, each session's
records folded into one row first (``ledger_rows.fold_sessions``). The fold must leave a
session exactly as the upsert applied to each record in turn (the old executemany, one
record a statement) would: checked on the real PostgreSQL, over random record sequences."""

from __future__ import annotations

import asyncio
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.core.config import DatabaseConfig
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.store import ledger_rows
from daemons.store.pg import create_pool

_STATUS = st.sampled_from([AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP])
_MAYBE_IP = st.one_of(st.none(), st.sampled_from(["100.64.0.1", "100.64.0.2"]))
_MAYBE_PREFIX = st.one_of(st.none(), st.sampled_from(["2001:db8:1::/56", "2001:db8:2::/56"]))
_RECORD = st.builds(
    lambda sid, status, t, st_, octets, user, ip, v6, cause, port: AcctRecord(
        nas="nas1",
        status=status,
        acct_session_id=f"s{sid}",
        unique_id=f"u{sid}",
        idem_key="",
        event_time=1.7e9 + t,
        username=user,
        nas_port=port,
        framed_ip=ip,
        input_octets=octets,
        output_octets=octets * 2,
        input_packets=octets // 3,
        output_packets=octets // 5,
        session_time=st_,
        terminate_cause=cause,
        delegated_ipv6_prefix=v6,
    ),
    st.integers(0, 2),
    _STATUS,
    st.integers(0, 5000),
    st.integers(0, 3000),
    st.integers(0, 10**12),
    st.sampled_from(["", "alice", "bob"]),
    _MAYBE_IP,
    _MAYBE_PREFIX,
    st.one_of(st.none(), st.integers(1, 20)),
    st.sampled_from(["", "p1", "p2"]),
)

_COLUMNS = (
    "nas, acct_session_id, username, nas_port, host(framed_ip), started_at, updated_at, "
    "stopped_at, session_time, input_octets, output_octets, input_packets, output_packets, "
    "terminate_cause, close_reason, delegated_ipv6_prefix::text"
)


def test_fold_is_the_upserts_in_turn(migrated: str) -> None:
    runs = iter(range(10**6))

    async def check(pool: object, existing: list[AcctRecord], batch: list[AcctRecord]) -> None:
        run = next(runs)
        tag = {"a": f"a{run}-", "b": f"b{run}-"}

        def named(r: AcctRecord, side: str) -> AcctRecord:
            return dataclasses.replace(r, unique_id=tag[side] + r.unique_id)

        async with pool.acquire() as conn:  # type: ignore[attr-defined]
            for side in ("a", "b"):  # what the sessions held before the batch
                for r in existing:
                    await conn.execute(
                        ledger_rows.UPSERT_SESSION,
                        *map(list, zip(ledger_rows.session_row(named(r, side)), strict=True)),
                    )
            for r in batch:  # the reference: one record a statement, in turn
                await conn.execute(
                    ledger_rows.UPSERT_SESSION,
                    *map(list, zip(ledger_rows.session_row(named(r, "a")), strict=True)),
                )
            folded = ledger_rows.fold_sessions(named(r, "b") for r in batch)
            if folded:
                await conn.execute(
                    ledger_rows.UPSERT_SESSION, *map(list, zip(*folded, strict=True))
                )
            for sid in {r.unique_id for r in existing + batch}:
                a = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM radius_sessions WHERE unique_id = $1", tag["a"] + sid
                )
                b = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM radius_sessions WHERE unique_id = $1", tag["b"] + sid
                )
                assert a is not None and b is not None
                assert tuple(a) == tuple(b), (sid, existing, batch)

    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(DatabaseConfig(), migrated, "test"))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(_RECORD, max_size=3), st.lists(_RECORD, min_size=1, max_size=8))
    def prop(existing: list[AcctRecord], batch: list[AcctRecord]) -> None:
        loop.run_until_complete(check(pool, existing, batch))

    try:
        prop()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()
