"""Asks while writes stream in: the phases behind benchmarks/concurrency.py and the engine
benchmark's ``--concurrency`` phase.

A phase runs ``askers`` threads that ask as fast as they can for ``duration_s`` seconds, with
(``write_batch`` > 0) or without one more thread that writes as fast as it can. Reported: ask
p50/p95/p99/max, asks/s, atoms written per second, CPU per ask (the process's CPU over the
phase divided by the asks, the writer's share included) and the graph's unindexed tail when
the phase ended. Goal (issue 14, item 1): mixed p95 <= 2x the ask-only p95, no ask over 1 s.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import dwbase
from bench_corpus import Corpus
from bench_measure import latency

WORLD = "bench:concurrency"


def phase(
    db: Any,
    questions: list[str],
    askers: int,
    duration_s: float,
    write_batch: int,
    seed: int,
    *,
    world: str = WORLD,
    style: str = "short",
) -> dict[str, Any]:
    stop = threading.Event()
    samples: list[list[float]] = [[] for _ in range(askers)]
    written = [0]

    def ask(i: int) -> None:
        n = 0
        while not stop.is_set():
            q = questions[(i * 7919 + n) % len(questions)]
            t0 = time.perf_counter()
            db.ask(world, q)
            samples[i].append(time.perf_counter() - t0)
            n += 1

    def write() -> None:
        corpus = Corpus(seed, style=style)
        while not stop.is_set():
            atoms = corpus.new_atoms(write_batch, world)
            if write_batch == 1:
                db.remember_atom(atoms[0])
            else:
                db.remember_batch(atoms)
            written[0] += write_batch

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(askers)]
    if write_batch:
        threads.append(threading.Thread(target=write))
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(duration_s)
    stop.set()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    flat = [s for per in samples for s in per]
    st = next((s for s in db.index_status() if s["world"] == world), {})
    return {
        **latency(flat),
        "max_ms": max(flat) * 1000 if flat else float("nan"),
        "asks_per_s": len(flat) / wall,
        "atoms_written_per_s": written[0] / wall,
        "cpu_ms_per_ask": cpu * 1000 / len(flat) if flat else float("nan"),
        "graph_pending_at_end": st.get("ann_pending"),
        "wall_s": wall,
    }


def verdict(ask_only: dict[str, Any], mixed: dict[str, Any]) -> dict[str, Any]:
    ratio = mixed["p95_ms"] / ask_only["p95_ms"] if ask_only["p95_ms"] else float("nan")
    met = bool(ratio <= 2.0 and mixed["max_ms"] <= 1000.0)
    return {"p95_ratio": ratio, "goal_met": met}


def bench_concurrency(
    root: Path,
    cfg: Any,
    style: str,
    questions: list[str],
    wait_for_index: Any,
) -> dict[str, Any]:
    """The engine benchmark's phase: a world of the run's largest size, its index settled,
    then ``cfg.concurrency_askers`` askers alone and with one writer of single remembers and
    one of batches of 100, ``cfg.concurrency`` seconds each."""
    atoms = cfg.sizes[-1]
    out: dict[str, Any] = {"atoms": atoms, "askers": cfg.concurrency_askers}
    corpus = Corpus(cfg.seed + 31, style=style)
    with dwbase.open(root / f"concurrency-{style}") as db:
        loaded = 0
        while loaded < atoms:
            n = min(cfg.batch_size, atoms - loaded)
            db.remember_batch(corpus.new_atoms(n, WORLD))
            loaded += n
        db.ask(WORLD, questions[0])
        out["index"] = wait_for_index(db, WORLD, limit_s=1800)
        for q in questions[:20]:
            db.ask(WORLD, q)
        for name, batch in (("ask_only", 0), ("single_writer", 1), ("bulk_writer", 100)):
            print(f"[{style}] concurrency: {name} ...", file=sys.stderr, flush=True)
            out[name] = phase(
                db,
                questions,
                cfg.concurrency_askers,
                cfg.concurrency,
                batch,
                cfg.seed + 37 + batch,
                style=style,
            )
    for name in ("single_writer", "bulk_writer"):
        out[name].update(verdict(out["ask_only"], out[name]))
    return out
