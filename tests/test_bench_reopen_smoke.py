"""The reopen benchmark runs end to end at a tiny size: the saved graph serves the first ask."""

from __future__ import annotations

import importlib.util
import json
import pstats
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import require
from dwbase.vector import graphfile
from dwbase.vector import hnsw as hnsw_mod

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "reopen.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_reopen", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_reopen_benchmark_compares_rebuild_and_saved_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    bench = _load()
    real_folder = graphfile.folder
    out = tmp_path / "reopen.json"
    args = ["--atoms", "250", "--ann-threshold", "200", "--rounds", "1", "--dir", str(tmp_path)]
    bench.main([*args, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| rebuild |" in printed and "| saved |" in printed and "goal <= 1 s" in printed
    result = json.loads(out.read_text())
    assert result["runs"]["saved"][0]["graph_file"] == "loaded"
    assert result["runs"]["rebuild"][0]["graph_file"] is None
    assert result["saved"]["first_ann_ask_s"] == result["saved"]["first_ask_s"]
    assert graphfile.folder is real_folder  # the switch is undone


def test_reopen_benchmark_measures_steady_asks_with_both_floors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    bench = _load()
    out = tmp_path / "reopen.json"
    store = tmp_path / "store"
    args = ["--atoms", "250", "--ann-threshold", "200", "--rounds", "1", "--dir", str(store)]
    asks, opened = tmp_path / "asks.prof", tmp_path / "open.prof"
    profiles = ["--profile", str(asks), "--profile-open", str(opened)]
    bench.main([*args, "--modes", "saved", "--asks", "12", "--json", str(out), *profiles])
    printed = capsys.readouterr().out
    assert "| rebuild |" not in printed and "| saved |" in printed
    assert "| ask |" in printed and "| fts_floor |" in printed and "| numpy_floor |" in printed
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"saved"}
    steady = result["steady"]
    assert steady["kind"] == "hnsw" and steady["graph_file"] == "loaded"
    for name in ("ask", "fts_floor", "numpy_floor"):
        assert steady[name]["n"] == 12 and steady[name]["p95_ms"] >= steady[name]["p50_ms"] > 0
    assert "ask p95 goal <= 5 ms:" in printed
    assert result["runs"]["saved"][0]["first_ask_cpu_s"] > 0
    for profile in (asks, opened):  # cProfile files pstats reads
        assert "ask" in {fn for (_, _, fn) in pstats.Stats(str(profile)).stats}  # type: ignore[attr-defined]
