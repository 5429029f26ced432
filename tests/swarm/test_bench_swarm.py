"""benchmarks/swarm.py runs end to end at a tiny size and prints every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_swarm_benchmark_prints_lag_rates_and_catch_up(nats_binary: str) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "swarm.py")]
    cmd += ["--seconds", "0.5", "--rates", "300", "--downtime", "0.5", "--warmup", "0.3"]
    cmd += ["--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "lag at 1,000 atoms/s" in out and "highest sustained rate" in out
    assert "catch-up" in out
    figures = json.loads(out[out.index("{") :])
    assert figures["lag_1000"]["delivered"] == 1.0
    assert figures["catch_up"]["caught_up"] == figures["catch_up"]["missed"] > 0
