"""PNG charts of an engine benchmark run (matplotlib, the ``bench`` extra), one set per corpus.

* ``ask_<corpus>.png``: ask/query p50 (solid) and p95 (dashed) against atoms, DWBase beside
  the floors (FTS5 bm25, numpy exact cosine) and the peers;
* ``ingest_<corpus>.png``: batch ingest atoms/s of every store (log scale);
* ``open_<corpus>.png``: time to open the store again and answer a first query, against atoms.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt

from bench_peers import PEERS

_STYLE = {
    "dwbase": ("DWBase ask (hybrid)", "tab:blue"),
    "fts": ("SQLite FTS5 bm25 (floor)", "tab:gray"),
    "numpy": ("numpy exact cosine (floor)", "black"),
    "chroma": ("Chroma query (HNSW)", "tab:orange"),
    "lancedb": ("LanceDB search (exact scan)", "tab:green"),
}


def charts(out_dir: Path, results: dict[str, Any], cfg: Any) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for style, r in results["corpora"].items():
        title = f"corpus {style}; {results['command']}"
        written.append(_ask(out_dir / f"ask_{style}.png", r, cfg, title))
        written.append(_ingest(out_dir / f"ingest_{style}.png", r, cfg, title))
        written.append(_open(out_dir / f"open_{style}.png", r, cfg, title))
    return written


def _finish(fig: Any, ax: Any, path: Path, title: str) -> Path:
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("\n".join(textwrap.wrap(title, 120)), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ask(path: Path, r: dict[str, Any], cfg: Any, title: str) -> Path:
    sizes = list(cfg.sizes)
    series = {
        "dwbase": r["dwbase"]["ask"],
        "fts": r["floor"]["fts_query"],
        "numpy": r["numpy"],
        **{p: r[p]["query"] for p in PEERS if p in r},
    }
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, by_size in series.items():
        label, color = _STYLE[key]
        p50 = [by_size[str(s)]["p50_ms"] for s in sizes]
        p95 = [by_size[str(s)]["p95_ms"] for s in sizes]
        ax.plot(sizes, p50, "o-", color=color, label=f"{label} p50")
        ax.plot(sizes, p95, "s--", color=color, alpha=0.7, label=f"{label} p95")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms in the world")
    ax.set_ylabel("ms per query, top 10")
    ax.legend(fontsize=6, ncol=2)
    return _finish(fig, ax, path, title)


def _ingest(path: Path, r: dict[str, Any], cfg: Any, title: str) -> Path:
    rows = [
        ("DWBase remember_batch (embedding incl.)", r["dwbase"]["batch"]["per_s"], "tab:blue"),
        ("hashing embedder alone", r["embedding"]["per_s"], "lightsteelblue"),
        ("SQLite executemany (floor)", r["floor"]["batch"]["per_s"], "tab:gray"),
        ("SQLite executemany FTS5 (floor)", r["floor"]["batch_fts"]["per_s"], "silver"),
    ]
    rows += [
        (f"{_STYLE[p][0].split()[0]} add (vectors given)", r[p]["batch"]["per_s"], _STYLE[p][1])
        for p in PEERS
        if p in r
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [n for n, _, _ in rows]
    ax.barh(names, [v for _, v, _ in rows], color=[c for _, _, c in rows])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"atoms/s, batches of {cfg.batch_size}, up to {cfg.sizes[-1]:,} atoms")
    ax.tick_params(axis="y", labelsize=7)
    return _finish(fig, ax, path, title)


def _open(path: Path, r: dict[str, Any], cfg: Any, title: str) -> Path:
    sizes = list(cfg.sizes)
    stores = {"dwbase": r["dwbase"]["open"], **{p: r[p]["open"] for p in PEERS if p in r}}
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, by_size in stores.items():
        label, color = _STYLE[key]
        name = label.split()[0]
        ax.plot(
            sizes,
            [by_size[str(s)]["open_s"] for s in sizes],
            "o--",
            color=color,
            label=f"{name} open",
        )
        ax.plot(
            sizes,
            [by_size[str(s)]["first_query_s"] for s in sizes],
            "o-",
            color=color,
            label=f"{name} open + first query",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms in the store")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7)
    return _finish(fig, ax, path, title)
