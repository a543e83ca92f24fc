"""Protocol buffers ⇄ netd's own types, and errors ⇄ gRPC status: pure, no I/O.

Requests become the HTTP API's pydantic models, so both APIs validate with the same rules
(a ``pydantic.ValidationError`` here is INVALID_ARGUMENT with a field violation per
problem); store rows become messages. The error model is gRPC's richer one: the status
code, and a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer holding an
``ErrorInfo`` (reason: the HTTP API's error code word, domain ``netd``, metadata
``request_id`` and ``http_status``), a ``BadRequest`` for invalid arguments and a
``RetryInfo`` when trying again later may help.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import grpc
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from pydantic import ValidationError

from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.nbi.gen.netd.v1 import devices_pb2 as dv
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.radius.sessions import CoaOutcome
from daemons.store import radius as radius_store
from daemons.store import voltha as voltha_store
from daemons.store.stream import Entry

DETAILS_KEY = "grpc-status-details-bin"
DOMAIN = "netd"
PAGE_DEFAULT, PAGE_MAX = 100, m.PAGE_MAX
WATCH_BATCH_DEFAULT, WATCH_BATCH_MAX = 500, 1000

# --- errors --------------------------------------------------------------------------------

# The HTTP API's statuses as gRPC codes (the mapping of google.rpc.Code's documentation,
# with 422 as INVALID_ARGUMENT and 409 as FAILED_PRECONDITION: a conflict with the state).
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
}


class Problem(NamedTuple):
    """A failed call as the client gets it."""

    code: grpc.StatusCode
    message: str
    reason: str  # the HTTP API's error code word: not_found, validation_error, ...
    http_status: int  # for the audit row, as the HTTP API would have answered
    violations: tuple[tuple[str, str], ...] = ()  # (field, description)
    retry_after: float | None = None


def problem_of(exc: ApiError) -> Problem:
    retry = None
    if exc.headers and "Retry-After" in exc.headers:
        retry = float(exc.headers["Retry-After"])
    violations = tuple(
        (str(d.get("field", "")), str(d.get("message", ""))) for d in exc.details or ()
    )
    return Problem(
        _CODES.get(exc.status, grpc.StatusCode.INTERNAL),
        exc.message,
        exc.code,
        exc.status,
        violations,
        retry,
    )


def invalid(exc: ValidationError, prefix: str = "") -> Problem:
    """A request that does not validate: one field violation per problem."""
    violations = []
    for err in exc.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ()))
        violations.append(((prefix + where).lstrip("."), str(err.get("msg", "invalid"))))
    names = ", ".join(v[0] or "the request" for v in violations[:5])
    return Problem(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid: {names}",
        "validation_error",
        422,
        tuple(violations),
    )


UNAVAILABLE = Problem(
    grpc.StatusCode.UNAVAILABLE,
    "a store (PostgreSQL or Redis) is unavailable; try again",
    "unavailable",
    503,
    retry_after=5.0,
)
BAD_VALUE = Problem(
    grpc.StatusCode.INVALID_ARGUMENT,
    "a value in the request cannot be stored or searched for",
    "validation_error",
    422,
)
INTERNAL = Problem(grpc.StatusCode.INTERNAL, "internal error", "internal", 500)


def status_details(p: Problem, request_id: str) -> bytes:
    """The google.rpc.Status of a problem, serialized for the grpc-status-details-bin
    trailer (its code and message match the call's, as grpcio-status checks)."""
    info = error_details_pb2.ErrorInfo(
        reason=p.reason,
        domain=DOMAIN,
        metadata={"request_id": request_id, "http_status": str(p.http_status)},
    )
    status = status_pb2.Status(code=p.code.value[0], message=p.message)
    status.details.add().Pack(info)
    if p.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in p.violations
            ]
        )
        status.details.add().Pack(bad)
    if p.retry_after is not None:
        delay = duration_pb2.Duration(seconds=max(0, math.ceil(p.retry_after)))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return bytes(status.SerializeToString())


