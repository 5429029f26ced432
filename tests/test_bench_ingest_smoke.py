"""The ingest benchmark runs end to end at a tiny size and splits its CPU into parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_ingest_benchmark_reports_each_corpus_and_where_its_cpu_goes(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    subprocess.run(
        [
            *(sys.executable, str(BENCH / "ingest.py"), "--atoms", "300", "--per-call", "100"),
            *("--corpus", "bench,chat", "--profile", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(out.read_text())
    assert set(data["corpora"]) == {"bench", "chat"}
    for figures in data["corpora"].values():
        assert figures["cpu_us_per_atom"] > 0 and figures["atoms_per_s"] > 0
        assert figures["embedder_cpu_us_per_text"] > 0
        parts = figures["profile_percent"]
        assert set(parts) == {"embedder", "validation", "storage append", "other"}
        assert all(v > 0 for k, v in parts.items() if k != "other")
        assert abs(sum(parts.values()) - 100) < 1
