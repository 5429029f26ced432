"""benchmarks/footprint.py runs end to end at a tiny size and reports the new layout."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "footprint.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_footprint", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_footprint_benchmark_reports_bytes_per_atom_by_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fp.json"
    args = ["--atoms", "300", "--batch-size", "100", "--single", "10", "--json", str(out)]
    assert _load().main(args) == 0
    printed = capsys.readouterr().out
    assert "beyond the raw vectors" in printed and "storage append alone" in printed
    assert "after the 280 atoms stored were deleted" in printed
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["schema_version"] == "2" and result["page_size"] == 16384
    names = {t["name"] for t in result["tables"]}
    assert "vectors" in names and "fts_content" not in names
    assert result["beyond_raw_vectors"] == result["file_per_atom"] - 1024
