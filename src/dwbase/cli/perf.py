"""Performance commands: ``soak`` (a mixed load that must not grow) and ``bench``."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidInputError
from ..protocol import DWBaseAPI
from .atoms import JsonFlag
from .context import open_backend, state
from .render import note, out, print_json, rows_table

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``1h`` or ``500ms``."""
    m = _DURATION.match(text or "")
    if m is None:
        raise InvalidInputError(
            f"duration {text!r} is not a number with an optional unit (ms, s, m, h), e.g. 10m",
            field="duration",
        )
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
    seconds = float(m.group(1)) * scale
    if seconds < 2:
        raise InvalidInputError("a soak lasts at least 2 s", field="duration")
    return seconds


@contextmanager
def _store(ctx: typer.Context) -> Iterator[tuple[DWBaseAPI, bool, str]]:
    """(store, whether it lives in this process, what it is): the node of --api, the store
    of --data-dir, or a fresh store in a temporary directory removed afterwards."""
    st = state(ctx)
    if st.api or st.data_dir is not None:
        with open_backend(ctx, create=True) as db:
            yield db, not st.api, st.api or str(st.data_dir)
        return
    import dwbase

    tmp = Path(tempfile.mkdtemp(prefix="dwbase-soak-"))
    try:
        with dwbase.open(tmp) as db:
            yield db, True, f"a new store in {tmp} (removed afterwards)"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def soak(
    ctx: typer.Context,
    duration: Annotated[
        str, typer.Option("--duration", "-d", metavar="TIME", help="How long: 90s, 10m, 1h.")
    ] = "60s",
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval", metavar="SECONDS", help="Seconds between samples (default: 1/20 of it)."
        ),
    ] = None,
    world: Annotated[str, typer.Option("--world", help="World the load writes to.")] = "soak",
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="Also draw the samples over time into this PNG (needs the bench extra).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a mixed load (remember, batch, ask, replay, observe, gc) and fail if it grows.

    One writer thread and one reader thread load the store of --data-dir, the node of --api,
    or (with neither) a fresh store in a temporary directory. A sample every --interval
    seconds records ask and remember p95, and this process's resident memory, open file
    descriptors and threads, and the store's WAL size. The last quarter of the run is compared
    with the first: latency may reach 3x plus 25 ms, threads 2 more, descriptors 8 more, the
    WAL 64 MiB more (than its first most, or than the 64 MiB past which the store truncates
    it), and memory may grow in the second half by what it grew in the first plus 64 MiB.
    Any failed operation fails the run too. Exit status 1 when a check fails.
    --plot draws ask/remember p95, memory, descriptors and threads, and the WAL against time
    (matplotlib: pip install 'dwbase[bench]'), titled with the command.

    \b
    Examples:
      dwbase soak --duration 10m
      dwbase soak --duration 10m --plot soak.png
      dwbase --api http://127.0.0.1:8080 --token $TOKEN soak --duration 60s --json
    """
    from ..ops.soak import Sample, run_soak

    seconds = parse_duration(duration)
    every = interval if interval is not None else min(30.0, max(1.0, seconds / 20))
    if every <= 0:
        raise InvalidInputError("--interval must be positive", field="interval")
    if plot is not None:
        from ..ops.soak_plot import require_matplotlib

        require_matplotlib()  # before the run, not after ten minutes of it

    def show(s: Sample) -> None:
        if as_json:
            return
        rss = f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes is not None else "-"
        wal = f"{s.wal_bytes / 2**20:.1f} MiB" if s.wal_bytes is not None else "-"
        ask = f"{s.ask_p95_ms:.1f}" if s.ask_p95_ms is not None else "-"
        rem = f"{s.remember_p95_ms:.1f}" if s.remember_p95_ms is not None else "-"
        note(
            f"{s.t_s:7.1f} s  ops {s.ops:5d}  ask p95 {ask} ms  remember p95 {rem} ms  "
            f"rss {rss}  fds {s.fds if s.fds is not None else '-'}  threads {s.threads}  "
            f"wal {wal}  errors {s.errors}"
        )

    with _store(ctx) as (db, local, where):
        if not as_json:
            note(f"soak: {seconds:g} s against {where}, a sample every {every:g} s")
        report = run_soak(
            db,
            duration_s=seconds,
            interval_s=every,
            world=world,
            local_process=local,
            on_sample=show,
        )
    if plot is not None:
        from ..ops.soak_plot import plot_soak

        plot_soak(report, plot, _command(ctx, duration, interval, world, plot, as_json))
        if not as_json:
            note(f"plot: {plot}")
    if as_json:
        print_json(report.to_dict())
    else:
        out().print(
            rows_table(
                ["check", "result", "detail"],
                [(c["check"], "ok" if c["ok"] else "FAILED", c["detail"]) for c in report.checks],
                title="soak",
            )
        )
        totals = ", ".join(f"{k} {v}" for k, v in sorted(report.totals.items()))
        note(f"operations: {totals}")
        if report.first_error:
            note(f"first error: {report.first_error}")
        note("soak passed" if report.ok else "soak FAILED")
    if not report.ok:
        raise typer.Exit(1)


def _command(
    ctx: typer.Context,
    duration: str,
    interval: float | None,
    world: str,
    plot: Path,
    as_json: bool,
) -> str:
    """The soak's command line, rebuilt from its options (a --token is never shown)."""
    st = state(ctx)
    words = ["dwbase"]
    if st.api:
        words += ["--api", st.api]
    elif st.data_dir is not None:
        words += ["--data-dir", str(st.data_dir)]
    words += ["soak", "--duration", duration]
    if interval is not None:
        words += ["--interval", f"{interval:g}"]
    if world != "soak":
        words += ["--world", world]
    if as_json:
        words.append("--json")
    words += ["--plot", str(plot)]
    return " ".join(words)


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="2,000 atoms and 100 asks (a few seconds).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print the headline figures of an embedded store on this machine.

    A fresh store in a temporary directory: single remembers, remember_batch, asks (top 10)
    and a replay, with a plain SQLite executemany of the same texts as the floor, measured
    in the same run, and CPU per operation beside wall time. 20,000 atoms and 300 asks
    unless --quick. The full benchmark with peers is benchmarks/engine.py.

    \b
    Examples:
      dwbase bench --quick
      dwbase bench --json
    """
    from ..ops.bench import BenchSizes, headline_rows, run_bench

    sizes = BenchSizes.quick() if quick else BenchSizes.full()
    result = run_bench(sizes)
    if as_json:
        print_json(result)
        return
    out().print(rows_table(["what", "figure", "CPU per op"], headline_rows(result), title="bench"))


def register(app: typer.Typer) -> None:
    app.command("soak")(soak)
    app.command("bench")(bench)
