"""daemons/nbi/gen is what proto/generate.py makes of proto/netd/v1 today (never stale)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("netd_proto_generate", REPO / "proto/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_the_protos() -> None:
    problems = _generator().stale()
    assert not problems, "daemons/nbi/gen is stale, run `make proto`: " + "; ".join(problems)


def test_a_changed_proto_is_noticed(tmp_path: Path) -> None:
    gen = _generator()
    gen.generate(tmp_path)
    target = tmp_path / "netd" / "v1" / "sessions_pb2.py"
    target.write_text(target.read_text() + "# edited by hand\n")
    (tmp_path / "netd" / "v1" / "stray_pb2.py").write_text("")
    problems = gen.stale(tmp_path)
    assert "stale: netd/v1/sessions_pb2.py" in problems
    assert "not generated: netd/v1/stray_pb2.py" in problems
