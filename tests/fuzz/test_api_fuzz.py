"""Hostile API bodies: every request model with arbitrary JSON, then the real `netd api`.

Schemathesis (tests/api/test_schema.py) already sends schema-shaped requests to every
operation. Here: each body model of the API, given any JSON value, either validates or
raises pydantic's ValidationError (the API's 422); and the running daemon answers bodies no
schema describes (broken JSON, deep nesting, numbers past any range, a NUL or a lone
surrogate in every string field of each operation) with a 4xx, never a 5xx.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx
import pydantic
from hypothesis import given
from hypothesis import strategies as st

from daemons.api import models, routes_acs, routes_devices, routes_snmp, routes_voltha
from tests.api.conftest import ApiServer
from tests.fuzz.strategies import budget


def _bodies() -> list[type[pydantic.BaseModel]]:
    found: dict[str, type[pydantic.BaseModel]] = {}
    for module in (models, routes_acs, routes_devices, routes_snmp, routes_voltha):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, models._Body)
                and value is not models._Body
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


BODIES = _bodies()
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(["", "\x00", "a" * 300, "10.0.0.0/8", "fiber-100", "admin", "2**70"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


@st.composite
def model_input(draw: st.DrawFn) -> tuple[type[pydantic.BaseModel], Any]:
    """A model, and a dict of its own field names (so validation goes past the keys) with
    any values, or any JSON at all."""
    model = draw(st.sampled_from(BODIES))
    names = [f.alias or n for n, f in model.model_fields.items()]
    own = st.dictionaries(st.sampled_from(names), json_values, max_size=len(names))
    return model, draw(st.one_of(own, json_values))


def test_there_are_body_models() -> None:
    assert len(BODIES) >= 12, [b.__name__ for b in BODIES]


@budget(400)
@given(model_input())
def test_models_validate_or_raise_validation_error(
    case: tuple[type[pydantic.BaseModel], Any],
) -> None:
    model, data = case
    try:
        obj = model.model_validate(data)
    except pydantic.ValidationError:
        return
    json.loads(obj.model_dump_json())  # what validated serializes back


@budget(300)
@given(st.sampled_from(BODIES), st.binary(max_size=200))
def test_models_parse_any_bytes(model: type[pydantic.BaseModel], raw: bytes) -> None:
    with contextlib.suppress(pydantic.ValidationError):
        model.model_validate_json(raw)


# --- the real daemon -------------------------------------------------------------------------

_BROKEN = (
    b"",
    b"{",
    b'{"name": ',
    b"\xff\xfe{}",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"coa_port": 1e400, "session_timeout": -1e400}',
    b'{"coa_port": ' + b"9" * 5000 + b"}",
    b'"just a string"',
    b"null",
)
_ODD_STRINGS = ("x\x00y", "\ud800", "\x00")


_NUL_IN_VALID = (
    ("POST", "/nas", {"name": "fz1", "network": "192.0.2.9/32", "secret": "s\x00cret-fuzz"}),
    (
        "POST",
        "/nas",
        {"name": "fz2", "network": "192.0.2.10/32", "secret": "x", "description": "d\x00"},
    ),
    ("PATCH", "/nas/bng1", {"description": "\x00"}),
    ("POST", "/subscribers", {"username": "fz-user", "password": "p\x00w"}),
    ("POST", "/subscribers", {"username": "fz-user2", "mac": "aa\x00"}),
    ("POST", "/subscribers", {"username": "fz-user3", "framed_ip": "10.0.0.1\x00"}),
    ("PUT", "/plans/fz-plan", {"download": "10M\x00", "upload": "1M"}),
    ("PUT", "/plans/fz-plan2", {"reply_message": "r\x00", "filter_id": "\x00"}),
    ("PUT", "/plans/fz-plan3", {"attributes": {"Filter-Id": "\x00"}, "framed_pool": "p\x00"}),
)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path with placeholders filled, the body schema's properties) of each
    operation that takes a JSON body."""
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            schema = content["schema"]
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            filled = re.sub(r"\{[^}]+\}", "fuzz-1", path)
            out.append((method.upper(), filled, schema.get("properties", {})))
    return out


def test_the_api_answers_malformed_bodies_with_4xx(api: ApiServer) -> None:
    with httpx.Client(base_url=api.url, headers=api.headers("admin"), timeout=20) as client:
        ops = _operations(client.get("/openapi.json").json())
        assert len(ops) >= 15
        answers: dict[int, int] = {}
        bad: list[str] = []
        for method, path, props in ops:
            sent = [*_BROKEN]
            for name in props:
                for odd in _ODD_STRINGS:
                    sent.append(json.dumps({name: odd}).encode())
                sent.append(json.dumps({name: 10**30}).encode())
            for body in sent:
                r = client.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                answers[r.status_code] = answers.get(r.status_code, 0) + 1
                if r.status_code >= 500:
                    bad.append(f"{method} {path} {body[:80]!r}: {r.status_code} {r.text[:200]}")
        # Valid bodies but for a NUL in a free-text field: past validation, into the store.
        for method, path, body in _NUL_IN_VALID:
            r = client.request(method, "/api/v1" + path, json=body)
            answers[r.status_code] = answers.get(r.status_code, 0) + 1
            if r.status_code >= 500:
                bad.append(f"{method} {path} {body}: {r.status_code} {r.text[:200]}")
        assert not bad, "\n".join(bad)
        assert client.get("/health/ready").status_code == 200
    assert sum(answers.values()) >= 200
    print("answers by status:", dict(sorted(answers.items())))
