"""The many-worlds phase of the engine benchmark: does a small world pay for the whole store?

One store holds ``worlds`` worlds of ``world_size`` atoms each; a second store holds only one
of those worlds (the same atoms). The same questions are asked in that world in both stores,
interleaved call by call (alternating which store goes first) so both see the same machine at
the same moment. Reported: ask p50/p95 and CPU per ask in each, the ratio of the p95s (issue
goal: within 1.5x), and each store's disk and RSS per atom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dwbase
from bench_corpus import Corpus
from bench_measure import Series, footprint, progress, rss_bytes

GOAL_RATIO = 1.5


def bench_worlds(root: Path, cfg: Any, style: str, questions: list[str]) -> dict[str, Any]:
    corpus = Corpus(cfg.seed + 3, style=style)
    n, size = cfg.worlds, cfg.world_size
    target = f"bench:w{n // 2:05d}"
    kept: list[dict[str, Any]] = []
    out: dict[str, Any] = {"worlds": n, "world_size": size, "target": target}

    many_dir, alone_dir = root / f"worlds-{style}-many", root / f"worlds-{style}-alone"
    before = rss_bytes()
    many = dwbase.open(many_dir)
    alone = None
    try:
        with progress(f"{n} worlds x {size}", n * size, cfg.progress) as advance:
            for w in range(n):
                world = f"bench:w{w:05d}"
                atoms = corpus.new_atoms(size, world)
                if world == target:
                    kept = [dict(a) for a in atoms]
                for i in range(0, size, cfg.batch_size):
                    many.remember_batch(atoms[i : i + cfg.batch_size])
                advance(size)
        out["many_footprint"] = footprint(n * size, many_dir, before)
        before = rss_bytes()
        alone = dwbase.open(alone_dir)
        alone.remember_batch(kept)
        out["alone_footprint"] = footprint(size, alone_dir, before)
        dbs = {"many": many, "alone": alone}
        for db in dbs.values():
            for q in questions[: cfg.warmup]:
                db.ask(target, q)
        series = {k: Series() for k in dbs}
        for i, q in enumerate(questions[: cfg.queries]):
            order = ("many", "alone") if i % 2 == 0 else ("alone", "many")
            for k in order:
                series[k].time(lambda k=k, q=q: dbs[k].ask(target, q))
        out["alone"] = series["alone"].latency()
        out["many"] = series["many"].latency()
    finally:
        many.close()
        if alone is not None:
            alone.close()
    a, m = out["alone"]["p95_ms"], out["many"]["p95_ms"]
    out["p95_ratio"] = m / a if a else float("nan")
    ratio = out["p95_ratio"]
    out["goal"] = {
        "goal": f"ask p95 in 1 of {n} worlds <= {GOAL_RATIO:g}x the world alone",
        "measured": f"{ratio:.2f}x ({m:.2f} vs {a:.2f} ms)",
        "verdict": "met"
        if ratio <= GOAL_RATIO
        else f"MISSED: {ratio:.2f}x is {ratio - GOAL_RATIO:.2f}x over",
    }
    return out
