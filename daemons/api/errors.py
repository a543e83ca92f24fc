"""One error envelope for every API answer that is not a success.

``{"error": {"code", "message", "details", "request_id"}}``: ``code`` is a stable word a
client can branch on, ``message`` is for people, ``details`` names the fields of a
validation error. No stack trace, no exception text from a library, ever reaches a client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from daemons.core.ratelog import RateLimitedLog

log = logging.getLogger("netd.api")
_ratelog = RateLimitedLog(log)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class FieldError(BaseModel):
    field: str = Field(description="where: body.secret, query.limit, path.name")
    message: str
    type: str = Field(description="a machine-readable error type, e.g. missing, int_parsing")


class ErrorBody(BaseModel):
    code: str = Field(description="stable error code: not_found, validation_error, ...")
    message: str
    details: list[FieldError] = Field(default_factory=list)
    request_id: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Raised by a handler: answered as the envelope with this status and code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = headers
        self.details = details


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def envelope(
    status: int,
    code: str,
    message: str,
    request_id: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": request_id,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return envelope(
            exc.status, exc.code, exc.message, request_id_of(request), exc.details, exc.headers
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        message = exc.detail if isinstance(exc.detail, str) else phrase
        return envelope(
            status,
            _CODES.get(status, "error"),
            message,
            request_id_of(request),
            None,
            dict(exc.headers) if exc.headers else None,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {
                "field": _field(err.get("loc", ())),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "invalid")),
            }
            for err in exc.errors()
        ]
        names = ", ".join(d["field"] for d in details[:5]) or "the request"
        return envelope(
            422, "validation_error", f"invalid: {names}", request_id_of(request), details
        )

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        _ratelog.log(
            logging.WARNING,
            "api-store",
            "store unavailable while answering an API request",
            path=request.url.path,
            error=type(exc).__name__,
        )
        return envelope(
            503,
            "unavailable",
            "a store (PostgreSQL or Redis) is unavailable; try again",
            request_id_of(request),
            None,
            {"Retry-After": "5"},
        )

    async def data_error(request: Request, exc: Exception) -> JSONResponse:
        # A value PostgreSQL cannot take (a NUL in a name, a date out of range): the
        # client's input, not our failure.
        return envelope(
            422,
            "validation_error",
            "a value in the request cannot be stored or searched for",
            request_id_of(request),
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(asyncpg.DataError, data_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for exc_type in (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        RedisError,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(exc_type, store_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": HTTPStatus(status).phrase}
    for status in (400, 401, 403, 404, 409, 422, 429, 503)
}
