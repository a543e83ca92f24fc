"""daemons.nbi.convert: protocol buffers ⇄ netd's types and errors ⇄ gRPC status (no I/O)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2
from pydantic import ValidationError

from daemons.api.errors import ApiError
from daemons.nbi import convert
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (404, grpc.StatusCode.NOT_FOUND),
        (409, grpc.StatusCode.FAILED_PRECONDITION),
        (422, grpc.StatusCode.INVALID_ARGUMENT),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (503, grpc.StatusCode.UNAVAILABLE),
        (500, grpc.StatusCode.INTERNAL),
    ],
)
def test_http_statuses_map_to_grpc_codes(status: int, code: grpc.StatusCode) -> None:
    assert convert.problem_of(ApiError(status, "x")).code == code


def _unpack(raw: bytes) -> tuple[status_pb2.Status, dict[str, object]]:
    status = status_pb2.Status.FromString(raw)
    return status, convert.read_details(status)


def test_status_details_carry_reason_fields_and_retry() -> None:
    p = convert.problem_of(
        ApiError(
            429,
            "slow down",
            headers={"Retry-After": "3"},
            details=[{"field": "subscribers[2]", "message": "bad mac"}],
        )
    )
    status, details = _unpack(convert.status_details(p, "req-1"))
    assert (status.code, status.message) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        "slow down",
    )
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "rate_limited",
        "netd",
        {"request_id": "req-1", "http_status": "429"},
    )
    bad = details["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("subscribers[2]", "bad mac")
    ]
    retry = details["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.seconds == 3
    _status, plain = _unpack(convert.status_details(convert.INTERNAL, "r"))
    assert set(plain) == {"ErrorInfo"}


def test_validation_errors_name_the_field_as_the_message_has_it() -> None:
    with pytest.raises(ValidationError) as err:
        convert.subscriber_batch(
            [sb.SubscriberUpsert(username="ok"), sb.SubscriberUpsert(username="x", mac="m" * 40)]
        )
    p = convert.invalid(err.value)
    assert p.code == grpc.StatusCode.INVALID_ARGUMENT and p.http_status == 422
    assert [f for f, _ in p.violations] == ["subscribers[1].mac"]


def test_upsert_fields_left_out_stay_unset() -> None:
    body = convert.subscriber_upsert(
        sb.SubscriberUpsert(username="u", mac="", state=sb.SUBSCRIBER_STATE_DISABLED)
    )
    assert body.model_dump(exclude_unset=True) == {
        "username": "u",
        "hash": "none",
        "mac": "",
        "state": "disabled",
    }
    hashed = convert.subscriber_upsert(
        sb.SubscriberUpsert(username="u", password="p", hash=sb.PASSWORD_HASH_BCRYPT)
    )
    assert (hashed.password, hashed.hash, hashed.plan) == ("p", "bcrypt", None)
    with pytest.raises(ValidationError):
        convert.subscriber_upsert(sb.SubscriberUpsert(username="u", hash=99))  # type: ignore[arg-type]


def test_session_events_from_stream_entries() -> None:
    start = (
        "5-0",
        "session.start",
        {
            "session": "s1",
            "user": "alice",
            "nas": "bng1",
            "nas_port": "7",
            "ip": None,
            "acct_session_id": "a1",
            "time": 1700000000.25,
            "session_time": 0,
            "in": 0,
            "out": 0,
            "terminate_cause": None,
            "key": "k1",
        },
    )
    stop = (
        "7-1",
        "session.stop",
        {
            "session": "s1",
            "user": "alice",
            "nas": "bng1",
            "reason": "nas-restart",
            "terminate_cause": 11,
        },
    )
    other = ("9-0", "daemon.started", {"daemon": "api"})
    every = convert.watch_kinds([])
    got = convert.watch_response("1-0", [start, stop, other], every)
    assert got.cursor == "9-0"  # past the entry that is not a session event
    first, last = got.events
    assert (first.cursor, first.kind, first.framed_ip, first.record_key) == (
        "5-0",
        ss.SESSION_EVENT_KIND_START,
        "",
        "k1",
    )
    assert (first.time.seconds, first.time.nanos) == (1700000000, 250_000_000)
    assert not first.HasField("terminate_cause")
    assert (last.kind, last.reason, last.terminate_cause) == (
        ss.SESSION_EVENT_KIND_STOP,
        ss.STOP_REASON_NAS_RESTART,
        11,
    )
    assert not last.HasField("time")
    stops = convert.watch_kinds([ss.SESSION_EVENT_KIND_STOP])
    assert [e.cursor for e in convert.watch_response("1-0", [start, stop], stops).events] == ["7-1"]
    idle = convert.watch_response("3-0", [], every)
    assert (idle.cursor, list(idle.events)) == ("3-0", [])
    with pytest.raises(ApiError):
        convert.watch_kinds([42])
    with pytest.raises(ApiError):
        convert.watch_batch(5000)


def test_structs_come_back_as_plain_values_with_integers() -> None:
    s = struct_pb2.Struct()
    s.update({"delay_seconds": 30, "values": [["a", "1", "xsd:int"]], "nested": {"n": 2.5}})
    assert convert.struct_dict(s) == {
        "delay_seconds": 30,
        "values": [["a", "1", "xsd:int"]],
        "nested": {"n": 2.5},
    }


def test_page_sizes_and_tokens() -> None:
    assert convert.page_size(0) == 100 and convert.page_size(7) == 7
    with pytest.raises(ApiError):
        convert.page_size(1001)
    assert convert.page_after(convert.next_token("alice")) == "alice"
    assert convert.next_token(None) == ""
    with pytest.raises(ApiError):
        convert.page_after("not a token!")
