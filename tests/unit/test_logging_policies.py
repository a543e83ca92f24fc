"""Structured logs and the policy loader."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from daemons.core import logging as netd_logging
from daemons.core.policies import PolicyError, line_of, load_policies


@pytest.fixture
def restore_root_logger() -> object:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield None
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_when_not_a_tty(restore_root_logger: object) -> None:
    out = io.StringIO()
    netd_logging.setup("info", "auto", out)
    logging.getLogger("netd.test").info("hello %s", "world", extra={"fields": {"nas": "bng1"}})
    logging.getLogger("netd.test").debug("hidden")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "hello world" and doc["level"] == "info"
    assert doc["logger"] == "netd.test" and doc["nas"] == "bng1"
    assert doc["ts"].endswith("Z")


def test_warnings_and_thread_errors_are_json_too(restore_root_logger: object) -> None:
    """asyncpg's InterfaceWarning at every stop used to break the JSON log with raw lines."""
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    out = io.StringIO()
    saved = (sys.unraisablehook, threading.excepthook)
    try:
        netd_logging.setup("info", "json", out)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a library warns", RuntimeWarning, stacklevel=1)

        def boom() -> None:
            raise ValueError("in a thread")

        worker = threading.Thread(target=boom, name="w1")
        worker.start()
        worker.join()
    finally:
        logging.captureWarnings(False)
        sys.unraisablehook, threading.excepthook = saved
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["logger"] for d in docs] == ["py.warnings", "netd.unhandled"]
    assert "a library warns" in docs[0]["msg"] and "in a thread" in docs[1]["msg"]


def test_text_lines(restore_root_logger: object) -> None:
    out = io.StringIO()
    netd_logging.setup("debug", "text", out)
    logging.getLogger("netd.test").warning("careful", extra={"fields": {"n": 3}})
    line = out.getvalue().strip()
    assert "WARNING" in line and "netd.test: careful" in line and "n=3" in line


def test_policies_load_and_digest(tmp_path: Path) -> None:
    (tmp_path / "radius").mkdir()
    (tmp_path / "radius" / "plans.toml").write_text('[plan.gold]\nrate = "100M"\n')
    first = load_policies(tmp_path, 1)
    assert first.documents["radius/plans.toml"]["plan"]["gold"]["rate"] == "100M"
    assert list(first.under("radius")) == ["radius/plans.toml"]
    (tmp_path / "snmp.toml").write_text("x = 1\n")
    second = load_policies(tmp_path, 2)
    assert second.digest != first.digest and len(second.documents) == 2


def test_broken_policy_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "cwmp").mkdir()
    (tmp_path / "cwmp" / "presets.toml").write_text("[preset\n")
    with pytest.raises(PolicyError) as err:
        load_policies(tmp_path, 1)
    assert err.value.path == "cwmp/presets.toml"


def test_missing_policy_dir_is_an_error(tmp_path: Path) -> None:
    # It used to load as an empty set: `netd radius` then reported ready and rejected everyone.
    with pytest.raises(PolicyError, match="policies directory does not exist"):
        load_policies(tmp_path / "none", 1)


def test_policy_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "radius").mkdir()
    bad = tmp_path / "radius" / "plans.toml"
    bad.write_text('[plans.ok]\ndownload = "1M"\nupload = "1M"\n\n[plans.broken\n')
    with pytest.raises(PolicyError) as err:
        load_policies(tmp_path, 1)
    assert err.value.path == "radius/plans.toml" and err.value.line == 5
    assert str(err.value).startswith("policy radius/plans.toml line 5: ")


def test_line_of_finds_tables_and_keys() -> None:
    text = '# c\n[plans]\nbasic = { download = "1M" }\n\n[plans."x.y"]\na = 1\n[vendors.v]\n'
    assert line_of(text, ("plans", "basic")) == 3
    assert line_of(text, ("plans", "x.y")) == 5
    assert line_of(text, ("vendors", "v")) == 7
    assert line_of(text, ("vendors", "w")) is None


def test_library_exceptions_are_one_line(restore_root_logger: object) -> None:
    out = io.StringIO()
    netd_logging.setup("info", "json", out)
    try:
        raise ConnectionRefusedError("no server")
    except ConnectionRefusedError:
        logging.getLogger("asyncpg.pool").warning("Failed to restore %s", "floor", exc_info=True)
    doc = json.loads(out.getvalue())
    assert "exc" not in doc and "Traceback" not in out.getvalue()
    assert doc["msg"] == "Failed to restore floor: ConnectionRefusedError('no server')"
