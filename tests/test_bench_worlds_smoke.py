"""The many-worlds benchmark runs end to end at tiny sizes and prints both modes and the floor."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dwbase.storage.sqlite import SQLiteStorage

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "worlds.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_worlds", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_worlds_benchmark_compares_both_modes_with_the_fts5_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load()
    before = SQLiteStorage.WORLD_INDEX_MAX
    out_json = tmp_path / "worlds.json"
    args = ["--worlds", "4", "--world-size", "6", "--targets", "2", "--queries", "12"]
    bench.main([*args, "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert "| store-wide |" in printed and "| per-world |" in printed
    assert "FTS5 floor" in printed and "goal: ask p95" in printed
    result = json.loads(out_json.read_text())
    assert result["per-world"]["ask_shared"]["n"] == 12
    assert result["floor"]["own_index"]["n"] == 2  # the first 10 warm the floor up
    assert before == SQLiteStorage.WORLD_INDEX_MAX  # the mode switch is undone
