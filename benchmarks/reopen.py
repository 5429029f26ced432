"""Reopen: open a store to its first ask served by the HNSW graph, with and without the saved graph.

Usage::

    python benchmarks/reopen.py [--atoms 100000] [--rounds 2] [--corpus short|chat]
        [--seed 7] [--dir DIR] [--json OUT]

One SQLite store of ``--atoms`` atoms in one world (default options: past ``ann_threshold``
atoms the world gets an HNSW graph) is written and asked until its graph is built; closing it
saves the graph beside the store (``indexes/``). Then, in the same run, alternating:

* ``rebuild`` (the behaviour before graphs were saved; graph files switched off for this
  open): open, the first ask (it reads every vector of the world from the store and answers
  by exact search), then an ask every 0.25 s until one is served by the graph, built anew in
  the background;
* ``saved``: open, the first ask, served by the saved graph (the exact index is filled from
  the graph's vectors; only atoms past the graph's covered seq are read from the store).

For each: seconds from ``open`` to the end of the first ask, and to the end of the first ask
the graph served. ``--dir`` keeps (and reuses) the store, skipping the ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dwbase
from bench_corpus import Corpus
from dwbase.vector import graphfile

GOAL_S = 1.0  # open -> first ANN-served ask at 100k atoms


def _graph_ready(db: dwbase.Engine) -> bool:
    st = db.index_status("w")[0]
    return bool(st["kind"] == "hnsw" and st["ann_pending"] == 0)


def build(path: Path, atoms: int, corpus: Corpus, opts: dict[str, Any]) -> dict[str, float]:
    t0 = time.perf_counter()
    with dwbase.open(path, **opts) as db:
        if db.storage.count("w", quarantined=False) < atoms:
            for i in range(0, atoms, 5000):
                db.remember_batch(corpus.new_atoms(min(5000, atoms - i), "w"))
                print(f"  ingest {min(atoms, i + 5000):,}/{atoms:,}", end="\r", flush=True)
            print()
        ingest_s = time.perf_counter() - t0
        db.ask("w", corpus.question())
        while not _graph_ready(db):
            time.sleep(0.5)
        built_s = time.perf_counter() - t0 - ingest_s
        t1 = time.perf_counter()
    close_s = time.perf_counter() - t1
    return {"ingest_s": ingest_s, "graph_build_s": built_s, "close_with_save_s": close_s}


def reopen(path: Path, questions: list[str], saved: bool, opts: dict[str, Any]) -> dict[str, Any]:
    real_folder = graphfile.folder
    if not saved:
        graphfile.folder = lambda storage: None  # as before graphs were saved
    try:
        t0 = time.perf_counter()
        db = dwbase.open(path, **opts)
        open_s = time.perf_counter() - t0
        db.ask("w", questions[0])
        first_s = time.perf_counter() - t0
        status = db.index_status("w")[0]
        ann_s: float | None = first_s if status["kind"] == "hnsw" else None
        i = 1
        while ann_s is None:
            time.sleep(0.25)
            served = db.index_status("w")[0]["kind"] == "hnsw"
            db.ask("w", questions[i % len(questions)])
            i += 1
            if served:
                ann_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        db.close()
        close_s = time.perf_counter() - t1
    finally:
        graphfile.folder = real_folder
    return {
        "open_s": round(open_s, 4),
        "first_ask_s": round(first_s, 4),
        "first_ann_ask_s": round(ann_s, 4),
        "graph_file": status["graph_file"],
        "close_s": round(close_s, 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--corpus", default="short", choices=["short", "chat"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--ann-threshold", type=int, default=None, help="default: the engine's")
    args = ap.parse_args(argv)
    corpus = Corpus(args.seed, style=args.corpus)
    opts: dict[str, Any] = {}
    if args.ann_threshold is not None:
        opts["ann_threshold"] = args.ann_threshold
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="dwbase-reopen-")
    path = Path(args.dir or (tmp.name if tmp else "."))
    try:
        print(f"building {args.atoms:,} atoms in {path} ...")
        setup = build(path, args.atoms, corpus, opts)
        files = list((path / "indexes").glob("*.hnsw"))
        setup["graph_file_mb"] = round(sum(os.path.getsize(f) for f in files) / 1e6, 1)
        questions = [corpus.question() for _ in range(50)]
        runs: dict[str, list[dict[str, Any]]] = {"rebuild": [], "saved": []}
        for r in range(args.rounds):
            order = ("saved", "rebuild") if r % 2 == 0 else ("rebuild", "saved")
            for mode in order:
                runs[mode].append(reopen(path, questions, mode == "saved", opts))
                print(f"  round {r + 1} {mode}: {runs[mode][-1]}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    result: dict[str, Any] = {"atoms": args.atoms, "setup": setup, "runs": runs}
    print(f"\n{args.atoms:,} atoms; setup {setup}")
    print("| mode | open s | first ask s | first ANN-served ask s |")
    print("|---|---:|---:|---:|")
    for mode, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("open_s", "first_ask_s")}
        ann = statistics.median(r["first_ann_ask_s"] for r in rows)
        result[mode] = {**med, "first_ann_ask_s": ann}
        print(f"| {mode} | {med['open_s']:.3f} | {med['first_ask_s']:.3f} | {ann:.3f} |")
    ratio = result["rebuild"]["first_ann_ask_s"] / max(result["saved"]["first_ann_ask_s"], 1e-9)
    result["ratio"] = ratio
    goal = "met" if result["saved"]["first_ann_ask_s"] <= GOAL_S else "missed"
    print(f"saved graph: first ANN-served ask {ratio:.0f}x sooner; goal <= {GOAL_S:.0f} s: {goal}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
