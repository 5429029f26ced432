"""RAM per atom of the vector indexes: one big world with its graph, and many small worlds.

Usage::

    python benchmarks/memory.py [--atoms 30000] [--worlds 1000] [--world-size 100] [--json OUT]

Two stores in one process, each in a temp dir, loaded with the engine benchmark's corpus:

1. **one world** of ``--atoms`` atoms (past ``ann_threshold`` its asks go through an HNSW
   graph): RSS after the load, after the first ask (the exact index loaded) and once the graph
   is built and has taken in every vector;
2. **many worlds**: ``--worlds`` worlds of ``--world-size`` atoms, then one ask in each (every
   world's index loaded).

Each part runs in a process of its own (memory the allocator freed in one part would
otherwise be reused, and hidden, by the next). RSS is VmRSS from /proc (garbage collected
first). "Index" figures are what loading the
indexes added, per atom, beside the raw vectors (``dim`` float32 each): the issue's goal is
at most 2 KB per atom beyond them, and 1,000 small worlds costing no more RAM per atom than one
big one. Run it against an older tree with ``PYTHONPATH=<tree>/src`` to compare.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dwbase
from bench_corpus import Corpus
from bench_measure import rss_bytes

WORLD = "bench:memory"
GOAL_BEYOND_RAW = 2048


def _rss() -> int:
    gc.collect()
    return rss_bytes().get("rss", 0)


def _wait_graph(db: Any, world: str, limit_s: float) -> str:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        st: dict[str, Any] = next((s for s in db.index_status() if s["world"] == world), {})
        if st.get("kind") == "hnsw" and not st.get("ann_building") and st.get("ann_pending") == 0:
            return "hnsw"
        time.sleep(0.2)
    return "exact (graph not built in time)"


def one_world(root: Path, atoms: int, seed: int) -> dict[str, Any]:
    corpus = Corpus(seed)
    question = Corpus(seed + 2).question()
    r0 = _rss()
    with dwbase.open(root / "one") as db:
        for i in range(0, atoms, 1000):
            db.remember_batch(corpus.new_atoms(min(1000, atoms - i), WORLD))
        r1 = _rss()
        db.ask(WORLD, question)
        r2 = _rss()
        threshold = db.options.ann_threshold
        past = threshold is not None and atoms >= threshold
        kind = _wait_graph(db, WORLD, 1800) if past else "exact (under ann_threshold)"
        db.ask(WORLD, question)
        r3 = _rss()
        dim = next(s for s in db.index_status() if s["world"] == WORLD)["dim"]
    return {
        "atoms": atoms,
        "dim": dim,
        "kind": kind,
        "store_per_atom": (r1 - r0) / atoms,
        "exact_per_atom": (r2 - r1) / atoms,
        "index_per_atom": (r3 - r1) / atoms,
        "total_per_atom": (r3 - r0) / atoms,
    }


def many_worlds(root: Path, worlds: int, size: int, seed: int) -> dict[str, Any]:
    corpus = Corpus(seed + 3)
    questions = [Corpus(seed + 4).question() for _ in range(20)]
    n = worlds * size
    r0 = _rss()
    with dwbase.open(root / "many") as db:
        for w in range(worlds):
            db.remember_batch(corpus.new_atoms(size, f"bench:w{w:05d}"))
        r1 = _rss()
        for w in range(worlds):
            db.ask(f"bench:w{w:05d}", questions[w % len(questions)])
        r2 = _rss()
        dim = db.index_status(f"bench:w{0:05d}")[0]["dim"]
    return {
        "worlds": worlds,
        "world_size": size,
        "atoms": n,
        "dim": dim,
        "store_per_atom": (r1 - r0) / n,
        "index_per_atom": (r2 - r1) / n,
        "index_per_world": (r2 - r1) / worlds,
        "total_per_atom": (r2 - r0) / n,
    }


def report(out: dict[str, Any], command: str) -> None:
    print("# DWBase RAM per atom")
    print(f"command: {command}")
    print(f"load average: {out['load_avg']}")
    print()
    print(
        "| store | atoms | index kind | RSS/atom after load | + index loaded | index beyond raw |"
    )
    print("|---|---|---|---|---|---|")
    one, many = out["one_world"], out["many_worlds"]
    for name, r in (
        (f"one world of {one['atoms']:,}", one),
        (f"{many['worlds']:,} worlds x {many['world_size']}", many),
    ):
        raw = 4 * r["dim"]
        print(
            f"| {name} | {r['atoms']:,} | {r.get('kind', 'exact')} | "
            f"{r['store_per_atom']:,.0f} B | {r['index_per_atom']:,.0f} B | "
            f"{r['index_per_atom'] - raw:,.0f} B |"
        )
    print()
    print(f"raw vector: {4 * one['dim']} B per atom ({one['dim']} float32)")
    print(f"one world, exact index only (before the graph): {one['exact_per_atom']:,.0f} B/atom")
    print(f"many worlds: {many['index_per_world'] / 1024:,.1f} KiB of index per world")
    ratio = many["index_per_atom"] / one["index_per_atom"] if one["index_per_atom"] else 0.0
    print(f"small worlds' index RAM per atom / the big world's: {ratio:.2f}x")
    beyond = max(one["index_per_atom"], many["index_per_atom"]) - 4 * one["dim"]
    verdict = "met" if beyond <= GOAL_BEYOND_RAW else "MISSED"
    print(f"goal (index <= {GOAL_BEYOND_RAW} B/atom beyond raw vectors): {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--atoms", type=int, default=30_000, help="atoms in the one big world")
    p.add_argument("--worlds", type=int, default=1000, help="small worlds")
    p.add_argument("--world-size", type=int, default=100, help="atoms per small world")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.add_argument("--part", choices=("one", "many"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part:  # one part, in this process: its figures as JSON on stdout
        root = Path(tempfile.mkdtemp(prefix="dwbase-memory-"))
        try:
            if args.part == "one":
                got = one_world(root, args.atoms, args.seed)
            else:
                got = many_worlds(root, args.worlds, args.world_size, args.seed)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(got))
        return 0
    out: dict[str, Any] = {"load_avg": [round(x, 2) for x in os.getloadavg()]}
    base = [sys.executable, __file__, "--atoms", str(args.atoms), "--worlds", str(args.worlds)]
    base += ["--world-size", str(args.world_size), "--seed", str(args.seed)]
    for part, key in (("many", "many_worlds"), ("one", "one_world")):
        done = subprocess.run([*base, "--part", part], check=True, capture_output=True, text=True)
        out[key] = json.loads(done.stdout.strip().splitlines()[-1])
    shown = list(sys.argv[1:] if argv is None else argv)
    report(out, " ".join(["python", "benchmarks/memory.py", *shown]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
