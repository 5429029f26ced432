"""Engine benchmark: DWBase next to this machine's raw SQLite floor, Chroma and LanceDB, in one run.

Usage::

    python benchmarks/engine.py [--quick] [--corpus short|chat|both] [--sizes 10000,100000]
        [--worlds 1000 --world-size 100] [--charts DIR] [--json OUT] [--no-chroma]
        [--no-lancedb] [--seed N]

Measured (library API, SQLite store in a temp dir, default options unless said), for each
corpus chosen with ``--corpus``:

* ``remember`` latency, one atom per call, with ``durability="normal"`` and ``"full"``;
* ``remember_batch`` throughput (``--batch-size`` atoms per call) while loading one world;
* ``ask`` latency (top 10, hybrid ranking) at each size in ``--sizes`` atoms in that world;
* ``replay`` throughput (the whole world, append order);
* after each load: disk bytes per atom (the data dir's files) and RSS grown per atom
  (/proc/self/status, the benchmark's own copy of the texts subtracted); the time to open the
  store again and to answer a first ask after that open;
* with ``--worlds N``: the many-worlds phase (benchmarks/bench_worlds.py), ask p95 in one
  ``--world-size`` world inside a store of N such worlds against the same world alone.

Every latency row carries the CPU per call (``time.process_time``, all the process's threads)
next to the wall time; every rate the CPU µs per item.

In the same run, for comparison:

* the **SQLite floor**: a plain ``sqlite3`` table shaped like DWBase's atoms table (WAL), one
  ``INSERT`` + ``COMMIT`` per row with ``synchronous=NORMAL`` and ``FULL``, ``executemany``
  batches, an FTS5 ``bm25`` top-10 query over the same texts, and a full-table read;
* an exact numpy cosine top-10 over the same vectors (the vector-search floor);
* **Chroma** (PersistentClient) and **LanceDB** (embedded table, exact scan) in temp dirs
  (benchmarks/bench_peers.py): add one item per call, add in batches, query top 10, given
  DWBase's own (hashing) embeddings precomputed, so neither loads a model. Their figures
  therefore exclude embedding; DWBase's include it (the embedding cost alone is reported
  too). ``pip install 'dwbase[bench]'`` installs both and matplotlib; a peer that is missing
  is reported as NOT MEASURED with the reason.

``--charts DIR`` writes PNG charts (benchmarks/bench_charts.py): ask p50/p95 against atoms,
ingest atoms/s, open time against atoms. Loads show a progress bar on stderr when it is a
terminal. The corpora are described in benchmarks/bench_corpus.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import dwbase
from dwbase.embed import HashingEmbedder

# Loaded by path (the harness tests) this directory is not on sys.path: the helpers live here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_concurrency import bench_concurrency
from bench_corpus import CORPORA, Corpus
from bench_measure import (
    Series,
    footprint,
    held_by_texts,
    latency,
    progress,
    rss_bytes,
    throughput,
    timed,
    timed_cpu,
)
from bench_measure import fmt as _f
from bench_peers import run_peer, unavailable
from bench_report import GOALS, judge, report, write_charts
from bench_worlds import bench_worlds

__all__ = ["GOALS", "Corpus", "latency", "machine", "throughput", "timed", "wait_for_index"]


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...]
    batch_size: int
    single_n: int
    full_n: int
    queries: int
    warmup: int
    chroma: bool
    seed: int
    lancedb: bool = True
    corpora: tuple[str, ...] = ("short",)
    worlds: int = 0
    world_size: int = 100
    progress: bool = True
    concurrency: float = 0.0
    concurrency_askers: int = 4


# ----------------------------------------------------------------------------- DWBase


def bench_dwbase_remember(
    root: Path,
    durability: str,
    n: int,
    cfg: Config,
    opts: dict[str, Any] | None = None,
    style: str = "short",
) -> dict[str, Any]:
    corpus = Corpus(cfg.seed + 1, style=style)
    atoms = corpus.new_atoms(n + cfg.warmup, "bench:single")
    name = f"remember-{style}-{durability}" + ("-encrypted" if opts else "")
    with dwbase.open(root / name, durability=durability, **(opts or {})) as db:
        series = Series()
        for i, a in enumerate(atoms):
            series.time(lambda a=a: db.remember_atom(a), keep=i >= cfg.warmup)
    return series.latency()


def wait_for_index(db: Any, world: str, limit_s: float = 600.0) -> dict[str, Any]:
    """Wait until ``world``'s vector index is ready and not building; say what it is."""
    t0 = time.perf_counter()
    while True:
        st = next((s for s in db.index_status() if s["world"] == world), {})
        settled = st.get("ready") and not st.get("rebuilding") and not st.get("ann_building")
        if settled or time.perf_counter() - t0 > limit_s:
            return {"kind": st.get("kind"), "waited_s": round(time.perf_counter() - t0, 1)}
        time.sleep(0.5)


