"""``dwbase soak`` and ``dwbase bench``: a mixed load judged for growth, and headline figures."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import REQUIRE_EXTERNAL, require
from dwbase.cli.perf import parse_duration
from dwbase.errors import InvalidInputError
from dwbase.ops import bench as bench_mod
from dwbase.ops import soak_plot
from dwbase.ops.soak import Sample, SoakReport, judge

from .conftest import Run, assert_error

MiB = 2**20


def sample(
    i: int,
    *,
    ask: float = 5.0,
    rss: int = 100 * MiB,
    threads: int = 4,
    fds: int = 20,
    wal: int = 4 * MiB,
) -> Sample:
    return Sample(
        t_s=float(i),
        ops=100,
        errors=0,
        ask_p95_ms=ask,
        remember_p95_ms=1.0,
        observed=10,
        rss_bytes=rss,
        fds=fds,
        threads=threads,
        wal_bytes=wal,
    )


def failed(checks: list[dict[str, object]]) -> list[object]:
    return [c["check"] for c in checks if not c["ok"]]


def test_a_steady_run_passes_every_check() -> None:
    steady = [sample(i, rss=100 * MiB + i * MiB) for i in range(12)]
    assert failed(judge(steady)) == []


def test_growth_without_bound_fails_the_check_that_grew() -> None:
    assert failed(judge([sample(i, threads=4 + i) for i in range(12)])) == ["threads"]
    assert failed(judge([sample(i, fds=20 + 3 * i) for i in range(12)])) == ["file descriptors"]
    assert failed(judge([sample(i, ask=5.0 * 2**i) for i in range(12)])) == ["ask p95 latency"]
    leak = [sample(i, rss=100 * MiB + i * i * 4 * MiB) for i in range(12)]  # faster and faster
    assert failed(judge(leak)) == ["resident memory"]
    assert failed(judge([sample(i) for i in range(12)], errors=3)) == ["errors"]
    assert failed(judge([sample(i) for i in range(3)])) == ["samples"]


def test_a_wal_filling_up_to_its_checkpoint_size_passes_and_one_growing_past_it_fails() -> None:
    # 16 KiB pages fill the WAL fast: a short run ends before the first truncating checkpoint.
    filling = [sample(i, wal=(12 + 8 * i) * MiB) for i in range(12)]  # 12 -> 100 MiB
    assert failed(judge(filling)) == []
    runaway = [sample(i, wal=(12 + 30 * i) * MiB) for i in range(12)]  # 12 -> 342 MiB
    assert failed(judge(runaway)) == ["WAL"]


def test_durations_take_a_unit() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration("90") == 90
    assert parse_duration("1.5h") == 5400
    with pytest.raises(InvalidInputError, match="10m"):
        parse_duration("ten minutes")
    with pytest.raises(InvalidInputError, match="at least 2 s"):
        parse_duration("500ms")


def test_a_short_soak_of_a_data_dir_passes_and_reports_every_sample(
    cli: Run, data_dir: Path
) -> None:
    r = cli("--data-dir", str(data_dir), "soak", "--duration", "4s", "--interval", "0.5", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] is True and report["first_error"] is None
    assert len(report["samples"]) >= 6
    assert {c["check"] for c in report["checks"]} >= {
        "errors",
        "ask p95 latency",
        "threads",
        "file descriptors",
        "WAL",
        "resident memory",
    }
    totals = report["totals"]
    for op in ("remember", "ask", "replay", "observe_poll", "gc"):
        assert totals.get(op, 0) > 0, op
    assert all(s["rss_bytes"] and s["fds"] and s["threads"] for s in report["samples"])
    assert (data_dir / "dwbase.sqlite3").is_file()  # the load went to the store given


def test_a_soak_without_a_store_uses_a_temporary_one_and_prints_its_checks(cli: Run) -> None:
    r = cli("soak", "--duration", "2s", "--interval", "0.4")
    assert r.exit_code == 0, r.output
    assert "a new store in" in r.output and "removed afterwards" in r.output
    assert "resident memory" in r.output and "soak passed" in r.output


def test_a_soak_with_plot_draws_its_samples_into_a_png_titled_with_the_command(
    cli: Run, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # matplotlib comes with the dev extra (scripts/test.sh) as well as the bench extra.
    require(
        importlib.util.find_spec("matplotlib") is not None,
        "matplotlib not installed (pip install 'dwbase[dev]' or 'dwbase[bench]')",
    )
    titles: list[str] = []
    real = soak_plot.plot_soak

    def spy(report: SoakReport, path: Path, title: str) -> Path:
        titles.append(title)
        return real(report, path, title)

    monkeypatch.setattr(soak_plot, "plot_soak", spy)
    png = tmp_path / "img" / "soak.png"
    args = ("soak", "--duration", "2s", "--interval", "0.4", "--plot", str(png))
    r = cli("--data-dir", str(data_dir), *args, env={"DWBASE_TOKEN": "dwb_secret"})
    assert r.exit_code == 0, r.output
    assert f"plot: {png}" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert titles == [
        f"dwbase --data-dir {data_dir} soak --duration 2s --interval 0.4 --plot {png}"
    ]


def test_a_soak_with_plot_but_no_matplotlib_fails_at_once_naming_the_extra(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" raises ImportError
    png = tmp_path / "soak.png"
    r = cli("soak", "--duration", "10m", "--plot", str(png))
    assert_error(r, "invalid_input", 2, "matplotlib", "pip install 'dwbase[bench]'")
    assert "a new store in" not in r.output  # refused before the ten minutes, not after
    assert not png.exists()


@pytest.mark.slow
def test_the_ci_soak_runs_a_minute_of_mixed_load_without_growth(cli: Run, data_dir: Path) -> None:
    seconds = os.environ.get("DWBASE_SOAK_S") or ("60" if REQUIRE_EXTERNAL else "")
    if not seconds:
        pytest.skip("the 60-second soak runs in CI (.ci/run) or with DWBASE_SOAK_S=<seconds>")
    r = cli("--data-dir", str(data_dir), "soak", "--duration", f"{seconds}s", "--json")
    report = json.loads(r.output)
    assert r.exit_code == 0 and report["ok"], json.dumps(report["checks"], indent=2)


def test_bench_prints_the_headline_table(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = bench_mod.BenchSizes(atoms=300, singles=20, asks=10, batch=100)
    monkeypatch.setattr(bench_mod.BenchSizes, "quick", classmethod(lambda cls: tiny))
    r = cli("bench", "--quick")
    assert r.exit_code == 0, r.output
    for row in ("remember, one atom a call (20)", "remember_batch (300 atoms)", "SQLite floor"):
        assert row in r.output
    assert "ask, top 10 at 300 atoms (10)" in r.output and "replay" in r.output
    r = cli("bench", "--quick", "--json")
    figures = json.loads(r.output)
    assert figures["ask"]["n"] == 10 and figures["batch"]["atoms_per_s"] > 0
    assert figures["batch_vs_floor"] > 0 and figures["remember"]["p50_ms"] > 0
