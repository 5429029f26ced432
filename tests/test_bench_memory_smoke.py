"""The memory benchmark runs end to end at tiny sizes, each part in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_memory_benchmark_prints_index_ram_per_atom_for_both_stores(tmp_path: Path) -> None:
    out_json = tmp_path / "memory.json"
    args = ["--atoms", "60", "--worlds", "3", "--world-size", "10", "--json", str(out_json)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    assert "| one world of 60 |" in done.stdout and "| 3 worlds x 10 |" in done.stdout
    assert "goal (index <= 2048 B/atom beyond raw vectors)" in done.stdout
    result = json.loads(out_json.read_text())
    assert result["many_worlds"]["atoms"] == 30 and result["one_world"]["dim"] == 256
    assert result["one_world"]["kind"] == "exact (under ann_threshold)"