def bench_dwbase_load_ask_replay(
    root: Path,
    cfg: Config,
    texts: list[str],
    questions: list[str],
    opts: dict[str, Any] | None = None,
    style: str = "short",
) -> dict[str, Any]:
    corpus = Corpus(cfg.seed, style=style)
    world = "bench:ask"
    counts: list[int] = []
    seconds: list[float] = []
    cpu: list[float] = []
    asks: dict[str, Any] = {}
    replays: dict[str, Any] = {}
    feet: dict[str, Any] = {}
    opens: dict[str, Any] = {}
    path = root / (f"load-{style}" + ("-encrypted" if opts else ""))
    rss_before = rss_bytes()
    db = dwbase.open(path, **(opts or {}))
    try:
        loaded = 0
        with progress(f"dwbase load ({style})", cfg.sizes[-1], cfg.progress) as advance:
            for size in cfg.sizes:
                while loaded < size:
                    n = min(cfg.batch_size, size - loaded)
                    batch = corpus.new_atoms(n, world)
                    texts.extend(a["payload"]["text"] for a in batch)
                    wall, c, _ = timed_cpu(lambda b=batch, db=db: db.remember_batch(b))
                    counts.append(n)
                    seconds.append(wall)
                    cpu.append(c)
                    loaded += n
                    advance(n)
                gc.collect()
                feet[str(size)] = footprint(size, path, rss_before, held_by_texts(texts))
                for q in questions[: cfg.warmup]:
                    db.ask(world, q)
                # Steady state: past the ANN threshold the HNSW graph builds in the background
                # (exact search meanwhile); time the asks once the world's index is ready.
                waited = wait_for_index(db, world)
                series = Series()
                for q in questions[: cfg.queries]:
                    series.time(lambda q=q, db=db: db.ask(world, q))
                asks[str(size)] = {**series.latency(), "index": waited}
                reps = [timed_cpu(lambda db=db: db.replay(world)) for _ in range(3)]
                got = len(db.replay(world, limit=10))
                assert got == min(10, size), got
                median = float(np.median([r[0] for r in reps]))
                replays[str(size)] = {
                    "atoms": size,
                    "median_s": median,
                    "per_s": float(size / median),
                    "cpu_s": float(np.median([r[1] for r in reps])),
                }
                # Open again: the open itself, then the first ask answered after it.
                db.close()
                t0 = time.perf_counter()
                db = dwbase.open(path, **(opts or {}))
                opened = time.perf_counter() - t0
                db.ask(world, questions[0])
                opens[str(size)] = {
                    "open_s": opened,
                    "first_query_s": time.perf_counter() - t0,
                }
    finally:
        db.close()
    return {
        "batch": throughput(counts, seconds, cpu),
        "ask": asks,
        "replay": replays,
        "footprint": feet,
        "open": opens,
    }


# ----------------------------------------------------------------------------- encryption


def bench_encryption(root: Path, cfg: Config, questions: list[str]) -> dict[str, Any]:
    """Remember, batch and ask with encryption at rest off and on, interleaved call by call
    (two stores open side by side), so that both see the same machine at the same moment."""
    from dwbase.security.keys import EnvKeyProvider

    provider = EnvKeyProvider({"DWBASE_KEY_BENCH": "5a" * 32})
    labels = ("off", "on")
    out: dict[str, Any] = {k: {"ask": {}} for k in labels}

    def open_pair(name: str, durability: str = "normal") -> dict[str, Any]:
        return {
            "off": dwbase.open(root / f"{name}-off", durability=durability),
            "on": dwbase.open(
                root / f"{name}-on",
                durability=durability,
                encryption_key="bench",
                key_provider=provider,
            ),
        }

    def pairs(i: int) -> tuple[str, str]:
        return labels if i % 2 == 0 else labels[::-1]  # alternate who goes first

    print("encryption off/on: remember ...", file=sys.stderr, flush=True)
    single = Corpus(cfg.seed + 1).new_atoms(cfg.single_n + cfg.warmup, "bench:single")
    dbs = open_pair("remember")
    samples: dict[str, list[float]] = {k: [] for k in labels}
    try:
        for i, a in enumerate(single):
            for k in pairs(i):
                dt, _ = timed(lambda k=k, a=dict(a): dbs[k].remember_atom(a))
                if i >= cfg.warmup:
                    samples[k].append(dt)
    finally:
        for db in dbs.values():
            db.close()
    for k in labels:
        out[k]["remember"] = latency(samples[k])

    print("encryption off/on: remember_batch, ask ...", file=sys.stderr, flush=True)
    corpus = Corpus(cfg.seed)
    world = "bench:ask"
    counts: list[int] = []
    seconds: dict[str, list[float]] = {k: [] for k in labels}
    dbs = open_pair("load")
    try:
        loaded = 0
        for size in cfg.sizes:
            while loaded < size:
                batch = corpus.new_atoms(min(cfg.batch_size, size - loaded), world)
                for k in pairs(len(counts)):
                    copy = [dict(a) for a in batch]
                    dt, _ = timed(lambda k=k, b=copy: dbs[k].remember_batch(b))
                    seconds[k].append(dt)
                counts.append(len(batch))
                loaded += len(batch)
            gc.collect()
            for k in labels:
                for q in questions[: cfg.warmup]:
                    dbs[k].ask(world, q)
                wait_for_index(dbs[k], world)
            asks: dict[str, list[float]] = {k: [] for k in labels}
            for i, q in enumerate(questions[: cfg.queries]):
                for k in pairs(i):
                    dt, _ = timed(lambda k=k, q=q: dbs[k].ask(world, q))
                    asks[k].append(dt)
            for k in labels:
                out[k]["ask"][str(size)] = latency(asks[k])
    finally:
        for db in dbs.values():
            db.close()
    for k in labels:
        out[k]["batch"] = throughput(counts, seconds[k])
    return out


def report_encryption(results: dict[str, Any], cfg: Config) -> None:
    enc = results["encryption"]
    off, on = enc["off"], enc["on"]
    rows = [
        ("remember p95 (ms)", off["remember"]["p95_ms"], on["remember"]["p95_ms"]),
        ("remember_batch (atoms/s)", off["batch"]["per_s"], on["batch"]["per_s"]),
    ]
    for size in cfg.sizes:
        k = str(size)
        rows.append((f"ask p95 at {size} (ms)", off["ask"][k]["p95_ms"], on["ask"][k]["p95_ms"]))
    print(results["command"])
    print(f"{'':28} {'off':>12} {'on':>12} {'on/off':>8}")
    for name, a, b in rows:
        print(f"{name:28} {_f(a):>12} {_f(b):>12} {(b / a if a else float('nan')):>7.2f}x")


# ----------------------------------------------------------------------------- SQLite floor

_FLOOR_SCHEMA = """
CREATE TABLE atoms(
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, world TEXT NOT NULL, worker TEXT NOT NULL,
  kind TEXT NOT NULL, ts_us INTEGER NOT NULL, rec_us INTEGER NOT NULL, importance REAL NOT NULL,
  payload_json TEXT NOT NULL, vector TEXT, flags TEXT NOT NULL, labels TEXT NOT NULL,
  links TEXT NOT NULL, text TEXT NOT NULL, quarantine TEXT, checksum BLOB NOT NULL,
  chain BLOB NOT NULL
);
CREATE INDEX atoms_world_seq ON atoms(world, seq);
CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='porter unicode61 remove_diacritics 2');
"""
_FLOOR_INSERT = "INSERT INTO atoms VALUES (NULL,?,?,?,?,?,?,?,?,NULL,'[]',?,'[]',?,NULL,?,?)"


def _floor_rows(texts: Sequence[str], seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = int(time.time() * 1_000_000)
    return [
        (
            str(uuid.uuid4()),
            "bench:ask",
            f"agent-{rng.randrange(20)}",
            "observation",
            now,
            now,
            rng.random(),
            json.dumps({"text": t}),
            '["ops"]',
            t,
            os.urandom(32),
            os.urandom(32),
        )
        for t in texts
    ]


def _floor_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(_FLOOR_SCHEMA)
    return conn


def bench_floor_single(
    root: Path, synchronous: str, n: int, cfg: Config, style: str = "short"
) -> dict[str, Any]:
    corpus = Corpus(cfg.seed + 1, style=style)
    texts = [corpus.sentence() for _ in range(n + cfg.warmup)]
    rows = _floor_rows(texts, cfg.seed)
    conn = _floor_connect(root / f"floor-single-{style}-{synchronous}.sqlite3", synchronous)

    def insert(row: tuple[Any, ...]) -> None:
        conn.execute("BEGIN")
        conn.execute(_FLOOR_INSERT, row)
        conn.execute("COMMIT")

    series = Series()
    for i, row in enumerate(rows):
        series.time(lambda row=row: insert(row), keep=i >= cfg.warmup)
    conn.close()
    return series.latency()


def bench_floor_load_query(
    root: Path, cfg: Config, texts: list[str], questions: list[str], style: str = "short"
) -> dict[str, Any]:
    from dwbase.storage.sqlite_schema import fts_query
    from dwbase.text import query_terms

    path = root / f"floor-load-{style}.sqlite3"
    conn = _floor_connect(path, "NORMAL")
    rows = _floor_rows(texts, cfg.seed)
    counts: list[int] = []
    plain = Series()
    fts = Series()
    queries: dict[str, Any] = {}
    reads: dict[str, Any] = {}
    feet: dict[str, Any] = {}

    def insert(chunk: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN")
        conn.executemany(_FLOOR_INSERT, chunk)
        conn.execute("COMMIT")

    def insert_fts(chunk: list[tuple[Any, ...]], start: int) -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO fts(rowid, text) VALUES(?, ?)",
            [(start + i + 1, r[9]) for i, r in enumerate(chunk)],
        )
        conn.execute("COMMIT")

    loaded = 0
    with progress(f"sqlite floor load ({style})", cfg.sizes[-1], cfg.progress) as advance:
        for size in cfg.sizes:
            while loaded < size:
                chunk = rows[loaded : min(size, loaded + cfg.batch_size)]
                plain.time(lambda c=chunk: insert(c))
                # FTS kept apart so the plain-insert floor stays a plain insert.
                fts.time(lambda c=chunk, s=loaded: insert_fts(c, s))
                counts.append(len(chunk))
                loaded += len(chunk)
                advance(len(chunk))
            disk = sum(p.stat().st_size for p in root.glob(path.name + "*"))
            feet[str(size)] = {"atoms": size, "disk_bytes": disk, "disk_per_atom": disk / size}
            sql = "SELECT rowid, bm25(fts) s FROM fts WHERE fts MATCH ? ORDER BY s LIMIT 10"
            matches = [fts_query(query_terms(q)) for q in questions]
            for m in matches[: cfg.warmup]:
                conn.execute(sql, (m,)).fetchall()
            series = Series()
            for m in matches[: cfg.queries]:
                series.time(lambda m=m, sql=sql: conn.execute(sql, (m,)).fetchall())
            queries[str(size)] = series.latency()
            reps = [
                timed_cpu(lambda: conn.execute("SELECT * FROM atoms ORDER BY seq").fetchall())
                for _ in range(3)
            ]
            median = float(np.median([r[0] for r in reps]))
            reads[str(size)] = {
                "atoms": size,
                "median_s": median,
                "per_s": float(size / median),
                "cpu_s": float(np.median([r[1] for r in reps])),
            }
    conn.close()
    return {
        "batch": throughput(counts, plain.wall, plain.cpu),
        "batch_fts": throughput(counts, fts.wall, fts.cpu),
        "fts_query": queries,
        "read_all": reads,
        "footprint": feet,
    }


# ----------------------------------------------------------------------------- vectors


def embed_all(texts: Sequence[str], show: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    emb = HashingEmbedder()
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    c0, t0 = time.process_time(), time.perf_counter()
    with progress("embedding (for the floor and peers)", len(texts), show) as advance:
        for i in range(0, len(texts), 1000):
            block = emb.embed(texts[i : i + 1000])
            out[i : i + len(block)] = np.asarray(block, dtype=np.float32)
            advance(len(block))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = max(1, len(texts))
    return out, {
        "atoms": len(texts),
        "seconds": dt,
        "per_s": len(texts) / dt if dt else 0.0,
        "cpu_us_per_item": cpu / n * 1e6,
    }


def bench_numpy_floor(vectors: np.ndarray, questions: list[str], cfg: Config) -> dict[str, Any]:
    emb = HashingEmbedder()
    qv = np.asarray(emb.embed(questions[: cfg.queries]), dtype=np.float32)
    out: dict[str, Any] = {}
    for size in cfg.sizes:
        mat = np.ascontiguousarray(vectors[:size])
        k = min(10, size)

        def top10(q: np.ndarray, mat: np.ndarray = mat, size: int = size, k: int = k) -> Any:
            scores = mat @ q
            top = np.argpartition(-scores, k - 1)[:k] if k < size else np.arange(size)
            return top[np.argsort(-scores[top])]

        series = Series()
        for q in qv:
            series.time(lambda q=q: top10(q))
        out[str(size)] = series.latency()
    return out


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "numpy": np.__version__,
        "dwbase": dwbase.__version__,
        # numpy's BLAS threads matter a lot on a small shared machine (see docs/performance.md)
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    p.add_argument("--no-chroma", action="store_true", help="skip the Chroma comparison")
    p.add_argument("--no-lancedb", action="store_true", help="skip the LanceDB comparison")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument(
        "--sizes", help="comma-separated world sizes for ask, up to 1000000 (default 10000,100000)"
    )
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--single-n", type=int, help="single remembers timed (durability normal)")
    p.add_argument("--full-n", type=int, help="single remembers timed with durability full")
    p.add_argument("--queries", type=int, help="asks timed at each size")
    p.add_argument("--warmup", type=int, help="untimed calls before each timed series")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep the stores")
    p.add_argument(
        "--corpus",
        choices=(*CORPORA, "both"),
        default="short",
        help="payloads: short (5-16 words), chat (10-30 Zipf words, 3-8 word questions), both",
    )
    p.add_argument(
        "--worlds",
        type=int,
        default=0,
        help="many-worlds phase: this many worlds in one store (0, the default: skipped)",
    )
    p.add_argument("--world-size", type=int, default=100, help="atoms per world in --worlds")
    p.add_argument(
        "--concurrency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="concurrency phase: a world of the largest size, askers alone, then with a writer "
        "of single remembers and one of batches of 100, SECONDS each (0, the default: skipped)",
    )
    p.add_argument("--askers", type=int, default=4, help="asking threads in --concurrency")
    p.add_argument("--charts", metavar="DIR", help="write PNG charts here (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="only compare encryption at rest off and on (remember p95, batch atoms/s, ask p95)",
    )
    a = p.parse_args(argv)
    quick = a.quick
    sizes = (
        tuple(int(x) for x in a.sizes.split(","))
        if a.sizes
        else ((2000, 10000) if quick else (10000, 100000))
    )
    if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
        p.error("--sizes must be increasing positive numbers")
    if sizes[-1] > 1_000_000:
        p.error("--sizes go up to 1000000")
    if a.worlds < 0 or a.world_size < 1:
        p.error("--worlds must be >= 0 and --world-size >= 1")
    if a.concurrency < 0 or a.askers < 1:
        p.error("--concurrency must be >= 0 seconds and --askers >= 1")
    cfg = Config(
        sizes=sizes,
        batch_size=a.batch_size,
        single_n=a.single_n or (200 if quick else 2000),
        full_n=a.full_n or (50 if quick else 300),
        queries=a.queries or (50 if quick else 300),
        warmup=a.warmup if a.warmup is not None else (5 if quick else 30),
        chroma=not a.no_chroma,
        seed=a.seed,
        lancedb=not a.no_lancedb,
        corpora=CORPORA if a.corpus == "both" else (a.corpus,),
        worlds=a.worlds,
        world_size=a.world_size,
        progress=not a.no_progress,
        concurrency=a.concurrency,
        concurrency_askers=a.askers,
    )
    return cfg, a


def questions_for(cfg: Config, style: str) -> list[str]:
    q_corpus = Corpus(cfg.seed + 2, style=style)
    questions = [q_corpus.question() for _ in range(cfg.queries + cfg.warmup)]
    return questions[cfg.warmup :] + questions[: cfg.warmup]  # warm-up asks differ


def run_corpus(root: Path, cfg: Config, style: str) -> dict[str, Any]:
    """Every measurement of the run for one corpus style: DWBase, floors, peers, worlds."""
    say = sys.stderr
    questions = questions_for(cfg, style)
    out: dict[str, Any] = {"corpus": style}
    print(f"[{style}] dwbase: remember (normal, full) ...", file=say, flush=True)
    dw: dict[str, Any] = {
        "remember_normal": bench_dwbase_remember(root, "normal", cfg.single_n, cfg, style=style),
        "remember_full": bench_dwbase_remember(root, "full", cfg.full_n, cfg, style=style),
    }
    print(f"[{style}] dwbase: remember_batch, ask, replay, open ...", file=say, flush=True)
    texts: list[str] = []
    dw.update(bench_dwbase_load_ask_replay(root, cfg, texts, questions, style=style))
    out["dwbase"] = dw
    print(f"[{style}] sqlite floor ...", file=say, flush=True)
    out["floor"] = {
        "single_normal": bench_floor_single(root, "NORMAL", cfg.single_n, cfg, style),
        "single_full": bench_floor_single(root, "FULL", cfg.full_n, cfg, style),
        **bench_floor_load_query(root, cfg, texts, questions, style),
    }
    print(f"[{style}] embeddings and numpy floor ...", file=say, flush=True)
    vectors, out["embedding"] = embed_all(texts, cfg.progress)
    out["numpy"] = bench_numpy_floor(vectors, questions, cfg)
    emb = HashingEmbedder()
    single_corpus = Corpus(cfg.seed + 1, style=style)
    single_texts = [single_corpus.sentence() for _ in range(cfg.single_n + cfg.warmup + 1)]
    single_vecs = np.asarray(emb.embed(single_texts), dtype=np.float32)
    # Warm-up questions first, then the timed ones (the order the peers take them in).
    ordered = questions[cfg.queries :] + questions[: cfg.queries]
    query_vecs = np.asarray(emb.embed(ordered), dtype=np.float32)
    for peer, wanted in (("chroma", cfg.chroma), ("lancedb", cfg.lancedb)):
        why = unavailable(peer) if wanted else f"skipped by --no-{peer}"
        if why is None:
            print(f"[{style}] {peer} ...", file=say, flush=True)
            try:
                out[peer] = run_peer(
                    peer,
                    root / style,
                    cfg,
                    texts,
                    vectors,
                    single_texts,
                    single_vecs,
                    query_vecs,
                )
            except Exception as exc:  # report, and still print everything else
                out[f"{peer}_skipped"] = f"{peer} failed: {type(exc).__name__}: {exc}"
        else:
            out[f"{peer}_skipped"] = why
    del vectors
    if cfg.worlds:
        print(f"[{style}] many worlds ...", file=say, flush=True)
        out["worlds"] = bench_worlds(root, cfg, style, questions)
    if cfg.concurrency:
        out["concurrency"] = bench_concurrency(root, cfg, style, questions, wait_for_index)
    out["goals"] = judge(out, cfg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    shown = list(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/engine.py", *shown]),
        "config": cfg.__dict__,
    }
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dwbase-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.encrypt:
        try:
            results["encryption"] = bench_encryption(root, cfg, questions_for(cfg, "short"))
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        report_encryption(results, cfg)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return 0
    corpora: dict[str, Any] = {}
    try:
        for style in cfg.corpora:
            corpora[style] = run_corpus(root, cfg, style)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    # The first corpus's figures stay at the top level (the JSON's shape before --corpus).
    results.update({k: v for k, v in corpora[cfg.corpora[0]].items() if k != "corpus"})
    results["corpus"] = cfg.corpora[0]
    results["corpora"] = corpora
    report(results, cfg)
    if args.charts:
        results["charts"] = write_charts(Path(args.charts), results, cfg)
        for line in results["charts"]:
            print(f"chart: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
