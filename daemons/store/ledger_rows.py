"""The ledger's rows and statements (issue 30): a batch of accounting records as the
arrays of one ``unnest`` statement each, and the fold of each session's records into the
one row the sessions upsert takes. Pure (no connection): ``store.accounting`` runs them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from daemons.radius.acct import AcctRecord, AcctStatus

EVENT_COLUMNS = (
    "event_time",
    "idem_key",
    "nas",
    "status_type",
    "acct_session_id",
    "unique_id",
    "username",
    "nas_port",
    "framed_ip",
    "input_octets",
    "output_octets",
    "input_packets",
    "output_packets",
    "session_time",
    "terminate_cause",
    "delay_time",
    "attributes",
)

# Times go as epoch seconds and addresses as text, converted by PostgreSQL (to_timestamp,
# ::inet): asyncpg's encoders make a datetime and parse each address with the ipaddress
# module in the loop's thread, which showed in the profile (issue 30).
_EVENT_TYPES = (
    "float8",
    "text",
    "text",
    "smallint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "int",
    "int",
    "jsonb",
)
_UNNEST_EVENTS = "unnest({}) AS u({})".format(
    ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_EVENT_TYPES)), ", ".join(EVENT_COLUMNS)
)

_EVENT_SELECT = ", ".join(
    {"event_time": "to_timestamp(u.event_time)", "framed_ip": "u.framed_ip::inet"}.get(c, f"u.{c}")
    for c in EVENT_COLUMNS
)

INSERT_EVENTS = f"""
INSERT INTO accounting_events ({", ".join(EVENT_COLUMNS)})
SELECT {_EVENT_SELECT} FROM {_UNNEST_EVENTS}
ON CONFLICT (idem_key, event_time) DO NOTHING
"""

GATE = """
INSERT INTO accounting_dedup (idem_key) SELECT unnest($1::text[])
ON CONFLICT (idem_key) DO NOTHING
RETURNING idem_key
"""

# The gate and the ledger rows of the records it let through, in one statement (one round
# trip; issue 30): the gate's RETURNING feeds the insert and is the statement's result.
GATE_AND_EVENTS = f"""
WITH gate AS (
    INSERT INTO accounting_dedup (idem_key) SELECT unnest($2::text[])
    ON CONFLICT (idem_key) DO NOTHING
    RETURNING idem_key
), events AS (
    INSERT INTO accounting_events ({", ".join(EVENT_COLUMNS)})
    SELECT {_EVENT_SELECT} FROM {_UNNEST_EVENTS} JOIN gate USING (idem_key)
    ON CONFLICT (idem_key, event_time) DO NOTHING
)
SELECT idem_key FROM gate
"""

# Counters only grow: GREATEST keeps an out-of-order Interim from moving them back.
UPSERT_SESSION = """
INSERT INTO radius_sessions AS s (unique_id, nas, acct_session_id, username, nas_port,
    framed_ip, started_at, updated_at, stopped_at, session_time, input_octets,
    output_octets, input_packets, output_packets, terminate_cause, close_reason,
    framed_ipv6_address, framed_ipv6_prefix, delegated_ipv6_prefix)
SELECT u.unique_id, u.nas, u.acct_session_id, u.username, u.nas_port, u.framed_ip::inet,
       to_timestamp(u.started_at), to_timestamp(u.updated_at), to_timestamp(u.stopped_at),
       u.session_time, u.input_octets, u.output_octets, u.input_packets, u.output_packets,
       u.terminate_cause, CASE WHEN u.stopped_at IS NULL THEN NULL ELSE 'stop' END,
       u.framed_ipv6_address::inet, u.framed_ipv6_prefix::cidr, u.delegated_ipv6_prefix::cidr
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::float8[], $9::float8[], $10::bigint[],
            $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::int[],
            $16::text[], $17::text[], $18::text[])
     AS u(unique_id, nas, acct_session_id, username, nas_port, framed_ip, started_at,
          updated_at, stopped_at, session_time, input_octets, output_octets, input_packets,
          output_packets, terminate_cause, framed_ipv6_address, framed_ipv6_prefix,
          delegated_ipv6_prefix)
