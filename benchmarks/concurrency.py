"""Asks while writes stream in: several asking threads, with and without a writer, one world.

Usage::

    python benchmarks/concurrency.py [--atoms 100000] [--askers 4] [--duration 30] [--json OUT]

One embedded store (SQLite in a temp dir, default options: past ``ann_threshold`` atoms the
world's asks go through its HNSW graph) is loaded with ``--atoms`` atoms of the engine
benchmark's corpus, then, once the graph is built:

1. **ask only** — ``--askers`` threads ask as fast as they can for ``--duration`` seconds;
2. **askers + writer** — the same, while one more thread writes as fast as it can
   (``--write-batch`` atoms per call: 1 is a stream of single remembers);
3. **after a big batch** — one ``remember_batch`` of ``--big-batch`` atoms, then the next ask.

Reported: ask p50/p95/p99/max and asks/s per phase, atoms written per second, the ratio of the
mixed p95 to the ask-only p95, the graph's pending tail when the writer stopped, and CPU
seconds per ask (the process's CPU over the phase divided by the asks; the writer's share
included in the mixed phase). Goal (issue 14): mixed ask p95 <= 2x ask-only p95, no ask > 1 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dwbase
from bench_concurrency import WORLD, phase, verdict
from engine import Corpus, machine, wait_for_index


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="dwbase-concurrency-"))
    corpus = Corpus(args.seed)
    qc = Corpus(args.seed + 2)
    questions = [qc.question() for _ in range(500)]
    out: dict[str, Any] = {"machine": machine(), "config": vars(args)}
    try:
        with dwbase.open(root / "store") as db:
            t0 = time.perf_counter()
            loaded = 0
            while loaded < args.atoms:
                n = min(1000, args.atoms - loaded)
                db.remember_batch(corpus.new_atoms(n, WORLD))
                loaded += n
                print(f"\rloading {loaded:,}/{args.atoms:,}", end="", file=sys.stderr, flush=True)
            out["load_s"] = time.perf_counter() - t0
            db.ask(WORLD, questions[0])
            print("\nwaiting for the vector index ...", file=sys.stderr, flush=True)
            out["index"] = wait_for_index(db, WORLD, limit_s=1800)
            for q in questions[:20]:
                db.ask(WORLD, q)
            print("ask only ...", file=sys.stderr, flush=True)
            out["ask_only"] = phase(db, questions, args.askers, args.duration, 0, args.seed)
            print(json.dumps(out["ask_only"]), file=sys.stderr, flush=True)
            print("askers + writer ...", file=sys.stderr, flush=True)
            out["mixed"] = phase(
                db, questions, args.askers, args.duration, args.write_batch, args.seed + 5
            )
            print(json.dumps(out["mixed"]), file=sys.stderr, flush=True)
            print("big batch, then one ask ...", file=sys.stderr, flush=True)
            big = Corpus(args.seed + 9).new_atoms(args.big_batch, WORLD)
            t0 = time.perf_counter()
            for i in range(0, len(big), 10_000):  # the most one call takes
                db.remember_batch(big[i : i + 10_000])
            out["big_batch_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            db.ask(WORLD, questions[1])
            out["ask_after_big_batch_ms"] = (time.perf_counter() - t0) * 1000
            st = next((s for s in db.index_status() if s["world"] == WORLD), {})
            out["graph_pending_after_big_batch"] = st.get("ann_pending")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.update(verdict(out["ask_only"], out["mixed"]))
    return out


def report(out: dict[str, Any], command: str) -> None:
    m = out["machine"]
    print("# DWBase asks while writes stream in")
    print(f"command: {command}")
    print(f"machine: {m['platform']}, {m['cpus']} cpus, load {m['load_avg']}, python {m['python']}")
    cfg = out["config"]
    print(
        f"{cfg['atoms']:,} atoms loaded in {out['load_s']:.1f} s; index {out['index']}; "
        f"{cfg['askers']} askers, writer batch {cfg['write_batch']}, {cfg['duration']} s a phase"
    )
    print()
    print("| phase | asks/s | p50 ms | p95 ms | p99 ms | max ms | CPU ms/ask | atoms/s written |")
    print("|---|---|---|---|---|---|---|---|")
    for name, key in (("ask only", "ask_only"), ("askers + 1 writer", "mixed")):
        r = out[key]
        print(
            f"| {name} | {r['asks_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['cpu_ms_per_ask']:.1f} | "
            f"{r['atoms_written_per_s']:.0f} |"
        )
    print()
    print(f"mixed p95 / ask-only p95: {out['p95_ratio']:.2f}x (goal <= 2x, no ask over 1 s)")
    print(f"graph tail when the writer stopped: {out['mixed']['graph_pending_at_end']} vectors")
    print(
        f"remember_batch of {cfg['big_batch']:,}: {out['big_batch_s']:.2f} s; next ask "
        f"{out['ask_after_big_batch_ms']:.1f} ms (graph tail then "
        f"{out['graph_pending_after_big_batch']})"
    )
    print(f"goal: {'met' if out['goal_met'] else 'MISSED'}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--atoms", type=int, default=100_000, help="atoms in the world")
    p.add_argument("--askers", type=int, default=4, help="asking threads")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    p.add_argument("--write-batch", type=int, default=1, help="atoms per write call")
    p.add_argument(
        "--big-batch", type=int, default=20_000, help="atoms written at once (10,000 a call)"
    )
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    out = run(args)
    shown = list(sys.argv[1:] if argv is None else argv)
    report(out, " ".join(["python", "benchmarks/concurrency.py", *shown]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
