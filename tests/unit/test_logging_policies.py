"""Structured logs and the policy loader."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from daemons.core import logging as netd_logging
from daemons.core.policies import PolicyError, load_policies


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


def test_missing_policy_dir_is_empty(tmp_path: Path) -> None:
    assert load_policies(tmp_path / "none", 1).documents == {}


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
