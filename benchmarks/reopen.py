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
the graph served. ``--dir`` keeps (and reuses) the store, skipping the ingest. ``--modes saved``
skips the rebuilds (minutes each at 1M).

``--asks N`` then measures steady asks on the same store (item 2's goals: ask p95 at 100k and
1M atoms in one world): opened with its saved graph, once the graph serves, ``N`` asks
(``limit=10``), each followed by the two floors on the same data, in turn: an FTS5 bm25 top 10
over the world's texts (a plain ``fts5`` table of its own, the same tokenizer, the question's
terms OR-ed) and an exact numpy cosine top 10 over the world's vectors (embedded again with the
same embedder). Wall p50/p95 and process CPU per call, in ms. BLAS runs on one thread for
all three (on a small shared machine a second OpenBLAS thread only spins for a core; the
engine pins its own products to one thread anyway). ``--profile FILE`` then profiles the same
asks again (cProfile, pstats file) to say where an ask's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from threadpoolctl import threadpool_limits

import dwbase
from bench_corpus import Corpus
from bench_measure import Series, rss_bytes
from dwbase.embed.hashing import HashingEmbedder
from dwbase.text import query_terms
from dwbase.vector import graphfile

GOAL_S = 1.0  # open -> first ANN-served ask at 100k atoms
GOAL_1M_S = 5.0  # ... and at 1M
ASK_GOAL_MS = 5.0  # ask p95 at 100k atoms (item 2)
ASK_GOAL_1M_MS = 15.0  # ... and at 1M


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


def reopen(
    path: Path,
    questions: list[str],
    saved: bool,
    opts: dict[str, Any],
    profile: str | None = None,
) -> dict[str, Any]:
    real_folder = graphfile.folder
    if not saved:
        graphfile.folder = lambda storage: None  # as before graphs were saved
    prof = cProfile.Profile() if profile else None
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        if prof is not None:
            prof.enable()
        db = dwbase.open(path, **opts)
        open_s = time.perf_counter() - t0
        db.ask("w", questions[0])
        first_s = time.perf_counter() - t0
        first_cpu_s = time.process_time() - c0
        if prof is not None and profile:
            prof.disable()
            prof.dump_stats(profile)
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
        "first_ask_cpu_s": round(first_cpu_s, 4),
        "first_ann_ask_s": round(ann_s, 4),
        "graph_file": status["graph_file"],
        "close_s": round(close_s, 4),
    }


def _world_texts(path: Path) -> list[str]:
    """The world's index texts, read straight from the store file (read-only)."""
    conn = sqlite3.connect(f"file:{path / 'dwbase.sqlite3'}?mode=ro", uri=True)
    try:
        view = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'atoms_text'").fetchone()
        sql = (  # schema 2 keeps a text once: atoms.text is NULL where the payload holds it
            "SELECT t.text FROM atoms a JOIN atoms_text t ON t.seq = a.seq"
            if view
            else "SELECT a.text FROM atoms a"
        )
        return [r[0] for r in conn.execute(f"{sql} WHERE a.world = 'w' ORDER BY a.seq")]
    finally:
        conn.close()


def _fts_floor(root: Path, texts: list[str]) -> tuple[sqlite3.Connection, float]:
    """A plain FTS5 table of the world's texts, same tokenizer as the store's."""
    t0 = time.perf_counter()
    floor = root / "floor-fts.sqlite3"
    floor.unlink(missing_ok=True)
    conn = sqlite3.connect(floor, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE VIRTUAL TABLE one USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO one(text) VALUES(?)", ((t,) for t in texts))
    conn.execute("COMMIT")
    return conn, time.perf_counter() - t0


def _vectors(texts: list[str]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    emb = HashingEmbedder()
    mat = np.zeros((len(texts), emb.dim), dtype=np.float32)
    for i in range(0, len(texts), 5000):
        block = emb.embed(texts[i : i + 5000])
        mat[i : i + len(block)] = np.asarray(block, dtype=np.float32)
    return mat, time.perf_counter() - t0


def steady_asks(
    path: Path,
    questions: list[str],
    n: int,
    opts: dict[str, Any],
    floors: bool = True,
    profile: str | None = None,
) -> dict[str, Any]:
    """``n`` asks once the saved graph serves, each followed by the FTS5 and numpy floors."""
    out: dict[str, Any] = {"asks": n}
    conn: sqlite3.Connection | None = None
    mat: np.ndarray | None = None
    if floors:
        texts = _world_texts(path)
        conn, out["fts_floor_build_s"] = _fts_floor(path.parent, texts)
        mat, out["numpy_floor_embed_s"] = _vectors(texts)
        del texts
    emb = HashingEmbedder()
    qv = np.asarray(emb.embed(questions), dtype=np.float32)
    ask, fts, exact = Series(), Series(), Series()
    with dwbase.open(path, **opts) as db, threadpool_limits(1, user_api="blas"):
        db.ask("w", questions[0])
        while not _graph_ready(db):
            time.sleep(0.25)
        out["graph_file"] = db.index_status("w")[0]["graph_file"]
        out["rss_mb"] = round(rss_bytes().get("rss", 0) / 1e6, 1)
        for i in range(n + 10):
            q = questions[i % len(questions)]
            keep = i >= 10  # warm-up
            ask.time(lambda q=q: db.ask("w", q, limit=10), keep=keep)
            if conn is not None:
                m = " OR ".join('"' + t.replace('"', '""') + '"' for t in query_terms(q)) or '""'
                fts.time(
                    lambda m=m: conn.execute(
                        "SELECT rowid, rank FROM one WHERE one MATCH ? ORDER BY rank LIMIT 10",
                        (m,),
                    ).fetchall(),
                    keep=keep,
                )
            if mat is not None:
                v = qv[i % len(qv)]

                def top10(v: np.ndarray = v, mat: np.ndarray = mat) -> Any:
                    scores = mat @ v
                    top = np.argpartition(-scores, 9)[:10]
                    return top[np.argsort(-scores[top])]

                exact.time(top10, keep=keep)
        out["kind"] = db.index_status("w")[0]["kind"]
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            for i in range(n):
                db.ask("w", questions[(i + 10) % len(questions)], limit=10)
            prof.disable()
            prof.dump_stats(profile)
    out["ask"] = ask.latency()
    if conn is not None:
        out["fts_floor"] = fts.latency()
        conn.close()
    if mat is not None:
        out["numpy_floor"] = exact.latency()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--corpus", default="short", choices=["short", "chat"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--ann-threshold", type=int, default=None, help="default: the engine's")
    ap.add_argument("--modes", default="saved,rebuild", help="reopen modes to run, comma-separated")
    ap.add_argument("--asks", type=int, default=0, help="then N steady asks with the floors")
    ap.add_argument("--no-floors", action="store_true", help="--asks without the floors")
    ap.add_argument("--profile", default=None, help="--asks: then profile them into this file")
    ap.add_argument(
        "--profile-open", default=None, help="profile the last saved open and first ask (FILE)"
    )
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
        modes = [m for m in ("rebuild", "saved") if m in args.modes.split(",")]
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for r in range(args.rounds):
            order = ("saved", "rebuild") if r % 2 == 0 else ("rebuild", "saved")
            for mode in (m for m in order if m in runs):
                last = r == args.rounds - 1 and mode == "saved"
                prof = args.profile_open if last else None
                runs[mode].append(reopen(path, questions, mode == "saved", opts, prof))
                print(f"  round {r + 1} {mode}: {runs[mode][-1]}")
        steady = None
        if args.asks:
            steady = steady_asks(
                path, questions, args.asks, opts, floors=not args.no_floors, profile=args.profile
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    result: dict[str, Any] = {"atoms": args.atoms, "setup": setup, "runs": runs}
    result["load_avg"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\n{args.atoms:,} atoms; setup {setup}")
    print("| mode | open s | first ask s | first ANN-served ask s |")
    print("|---|---:|---:|---:|")
    for mode, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("open_s", "first_ask_s")}
        ann = statistics.median(r["first_ann_ask_s"] for r in rows)
        result[mode] = {**med, "first_ann_ask_s": ann}
        print(f"| {mode} | {med['open_s']:.3f} | {med['first_ask_s']:.3f} | {ann:.3f} |")
    goal_s = GOAL_S if args.atoms <= 100_000 else GOAL_1M_S
    if runs.get("saved"):
        saved_s = result["saved"]["first_ann_ask_s"]
        goal = "met" if saved_s <= goal_s else "missed"
        if runs.get("rebuild"):
            ratio = result["rebuild"]["first_ann_ask_s"] / max(saved_s, 1e-9)
            result["ratio"] = ratio
            print(f"saved graph: first ANN-served ask {ratio:.0f}x sooner")
        print(f"saved graph: first ANN-served ask {saved_s:.3f} s; goal <= {goal_s:.0f} s: {goal}")
    if steady is not None:
        result["steady"] = steady
        print(f"\n{steady['asks']} asks served by {steady['kind']} (graph {steady['graph_file']}):")
        print("| call | p50 ms | p95 ms | CPU ms |")
        print("|---|---:|---:|---:|")
        for name in ("ask", "fts_floor", "numpy_floor"):
            if name in steady:
                lat = steady[name]
                print(
                    f"| {name} | {lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} | {lat['cpu_ms']:.2f} |"
                )
        ask_goal = ASK_GOAL_MS if args.atoms <= 100_000 else ASK_GOAL_1M_MS
        verdict = "met" if steady["ask"]["p95_ms"] <= ask_goal else "missed"
        print(f"ask p95 goal <= {ask_goal:.0f} ms: {verdict}")
    print(f"load average {result['load_avg']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