def read_details(status: status_pb2.Status) -> dict[str, Any]:
    """The ErrorInfo, BadRequest and RetryInfo of a google.rpc.Status, by type name (for
    clients, e.g. of ``grpc_status.rpc_status.from_call``)."""
    out: dict[str, Any] = {}
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            if detail.Is(kind.DESCRIPTOR):
                msg = kind()
                detail.Unpack(msg)
                out[kind.__name__] = msg
    return out


# --- paging --------------------------------------------------------------------------------


def _bounded(value: int, field: str, default: int, most: int) -> int:
    """A count a request may leave at 0 (proto3's unset): ``default``; over ``most``: 422."""
    if value == 0:
        return default
    if value > most:
        raise ApiError(422, f"{field} is at most {most}")
    return value


def page_size(value: int) -> int:
    return _bounded(value, "page_size", PAGE_DEFAULT, PAGE_MAX)


def page_after(token: str) -> str:
    """The key a page starts after: page tokens are the HTTP API's cursors."""
    return m.decode_cursor(token or None)


def next_token(key: str | None) -> str:
    return m.encode_cursor(key) if key else ""


# --- time and structs ----------------------------------------------------------------------


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return out


def opt_ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    return ts(value) if value is not None else None


def epoch_ts(seconds: float) -> timestamp_pb2.Timestamp:
    whole = math.floor(seconds)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


def struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _plain(value: Any) -> Any:
    """A Struct's value as JSON would give it, integral numbers as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _cleanup(value: Any) -> Any:
    """Struct holds lists as ListValue and maps as Struct: plain lists and dicts."""
    if isinstance(value, struct_pb2.Struct):
        return {k: _cleanup(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [_cleanup(v) for v in value]
    return _plain(value)


def struct_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict (nested lists and maps too), integral numbers as ints."""
    out: dict[str, Any] = _cleanup(value)
    return out


# --- subscribers ---------------------------------------------------------------------------

_STATES = {
    sb.SUBSCRIBER_STATE_ACTIVE: "active",
    sb.SUBSCRIBER_STATE_SUSPENDED: "suspended",
    sb.SUBSCRIBER_STATE_DISABLED: "disabled",
}
_STATE_OF = {v: k for k, v in _STATES.items()}
_HASHES = {
    sb.PASSWORD_HASH_UNSPECIFIED: "none",
    sb.PASSWORD_HASH_ARGON2: "argon2",
    sb.PASSWORD_HASH_BCRYPT: "bcrypt",
    sb.PASSWORD_HASH_SHA512_CRYPT: "sha512_crypt",
    sb.PASSWORD_HASH_SHA256_CRYPT: "sha256_crypt",
    sb.PASSWORD_HASH_MD5_CRYPT: "md5_crypt",
}


def state_name(value: int) -> str | None:
    """A SubscriberState as the store spells it; None for UNSPECIFIED. Raises ApiError 422
    for a number no version of the enum has."""
    if value == sb.SUBSCRIBER_STATE_UNSPECIFIED:
        return None
    if value not in _STATES:
        raise ApiError(422, f"state {value} is not a SubscriberState")
    return _STATES[value]  # type: ignore[index]


def _upsert_fields(msg: sb.SubscriberUpsert) -> dict[str, Any]:
    fields: dict[str, Any] = {"username": msg.username}
    if msg.HasField("password"):
        fields["password"] = msg.password
    fields["hash"] = _HASHES.get(msg.hash, f"unknown ({msg.hash})")
    for name in ("plan", "mac", "framed_ip", *radius_store.IPV6_FIELDS):
        if msg.HasField(name):
            fields[name] = getattr(msg, name)
    if msg.state != sb.SUBSCRIBER_STATE_UNSPECIFIED:
        fields["state"] = _STATES.get(msg.state, f"unknown ({msg.state})")
    return fields


def subscriber_upsert(msg: sb.SubscriberUpsert) -> m.SubscriberCreate:
    """Raises pydantic.ValidationError, as the HTTP API's body would."""
    return m.SubscriberCreate.model_validate(_upsert_fields(msg))


