"""The concurrency and observe fan-out benchmarks run end to end at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str, out: Path) -> dict[str, object]:
    subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data: dict[str, object] = json.loads(out.read_text())
    return data


def test_concurrency_benchmark_reports_both_phases_and_the_big_batch(tmp_path: Path) -> None:
    args = ["--atoms", "300", "--askers", "2", "--duration", "0.5", "--big-batch", "200"]
    data = run("concurrency.py", *args, out=tmp_path / "c.json")
    for phase in ("ask_only", "mixed"):
        figures = data[phase]
        assert isinstance(figures, dict) and figures["n"] > 0 and figures["p95_ms"] > 0
    mixed = data["mixed"]
    assert isinstance(mixed, dict) and mixed["atoms_written_per_s"] > 0
    assert isinstance(data["ask_after_big_batch_ms"], float) and "goal_met" in data


def test_fanout_benchmark_delivers_every_atom_to_every_subscriber(tmp_path: Path) -> None:
    args = ["--subscribers", "5", "--rate", "200", "--duration", "0.5"]
    data = run("observe_fanout.py", *args, out=tmp_path / "f.json")
    assert data["written"] and data["delivered"] == data["expected"] and data["dropped"] == 0
    delivery = data["delivery"]
    assert isinstance(delivery, dict) and delivery["p95_ms"] >= delivery["p50_ms"] > 0
