"""A soak run's samples as a PNG (matplotlib, the ``bench`` extra): ``dwbase soak --plot``.

Four panels over the run's time: ask and remember p95 (ms), resident memory (MiB), open file
descriptors and threads, and the WAL (MiB). The first and last quarters, the ones
:func:`~dwbase.ops.soak.judge` compares, are shaded. The engine never imports this module.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .soak import Sample, SoakReport

MiB = 2**20
EXTRA_HINT = "pip install 'dwbase[bench]'"


def require_matplotlib() -> None:
    """Raise :class:`InvalidInputError` naming the extra when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError(
            f"--plot needs matplotlib, which is not installed ({exc}): {EXTRA_HINT}",
            field="plot",
        ) from exc


def _series(samples: list[Sample], attr: str, scale: float = 1.0) -> tuple[list[float], list[Any]]:
    xs: list[float] = []
    ys: list[Any] = []
    for s in samples:
        v = getattr(s, attr)
        xs.append(s.t_s)
        ys.append(None if v is None else v / scale)
    return xs, ys


def plot_soak(report: SoakReport, path: Path, title: str) -> Path:
    """Draw ``report``'s samples into ``path`` (PNG) under ``title``; returns ``path``."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    samples = report.samples
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    panels: list[tuple[str, list[tuple[str, str, float]]]] = [
        (
            "p95 per interval (ms)",
            [("ask p95", "ask_p95_ms", 1.0), ("remember p95", "remember_p95_ms", 1.0)],
        ),
        ("resident memory (MiB)", [("RSS", "rss_bytes", MiB)]),
        ("count", [("open file descriptors", "fds", 1.0), ("threads", "threads", 1.0)]),
        ("WAL (MiB)", [("WAL", "wal_bytes", MiB)]),
    ]
    n = len(samples)
    q = max(1, n // 4)
    for ax, (label, lines) in zip(axes, panels, strict=True):
        for name, attr, scale in lines:
            xs, ys = _series(samples, attr, scale)
            if any(y is not None for y in ys):
                ax.plot(xs, [float("nan") if y is None else y for y in ys], marker=".", label=name)
        if n >= 4:
            ax.axvspan(0, samples[q - 1].t_s, color="tab:gray", alpha=0.12)
            ax.axvspan(samples[-q].t_s, samples[-1].t_s, color="tab:gray", alpha=0.12)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("seconds since start")
    verdict = "passed" if report.ok else "FAILED"
    totals = ", ".join(f"{k} {v}" for k, v in sorted(report.totals.items()))
    fig.suptitle(
        "\n".join([*textwrap.wrap(title, 100), f"soak {verdict} ({n} samples); {totals}"]),
        fontsize=8,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