def subscriber_batch(msgs: Sequence[sb.SubscriberUpsert]) -> list[m.SubscriberCreate]:
    """Raises pydantic.ValidationError located at ``subscribers[i].field``."""
    batch = m.SubscriberBatch.model_validate({"subscribers": [_upsert_fields(x) for x in msgs]})
    return batch.subscribers


def subscriber(row: radius_store.SubscriberRow) -> sb.Subscriber:
    view = radius_store.public_view(row)
    return sb.Subscriber(
        username=view["username"],
        plan=view["plan"],
        state=_STATE_OF.get(view["state"], sb.SUBSCRIBER_STATE_UNSPECIFIED),
        mac=view["mac"] or "",
        framed_ip=view["framed_ip"] or "",
        credentials=view["credentials"],
        **{name: view[name] or "" for name in radius_store.IPV6_FIELDS},
    )


# --- sessions ------------------------------------------------------------------------------


def session(d: Mapping[str, Any]) -> ss.Session:
    return ss.Session(
        unique_id=d["unique_id"],
        username=d["username"] or "",
        nas=d["nas"] or "",
        nas_port=str(d["nas_port"] or ""),
        framed_ip=d["framed_ip"] or "",
        acct_session_id=d["acct_session_id"] or "",
        started_at=ts(d["started_at"]),
        updated_at=ts(d["updated_at"]),
        input_octets=int(d["input_octets"]),
        output_octets=int(d["output_octets"]),
        framed_ipv6_address=d.get("framed_ipv6_address") or "",
        framed_ipv6_prefix=d.get("framed_ipv6_prefix") or "",
        delegated_ipv6_prefix=d.get("delegated_ipv6_prefix") or "",
    )


_KINDS = {
    "session.start": ss.SESSION_EVENT_KIND_START,
    "session.interim": ss.SESSION_EVENT_KIND_INTERIM,
    "session.stop": ss.SESSION_EVENT_KIND_STOP,
}
_REASONS = {
    "stop": ss.STOP_REASON_STOP,
    "nas-restart": ss.STOP_REASON_NAS_RESTART,
    "stale": ss.STOP_REASON_STALE,
}


def watch_kinds(kinds: Iterable[int]) -> frozenset[str]:
    """The stream kinds a WatchSessionsRequest asks for (all session kinds if none)."""
    wanted = {k for k in kinds if k != ss.SESSION_EVENT_KIND_UNSPECIFIED}
    unknown = wanted - set(_KINDS.values())
    if unknown:
        raise ApiError(422, f"kinds {sorted(unknown)} are not SessionEventKinds")
    return frozenset(name for name, k in _KINDS.items() if not wanted or k in wanted)


def watch_batch(value: int) -> int:
    return _bounded(value, "max_batch", WATCH_BATCH_DEFAULT, WATCH_BATCH_MAX)


def _u(value: Any) -> int:
    return int(value) if value else 0


def session_event(entry: Entry) -> ss.SessionEvent:
    """An event-stream entry of kind session.* as a SessionEvent."""
    cursor, kind, d = entry
    event = ss.SessionEvent(
        cursor=cursor,
        kind=_KINDS[kind],
        session=str(d.get("session") or ""),
        username=str(d.get("user") or ""),
        nas=str(d.get("nas") or ""),
        nas_port=str(d.get("nas_port") or ""),
        framed_ip=str(d.get("ip") or ""),
        acct_session_id=str(d.get("acct_session_id") or ""),
        session_time=_u(d.get("session_time")),
        input_octets=_u(d.get("in")),
        output_octets=_u(d.get("out")),
        input_packets=_u(d.get("in_packets")),
        output_packets=_u(d.get("out_packets")),
        reason=_REASONS.get(str(d.get("reason")), ss.STOP_REASON_UNSPECIFIED),
        record_key=str(d.get("key") or ""),
    )
    if d.get("time") is not None:
        event.time.CopyFrom(epoch_ts(float(d["time"])))
    if d.get("terminate_cause") is not None:
        event.terminate_cause = int(d["terminate_cause"])
    return event


