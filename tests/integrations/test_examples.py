"""examples/langgraph_memory.py runs offline and leaves its memory on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dwbase

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langgraph_memory.py"


def _run(cwd: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "./agent-memory"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_the_langgraph_example_recalls_across_threads(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert "[thread-2] assistant: You prefer tea, Ada." in first
    recalled = [line for line in first if line.startswith("  recalled:")]
    assert recalled == ["  recalled: ['I prefer tea over coffee']"] * 2
    assert first[-1] == "world langgraph/memories/ada holds 1 atom(s)"
    with dwbase.open(tmp_path / "agent-memory") as db:  # on disk, for the next run
        (fact,) = db.replay("langgraph/memories/ada")
        assert fact.payload["value"] == {"fact": "I prefer tea over coffee"}
