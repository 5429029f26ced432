"""The engine benchmark runs end to end at tiny sizes and prints every section."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "engine.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_engine", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_engine_benchmark_prints_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load()
    out_json = tmp_path / "bench.json"
    rc = bench.main(
        [
            "--sizes",
            "150,300",
            "--batch-size",
            "100",
            "--single-n",
            "10",
            "--full-n",
            "3",
            "--queries",
            "4",
            "--warmup",
            "1",
            "--no-chroma",
            "--json",
            str(out_json),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    for section in (
        "# DWBase engine benchmark",
        "## remember (one atom per call",
        "## remember_batch (100 atoms per call)",
        "## ask (top 10, one world)",
        "## replay",
        "## chroma",
        "## ratios vs the SQLite floor",
        "## goals",
    ):
        assert section in out, section
    assert "dwbase remember, durability=normal" in out
    assert "dwbase remember, durability=full" in out
    assert "sqlite floor insert+commit, sync=NORMAL" in out
    assert "sqlite floor executemany" in out
    assert "chroma NOT MEASURED: skipped by --no-chroma" in out
    assert "command: python benchmarks/engine.py --sizes 150,300" in out

    data = json.loads(out_json.read_text())
    assert data["dwbase"]["batch"]["items"] == 300
    assert set(data["dwbase"]["ask"]) == {"150", "300"}
    assert data["dwbase"]["ask"]["300"]["n"] == 4
    assert data["dwbase"]["remember_normal"]["n"] == 10
    assert data["floor"]["batch"]["items"] == 300
    assert data["dwbase"]["replay"]["300"]["per_s"] > 0
    assert len(data["goals"]) == 3


def test_corpus_is_reproducible_from_its_seed() -> None:
    bench = _load()
    a, b = bench.Corpus(7), bench.Corpus(7)
    assert [a.sentence() for _ in range(20)] == [b.sentence() for _ in range(20)]
    assert a.question() == b.question()
    assert bench.Corpus(8).sentence() != bench.Corpus(7).sentence()


def test_no_benchmark_script_shadows_a_standard_library_module() -> None:
    # A script runs with its own directory first on sys.path: a benchmarks/http.py would be
    # imported as "http" by every sibling script (httpx, chromadb and uvicorn import it).
    names = {p.stem for p in BENCH.parent.glob("*.py")}
    assert not names & set(sys.stdlib_module_names)


def test_http_benchmark_drives_a_real_node_and_reports_cpu_per_request() -> None:
    import subprocess

    script = BENCH.parent / "node_http.py"
    args = ["--duration", "1", "--atoms", "300", "--clients", "4", "--ask-workers", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args, "--no-floor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["ask_workers"] == 1
    phases = {r["phase"]: r for r in report["results"]}
    assert set(phases) == {"remember", "ask (300 atoms)", "mix 90% ask / 10% remember"}
    for r in phases.values():
        assert r["requests"] > 0 and r["errors"] == 0
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        if sys.platform.startswith("linux"):
            cpu = r["cpu_ms_per_request"]
            assert set(cpu) == {"node", "ask_workers", "client"} and cpu["node"] > 0
    if sys.platform.startswith("linux"):  # the asks ran in the worker process
        assert phases["ask (300 atoms)"]["cpu_ms_per_request"]["ask_workers"] > 0