def watch_response(
    cursor: str, entries: Sequence[Entry], kinds: frozenset[str]
) -> ss.WatchSessionsResponse:
    """One answer for a batch read from the stream: its session events of ``kinds``, and
    the cursor past the whole batch."""
    return ss.WatchSessionsResponse(
        cursor=entries[-1][0] if entries else cursor,
        events=[session_event(e) for e in entries if e[1] in kinds],
    )


_OUTCOMES = {
    "ack": ss.COA_OUTCOME_ACK,
    "nak": ss.COA_OUTCOME_NAK,
    "timeout": ss.COA_OUTCOME_TIMEOUT,
}


def coa_result(session_id: str, nas: str, outcome: CoaOutcome) -> ss.CoaResult:
    out = ss.CoaResult(
        session=session_id,
        nas=nas,
        outcome=_OUTCOMES.get(outcome.result, ss.COA_OUTCOME_UNSPECIFIED),
        attempts=outcome.attempts,
        audit_id=outcome.audit_id,
    )
    if outcome.error_cause is not None:
        out.error_cause = outcome.error_cause
    return out


def coa_request(msg: ss.ChangeAuthorizationRequest) -> m.CoaRequest:
    """Raises pydantic.ValidationError, as the HTTP API's body would."""
    attributes: dict[str, str | int] = {}
    for name, value in msg.attributes.items():
        which = value.WhichOneof("value")
        attributes[name] = value.integer if which == "integer" else value.text
    return m.CoaRequest.model_validate(
        {"plan": msg.plan or None, "attributes": attributes, "retries": msg.retries or None}
    )


def disconnect_request(msg: ss.DisconnectSessionRequest) -> m.DisconnectRequest:
    return m.DisconnectRequest.model_validate({"retries": msg.retries or None})


# --- devices -------------------------------------------------------------------------------


def cpe(d: Mapping[str, Any]) -> dv.Cpe:
    return dv.Cpe(
        id=d["id"],
        oui=d["oui"] or "",
        product_class=d["product_class"] or "",
        serial=d["serial"] or "",
        manufacturer=d["manufacturer"] or "",
        software_version=d["software_version"] or "",
        root=d["root"] or "",
        cwmp_ns=d["cwmp_ns"] or "",
        ip=d["ip"] or "",
        connection_request_url=d["connection_request_url"] or "",
        last_inform=opt_ts(d["last_inform"]),
        last_events=list(d["last_events"] or ()),
        tags=list(d["tags"] or ()),
        discovered_at=opt_ts(d["discovered_at"]),
        refreshed_at=opt_ts(d["refreshed_at"]),
        registered_at=ts(d["registered_at"]),
    )


def onu(d: Mapping[str, Any]) -> dv.Onu:
    return dv.Onu(
        stack=d["stack"],
        id=d["id"],
        type=d["type"] or "",
        parent_id=d["parent_id"] or "",
        pon_port=_u(d["pon_port"]),
        onu_id=_u(d["onu_id"]),
        serial=d["serial"] or "",
        vendor=d["vendor"] or "",
        model=d["model"] or "",
        firmware=d["firmware"] or "",
        admin_state=d["admin_state"] or "",
        oper_status=d["oper_status"] or "",
        connect_status=d["connect_status"] or "",
        reason=d["reason"] or "",
        updated_at=ts(d["updated_at"]),
        subscriber=d.get("subscriber") or "",
    )


def onu_detail(
    dev: Mapping[str, Any],
    ports: Sequence[Mapping[str, Any]],
    b: voltha_store.Binding | None,
    optics: Mapping[str, Any] | None,
) -> dv.GetOnuResponse:
    return dv.GetOnuResponse(
        onu=onu(dev),
        ports=[
            dv.OnuPort(
                port_no=int(p["port_no"]),
                label=p["label"] or "",
                type=p["type"] or "",
                admin_state=p["admin_state"] or "",
                oper_status=p["oper_status"] or "",
                updated_at=ts(p["updated_at"]),
            )
            for p in ports
        ],
        binding=dv.OnuBinding(
            subscriber=b.subscriber, s_tag=b.s_tag, c_tag=b.c_tag, tp_id=b.tp_id, uni=b.uni
        )
        if b is not None
        else None,
        optics=struct(optics),
    )


