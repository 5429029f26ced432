"""The gc-then-ask benchmark runs end to end at a tiny size and reports every ask."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gc_ask.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_gc_ask", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gc_ask_benchmark_times_the_asks_around_each_gc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gc_ask.json"
    _load().main(["--atoms", "200", "--rounds", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    steps = [(a["round"], a["step"]) for a in result["asks"]]
    assert steps[:4] == [
        (0, "first after load"),
        (0, "caught up"),
        (0, "after the first gc"),
        (0, "again"),
    ]
    assert steps[4:] == [
        (r, s) for r in (1, 2) for s in ("after a batch of 20", "after gc", "again")
    ]
    assert all(a["ask_ms"] > 0 for a in result["asks"])
    assert 0 < result["held"] < 240  # gc evicted the atoms under min_importance 0.3
    assert "ask after gc" in capsys.readouterr().out