ON CONFLICT (unique_id) DO UPDATE SET
    updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at),
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    stopped_at = COALESCE(s.stopped_at, EXCLUDED.stopped_at),
    session_time = GREATEST(s.session_time, EXCLUDED.session_time),
    input_octets = GREATEST(s.input_octets, EXCLUDED.input_octets),
    output_octets = GREATEST(s.output_octets, EXCLUDED.output_octets),
    input_packets = GREATEST(s.input_packets, EXCLUDED.input_packets),
    output_packets = GREATEST(s.output_packets, EXCLUDED.output_packets),
    terminate_cause = COALESCE(s.terminate_cause, EXCLUDED.terminate_cause),
    close_reason = COALESCE(s.close_reason, EXCLUDED.close_reason),
    framed_ip = COALESCE(EXCLUDED.framed_ip, s.framed_ip),
    framed_ipv6_address = COALESCE(EXCLUDED.framed_ipv6_address, s.framed_ipv6_address),
    framed_ipv6_prefix = COALESCE(EXCLUDED.framed_ipv6_prefix, s.framed_ipv6_prefix),
    delegated_ipv6_prefix = COALESCE(EXCLUDED.delegated_ipv6_prefix, s.delegated_ipv6_prefix),
    username = CASE WHEN s.username = '' THEN EXCLUDED.username ELSE s.username END
"""


# A session row as UPSERT_SESSION takes it (its $1..$18).
_SessionRow = list[Any]
_UID, _USER, _FRAMED, _STARTED, _UPDATED, _STOPPED, _TIME, _CAUSE = 0, 3, 5, 6, 7, 8, 9, 14
_COUNTERS, _V6 = (10, 11, 12, 13), (15, 16, 17)


def session_row(r: AcctRecord) -> _SessionRow:
    stop = r.status == AcctStatus.STOP
    return [
        r.unique_id,
        r.nas,
        r.acct_session_id,
        r.username,
        r.nas_port,
        r.framed_ip,
        r.event_time - r.session_time,
        r.event_time,
        r.event_time if stop else None,
        r.session_time,
        r.input_octets,
        r.output_octets,
        r.input_packets,
        r.output_packets,
        r.terminate_cause if stop else None,
        r.framed_ipv6_address,
        r.framed_ipv6_prefix,
        r.delegated_ipv6_prefix,
    ]


def fold_sessions(records: Iterable[AcctRecord]) -> list[_SessionRow]:
    """One row per session, in arrival order within it, that leaves the session as the
    upsert applied to each record in turn would (its ON CONFLICT rules): times and
    counters at their extremes, the first stop, cause and user name, the last addresses;
    the identity (NAS, Acct-Session-Id, port) of the first record."""
    rows: dict[str, _SessionRow] = {}
    for r in records:
        new = session_row(r)
        row = rows.get(r.unique_id)
        if row is None:
            rows[r.unique_id] = new
            continue
        row[_STARTED] = min(row[_STARTED], new[_STARTED])
        row[_UPDATED] = max(row[_UPDATED], new[_UPDATED])
        for i in (_TIME, *_COUNTERS):
            row[i] = max(row[i], new[i])
        for i in (_STOPPED, _CAUSE):
            if row[i] is None:
                row[i] = new[i]
        if not row[_USER]:
            row[_USER] = new[_USER]
        for i in (_FRAMED, *_V6):
            if new[i] is not None:
                row[i] = new[i]
    return list(rows.values())


def columns(records: Sequence[AcctRecord]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in EVENT_COLUMNS]
    for r in records:
        row = (
            r.event_time,
            r.idem_key,
            r.nas,
            r.status,
            r.acct_session_id,
            r.unique_id,
            r.username,
            r.nas_port,
            r.framed_ip,
            r.input_octets,
            r.output_octets,
            r.input_packets,
            r.output_packets,
            r.session_time,
            r.terminate_cause,
            r.delay_time,
            json.dumps(r.attributes, default=str),
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols
