"""Measuring helpers shared by the benchmarks: statistics, wall and CPU time, RSS, disk, progress.

Every timed call records two clocks: ``time.perf_counter`` (wall) and ``time.process_time``
(the CPU this process spent, all its threads: a background graph build or checkpoint shows up
in the calls it overlaps). Tables print both, so a slow figure on a busy machine can be told
apart from work the code really does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def latency(samples_s: Sequence[float], cpu_s: Sequence[float] | None = None) -> dict[str, float]:
    """n, p50, p95, p99 and mean of samples given in seconds, reported in milliseconds.

    With ``cpu_s`` (process CPU seconds per call, same order) ``cpu_ms`` is the mean CPU per call.
    """
    arr = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if arr.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    out = {
        "n": int(arr.size),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }
    if cpu_s is not None and len(cpu_s):
        out["cpu_ms"] = float(np.mean(cpu_s) * 1000.0)
    return out


def throughput(
    counts: Sequence[int], seconds: Sequence[float], cpu_s: Sequence[float] | None = None
) -> dict[str, float]:
    """Overall items/s and the median per-call items/s (and CPU µs per item given ``cpu_s``)."""
    rates = [c / s for c, s in zip(counts, seconds, strict=True) if s > 0]
    total_s = sum(seconds)
    items = int(sum(counts))
    out = {
        "calls": len(counts),
        "items": items,
        "per_s": float(items / total_s) if total_s else float("nan"),
        "p50_call_per_s": float(np.median(rates)) if rates else float("nan"),
    }
    if cpu_s is not None and items:
        out["cpu_us_per_item"] = float(sum(cpu_s) / items * 1e6)
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


class Series:
    """Wall and CPU samples of one timed series."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def time(self, fn: Callable[[], Any], keep: bool = True) -> Any:
        wall, cpu, out = timed_cpu(fn)
        if keep:
            self.wall.append(wall)
            self.cpu.append(cpu)
        return out

    def latency(self) -> dict[str, float]:
        return latency(self.wall, self.cpu)


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:,.{digits}f}"


# ----------------------------------------------------------------------------- memory and disk


def rss_bytes() -> dict[str, int]:
    """This process's resident set now (VmRSS) and its peak (VmHWM), from /proc/self/status.

    Empty where /proc is not there (not Linux).
    """
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss" if key == "VmRSS" else "peak"] = int(rest.split()[0]) * 1024
    return out


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (a store's data dir; -wal and -shm files included)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a temp file gone between listing and stat
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def footprint(
    atoms: int, data_dir: Path, rss_before: dict[str, int], held_bytes: int = 0
) -> dict[str, Any]:
    """Disk and RSS per atom after a load.

    ``rss_before`` is :func:`rss_bytes` just before the store was opened; ``held_bytes`` is
    what the benchmark itself keeps alive meanwhile (its copy of the texts), subtracted.
    """
    disk = disk_bytes(data_dir)
    now = rss_bytes()
    out: dict[str, Any] = {"atoms": atoms, "disk_bytes": disk, "disk_per_atom": disk / atoms}
    if now and rss_before:
        grown = now["rss"] - rss_before["rss"] - held_bytes
        out.update(
            rss_bytes=now["rss"],
            rss_peak_bytes=now["peak"],
            rss_grown_bytes=grown,
            rss_per_atom=grown / atoms if grown > 0 else None,
            benchmark_held_bytes=held_bytes,
        )
        if grown <= 0:
            # The store fit in memory this process had freed earlier (a previous corpus or
            # phase): RSS says nothing about it. Measure it in a process of its own.
            out["rss_note"] = "RSS did not grow (memory freed earlier in the process reused)"
    return out


def held_by_texts(texts: Sequence[str]) -> int:
    """Bytes the benchmark's own list of texts keeps alive (subtracted from the store's RSS)."""
    return sys.getsizeof(texts) + sum(sys.getsizeof(t) for t in texts)


# ----------------------------------------------------------------------------- progress


@contextmanager
def progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for a load of ``total`` items; yields ``advance(n)``."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,  # no bar in a log file
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