def cpe_task(d: Mapping[str, Any]) -> dv.CpeTask:
    return dv.CpeTask(
        id=int(d["id"]),
        device_id=d["device_id"],
        kind=d["kind"],
        args=struct(d["args"] or {}),
        status=d["status"],
        attempts=int(d["attempts"]),
        not_before=ts(d["not_before"]),
        expires_at=opt_ts(d["expires_at"]),
        created_at=ts(d["created_at"]),
        created_by=d["created_by"] or "",
        finished_at=opt_ts(d["finished_at"]),
        result=struct(d["result"]),
    )


def task_request(msg: dv.QueueCpeTaskRequest) -> tuple[str, dict[str, Any], float | None]:
    """(kind, args, expires_in) of a QueueCpeTaskRequest. Raises ApiError 422."""
    if not math.isfinite(msg.expires_in) or not 0 <= msg.expires_in <= 30 * 86400:
        raise ApiError(422, "expires_in is 0 (never) to 30 days in seconds")
    return msg.kind, struct_dict(msg.args), msg.expires_in or None


def bulk_request(msg: dv.QueueCpeBulkRequest) -> Any:
    """The HTTP API's BulkCreate of a QueueCpeBulkRequest (the same validation). Raises
    pydantic.ValidationError."""
    from daemons.api.routes_cpe_bulk import BulkCreate  # noqa: PLC0415 - the routes' model

    f = msg.filter
    given: dict[str, Any] = {"tags": list(f.tags)}
    for key in ("oui", "product_class", "software_version"):
        if getattr(f, key):
            given[key] = getattr(f, key)
    if f.parameter_name or f.parameter_value:
        given["parameter"] = {"name": f.parameter_name, "value": f.parameter_value}
    return BulkCreate.model_validate(
        {
            "filter": given,
            "kind": msg.kind,
            "args": struct_dict(msg.args),
            "rate": msg.rate or None,
            "expires_in": msg.expires_in or None,
        }
    )


def cpe_bulk(d: Mapping[str, Any]) -> dv.CpeBulk:
    f = d["filter"]
    param = f.get("parameter") or {}
    return dv.CpeBulk(
        id=int(d["id"]),
        filter=dv.CpeFilter(
            tags=list(f.get("tags", [])),
            oui=f.get("oui") or "",
            product_class=f.get("product_class") or "",
            software_version=f.get("software_version") or "",
            parameter_name=param.get("name", ""),
            parameter_value=param.get("value", ""),
        ),
        kind=d["kind"],
        args=struct(d["args"] or {}),
        rate=float(d["rate"]),
        devices=int(d["devices"]),
        status=d["status"],
        counts={k: int(v) for k, v in (d["counts"] or {}).items()},
        poked=int(d["poked"]),
        last_slot=opt_ts(d["last_slot"]),
        created_at=ts(d["created_at"]),
        created_by=d["created_by"] or "",
        finished_at=opt_ts(d["finished_at"]),
    )


# --- the authentication history (issue 21) -------------------------------------------------


def auth_event(e: m.AuthLogEntry) -> ss.AuthEvent:
    return ss.AuthEvent(
        id=e.id,
        at=ts(e.at),
        username=e.username,
        nas=e.nas,
        nas_port=e.nas_port,
        calling_station=e.calling_station,
        method=e.method,
        result=e.result,
        reason=e.reason,
        plan=e.plan or "",
        given={k: str(v) for k, v in e.given.items()},
        session=e.session or "",
    )


def opt_time(msg: Any, name: str) -> datetime | None:
    """An optional Timestamp field as an aware datetime (None when unset)."""
    if not msg.HasField(name):
        return None
    return getattr(msg, name).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
