"""Engine benchmark: DWBase next to this machine's raw SQLite floor and Chroma, in one run.

Usage::

    python benchmarks/engine.py [--quick] [--json OUT] [--no-chroma] [--seed N]

Measured (library API, SQLite store in a temp dir, default options unless said):

* ``remember`` latency, one atom per call, with ``durability="normal"`` and ``"full"``;
* ``remember_batch`` throughput (``--batch-size`` atoms per call) while loading one world;
* ``ask`` latency (top 10, hybrid ranking) at each size in ``--sizes`` atoms in that world;
* ``replay`` throughput (the whole world, append order).

In the same run, for comparison:

* the **SQLite floor**: a plain ``sqlite3`` table shaped like DWBase's atoms table (WAL), one
  ``INSERT`` + ``COMMIT`` per row with ``synchronous=NORMAL`` and ``FULL``, ``executemany``
  batches, an FTS5 ``bm25`` top-10 query over the same texts, and a full-table read;
* an exact numpy cosine top-10 over the same vectors (the vector-search floor);
* **Chroma** (``chromadb``, PersistentClient in a temp dir): add one item per call, add in
  batches and query top 10, with DWBase's own (hashing) embeddings precomputed so Chroma never
  loads a model. Chroma's figures therefore exclude embedding; DWBase's include it (the
  embedding cost alone is reported too). ``pip install 'dwbase[bench]'`` installs Chroma.

Payloads are sentences drawn from a seeded vocabulary with a Zipf-like word distribution
(plus stopwords and numbers with units); questions use words of the same vocabulary.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import dwbase
from dwbase.embed import HashingEmbedder

GOALS = {
    "remember_p95_ms": 1.0,
    "batch_atoms_per_s": 30_000.0,
    "ask_p95_ms_at_100k": 10.0,
}

# ----------------------------------------------------------------------------- the corpus

_DOMAIN = """
checkout latency payment deploy rollback cache miss disk queue retry timeout worker node shard
replica index vacuum lock spike error budget alert customer invoice refund order cart search
login session token password email notification webhook billing plan subscription trial
upgrade downgrade account tenant region cluster pod container image build pipeline release
canary feature flag experiment metric dashboard incident postmortem outage degraded recovery
failover backup restore snapshot migration schema table column query planner memory leak cpu
throttle bandwidth packet loss dns certificate expiry firewall gateway proxy balancer upstream
downstream service api endpoint request response header payload json parser encoder batch
stream consumer producer topic partition offset lag backlog scheduler cron job task ticket
escalation pager oncall runbook owner team review approval merge branch commit test flaky
coverage lint warning exception traceback stack heap garbage collector thread pool connection
socket handshake retry jitter backoff quota limit burst rate usage cost forecast capacity
storage bucket object blob archive retention policy compliance audit log trace span sampler
profile latency throughput p95 p99 median regression improvement baseline benchmark agent
reflection plan action observation message user assistant tool call answer question memory
summary context prompt model embedding vector similarity ranking relevance recall precision
europe america asia frankfurt virginia tokyo monday tuesday wednesday thursday friday weekend
morning evening night sprint quarter roadmap milestone deadline launch partner vendor contract
support chat call meeting standup note decision risk mitigation fix patch hotfix version
"""

_STOP_WORDS = (
    "the a an of to in on for with after before during at by from and or but is was were "
    "are has had have be been it its this that these those our their we they he she"
)
_STOP = tuple(_STOP_WORDS.split())

_UNITS = ("ms", "s", "%", "MB", "GB", "req/s", "errors", "users", "EUR", "USD")
_STARTS = ("", "", "", "why is ", "what happened to ", "when did ", "how many ", "who owns ")


def _pseudo_words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    out: list[str] = []
    while len(out) < n:
        word = "".join(
            rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))
        )
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


class Corpus:
    """Seeded generator of atom texts and questions over one vocabulary."""

    def __init__(self, seed: int, vocabulary: int = 6000) -> None:
        self.rng = random.Random(seed)
        domain = list(dict.fromkeys(_DOMAIN.split()))
        self.rng.shuffle(domain)
        tail = _pseudo_words(self.rng, max(0, vocabulary - len(domain)), set(domain))
        self.words = domain + tail
        # Zipf-Mandelbrot: a few common words, a long tail of rare ones (names, ids, jargon).
        weights = [1.0 / (rank + 10) for rank in range(len(self.words))]
        self.cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)

    def _draw(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=k)

    def sentence(self) -> str:
        rng = self.rng
        content = self._draw(rng.randint(5, 16))
        out: list[str] = []
        for w in content:
            if rng.random() < 0.35:
                out.append(rng.choice(_STOP))
            out.append(w)
        if rng.random() < 0.4:
            out.insert(rng.randrange(len(out) + 1), f"{rng.randint(1, 5000)} {rng.choice(_UNITS)}")
        return " ".join(out)

    def question(self) -> str:
        words = self._draw(self.rng.randint(2, 5))
        return self.rng.choice(_STARTS) + " ".join(words) + "?"

    def new_atoms(self, n: int, world: str) -> list[dict[str, Any]]:
        rng = self.rng
        kinds = ("observation", "observation", "observation", "reflection", "action", "message")
        return [
            {
                "world": world,
                "worker": f"agent-{rng.randrange(20)}",
                "kind": rng.choice(kinds),
                "importance": round(rng.random(), 3),
                "payload": {"text": self.sentence()},
                "labels": [rng.choice(("ops", "support", "billing", "infra"))],
            }
            for _ in range(n)
        ]


# ----------------------------------------------------------------------------- statistics


def latency(samples_s: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99 and mean of samples given in seconds, reported in milliseconds."""
    arr = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if arr.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "n": int(arr.size),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


def throughput(counts: Sequence[int], seconds: Sequence[float]) -> dict[str, float]:
    """Overall items/s and the median per-call items/s."""
    rates = [c / s for c, s in zip(counts, seconds, strict=True) if s > 0]
    total_s = sum(seconds)
    return {
        "calls": len(counts),
        "items": int(sum(counts)),
        "per_s": float(sum(counts) / total_s) if total_s else float("nan"),
        "p50_call_per_s": float(np.median(rates)) if rates else float("nan"),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


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


# ----------------------------------------------------------------------------- DWBase


def bench_dwbase_remember(
    root: Path, durability: str, n: int, cfg: Config, opts: dict[str, Any] | None = None
) -> dict[str, Any]:
    corpus = Corpus(cfg.seed + 1)
    atoms = corpus.new_atoms(n + cfg.warmup, "bench:single")
    name = f"remember-{durability}" + ("-encrypted" if opts else "")
    with dwbase.open(root / name, durability=durability, **(opts or {})) as db:
        samples: list[float] = []
        for i, a in enumerate(atoms):
            t0 = time.perf_counter()
            db.remember_atom(a)
            dt = time.perf_counter() - t0
            if i >= cfg.warmup:
                samples.append(dt)
    return latency(samples)


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
) -> dict[str, Any]:
    corpus = Corpus(cfg.seed)
    world = "bench:ask"
    counts: list[int] = []
    seconds: list[float] = []
    asks: dict[str, Any] = {}
    replays: dict[str, Any] = {}
    with dwbase.open(root / ("load-encrypted" if opts else "load"), **(opts or {})) as db:
        loaded = 0
        for size in cfg.sizes:
            while loaded < size:
                n = min(cfg.batch_size, size - loaded)
                batch = corpus.new_atoms(n, world)
                texts.extend(a["payload"]["text"] for a in batch)
                dt, _ = timed(lambda b=batch: db.remember_batch(b))
                counts.append(n)
                seconds.append(dt)
                loaded += n
            gc.collect()
            for q in questions[: cfg.warmup]:
                db.ask(world, q)
            # Steady state: past the ANN threshold the HNSW graph builds in the background
            # (exact search meanwhile); time the asks once the world's index is ready.
            waited = wait_for_index(db, world)
            samples = []
            for q in questions[: cfg.queries]:
                dt, _ = timed(lambda q=q: db.ask(world, q))
                samples.append(dt)
            asks[str(size)] = {**latency(samples), "index": waited}
            reps = [timed(lambda: db.replay(world))[0] for _ in range(3)]
            got = len(db.replay(world, limit=10))
            assert got == min(10, size), got
            replays[str(size)] = {
                "atoms": size,
                "median_s": float(np.median(reps)),
                "per_s": float(size / np.median(reps)),
            }
    return {"batch": throughput(counts, seconds), "ask": asks, "replay": replays}


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


def bench_floor_single(root: Path, synchronous: str, n: int, cfg: Config) -> dict[str, Any]:
    texts = [Corpus(cfg.seed + 1).sentence() for _ in range(n + cfg.warmup)]
    rows = _floor_rows(texts, cfg.seed)
    conn = _floor_connect(root / f"floor-single-{synchronous}.sqlite3", synchronous)
    samples: list[float] = []
    for i, row in enumerate(rows):
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(_FLOOR_INSERT, row)
        conn.execute("COMMIT")
        dt = time.perf_counter() - t0
        if i >= cfg.warmup:
            samples.append(dt)
    conn.close()
    return latency(samples)


def bench_floor_load_query(
    root: Path, cfg: Config, texts: list[str], questions: list[str]
) -> dict[str, Any]:
    from dwbase.storage.sqlite_schema import fts_query
    from dwbase.text import query_terms

    conn = _floor_connect(root / "floor-load.sqlite3", "NORMAL")
    rows = _floor_rows(texts, cfg.seed)
    counts: list[int] = []
    seconds: list[float] = []
    fts_counts: list[int] = []
    fts_seconds: list[float] = []
    queries: dict[str, Any] = {}
    reads: dict[str, Any] = {}
    loaded = 0
    for size in cfg.sizes:
        while loaded < size:
            chunk = rows[loaded : min(size, loaded + cfg.batch_size)]
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(_FLOOR_INSERT, chunk)
            conn.execute("COMMIT")
            counts.append(len(chunk))
            seconds.append(time.perf_counter() - t0)
            # FTS kept apart so the plain-insert floor stays a plain insert.
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO fts(rowid, text) VALUES(?, ?)",
                [(loaded + i + 1, r[9]) for i, r in enumerate(chunk)],
            )
            conn.execute("COMMIT")
            fts_counts.append(len(chunk))
            fts_seconds.append(time.perf_counter() - t0)
            loaded += len(chunk)
        sql = "SELECT rowid, bm25(fts) s FROM fts WHERE fts MATCH ? ORDER BY s LIMIT 10"
        matches = [fts_query(query_terms(q)) for q in questions]
        for m in matches[: cfg.warmup]:
            conn.execute(sql, (m,)).fetchall()
        samples = [
            timed(lambda m=m, sql=sql: conn.execute(sql, (m,)).fetchall())[0]
            for m in matches[: cfg.queries]
        ]
        queries[str(size)] = latency(samples)
        reps = [
            timed(lambda: conn.execute("SELECT * FROM atoms ORDER BY seq").fetchall())[0]
            for _ in range(3)
        ]
        reads[str(size)] = {
            "atoms": size,
            "median_s": float(np.median(reps)),
            "per_s": float(size / np.median(reps)),
        }
    conn.close()
    return {
        "batch": throughput(counts, seconds),
        "batch_fts": throughput(fts_counts, fts_seconds),
        "fts_query": queries,
        "read_all": reads,
    }


# ----------------------------------------------------------------------------- vectors


def embed_all(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    emb = HashingEmbedder()
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    t0 = time.perf_counter()
    for i in range(0, len(texts), 1000):
        block = emb.embed(texts[i : i + 1000])
        out[i : i + len(block)] = np.asarray(block, dtype=np.float32)
    dt = time.perf_counter() - t0
    return out, {"atoms": len(texts), "seconds": dt, "per_s": len(texts) / dt if dt else 0.0}


def bench_numpy_floor(vectors: np.ndarray, questions: list[str], cfg: Config) -> dict[str, Any]:
    emb = HashingEmbedder()
    qv = np.asarray(emb.embed(questions[: cfg.queries]), dtype=np.float32)
    out: dict[str, Any] = {}
    for size in cfg.sizes:
        mat = np.ascontiguousarray(vectors[:size])
        samples = []
        for q in qv:
            t0 = time.perf_counter()
            scores = mat @ q
            k = min(10, size)
            top = np.argpartition(-scores, k - 1)[:k] if k < size else np.arange(size)
            top[np.argsort(-scores[top])]
            samples.append(time.perf_counter() - t0)
        out[str(size)] = latency(samples)
    return out


# ----------------------------------------------------------------------------- Chroma


def chroma_unavailable() -> str | None:
    try:
        import chromadb  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def bench_chroma(
    root: Path, cfg: Config, texts: list[str], vectors: np.ndarray, questions: list[str]
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    meta = {"hnsw:space": "cosine"}
    emb = HashingEmbedder()

    # One item per add, on its own collection (like one remember per call).
    single_texts = [Corpus(cfg.seed + 1).sentence() for _ in range(cfg.single_n + cfg.warmup)]
    single_vecs = np.asarray(emb.embed(single_texts), dtype=np.float32)
    col = client.create_collection("single", embedding_function=None, metadata=meta)
    samples: list[float] = []
    for i, t in enumerate(single_texts):
        t0 = time.perf_counter()
        col.add(
            ids=[f"s{i}"],
            embeddings=single_vecs[i : i + 1],
            documents=[t],
            metadatas=[{"kind": "observation", "worker": "agent-1"}],
        )
        dt = time.perf_counter() - t0
        if i >= cfg.warmup:
            samples.append(dt)
    single = latency(samples)

    col = client.create_collection("ask", embedding_function=None, metadata=meta)
    qv = np.asarray(emb.embed(questions[: max(cfg.queries, cfg.warmup)]), dtype=np.float32)
    counts: list[int] = []
    seconds: list[float] = []
    queries: dict[str, Any] = {}
    loaded = 0
    for size in cfg.sizes:
        while loaded < size:
            end = min(size, loaded + cfg.batch_size)
            t0 = time.perf_counter()
            col.add(
                ids=[f"a{i}" for i in range(loaded, end)],
                embeddings=vectors[loaded:end],
                documents=texts[loaded:end],
                metadatas=[{"kind": "observation", "worker": "agent-1"}] * (end - loaded),
            )
            counts.append(end - loaded)
            seconds.append(time.perf_counter() - t0)
            loaded = end
        for q in qv[: cfg.warmup]:
            col.query(query_embeddings=q[None, :], n_results=10)
        qs = []
        for q in qv[: cfg.queries]:
            t0 = time.perf_counter()
            col.query(query_embeddings=q[None, :], n_results=10)
            qs.append(time.perf_counter() - t0)
        queries[str(size)] = latency(qs)
    import chromadb as _c

    return {
        "version": _c.__version__,
        "single": single,
        "batch": throughput(counts, seconds),
        "query": queries,
    }


# ----------------------------------------------------------------------------- report


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b or a != a or b != b else f"{a / b:,.1f}x"


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


def report(results: dict[str, Any], cfg: Config) -> None:
    m = results["machine"]
    print("# DWBase engine benchmark")
    print(
        f"machine: {m['platform']} | {m['cpus']} CPUs | python {m['python']} | "
        f"sqlite {m['sqlite']} | numpy {m['numpy']} | dwbase {m['dwbase']} | "
        f"OPENBLAS_NUM_THREADS={m['blas_threads']} | load avg at start {m['load_avg']}"
    )
    print(f"command: {results['command']}")
    print(
        f"seed {cfg.seed}; sizes {', '.join(map(str, cfg.sizes))}; batch {cfg.batch_size}; "
        f"single n {cfg.single_n} (full n {cfg.full_n}); queries {cfg.queries}; "
        f"warm-up {cfg.warmup}; times from time.perf_counter"
    )

    r = results
    print("\n## remember (one atom per call, one transaction each)")
    print(f"{'store':44} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    rows = [
        ("dwbase remember, durability=normal", r["dwbase"]["remember_normal"]),
        ("sqlite floor insert+commit, sync=NORMAL", r["floor"]["single_normal"]),
        ("dwbase remember, durability=full", r["dwbase"]["remember_full"]),
        ("sqlite floor insert+commit, sync=FULL", r["floor"]["single_full"]),
    ]
    if "chroma" in r:
        rows.append(("chroma add, 1 item (embedding precomputed)", r["chroma"]["single"]))
    for name, s in rows:
        print(
            f"{name:44} {s['n']:>6} {_f(s['p50_ms'], 3):>9} {_f(s['p95_ms'], 3):>9} "
            f"{_f(s['p99_ms'], 3):>9}"
        )

    print(f"\n## remember_batch ({cfg.batch_size} atoms per call)")
    print(f"{'store':52} {'calls':>6} {'atoms':>8} {'atoms/s':>10} {'p50 call':>10}")
    brows = [
        ("dwbase remember_batch (embedding included)", r["dwbase"]["batch"]),
        ("sqlite floor executemany (atoms table only)", r["floor"]["batch"]),
        ("sqlite floor executemany into FTS5 (text index)", r["floor"]["batch_fts"]),
    ]
    if "chroma" in r:
        brows.append(("chroma add (embedding precomputed)", r["chroma"]["batch"]))
    for name, b in brows:
        print(
            f"{name:52} {b['calls']:>6} {b['items']:>8} {_f(b['per_s'], 0):>10} "
            f"{_f(b['p50_call_per_s'], 0):>10}"
        )
    e = r["embedding"]
    print(
        f"{'hashing embedder alone (part of dwbase above)':52} {'':>6} {e['atoms']:>8} "
        f"{_f(e['per_s'], 0):>10}"
    )

    print("\n## ask (top 10, one world)")
    print(f"{'atoms':>8}  {'store':44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    for size in cfg.sizes:
        key = str(size)
        arows = [
            (
                f"dwbase ask (hybrid, {r['dwbase']['ask'][key]['index']['kind']} vectors)",
                r["dwbase"]["ask"][key],
            ),
            ("sqlite floor FTS5 bm25 top-10", r["floor"]["fts_query"][key]),
            ("numpy exact cosine top-10", r["numpy"][key]),
        ]
        if "chroma" in r:
            arows.append(("chroma query top-10 (HNSW)", r["chroma"]["query"][key]))
        for name, s in arows:
            print(
                f"{size:>8}  {name:44} {s['n']:>5} {_f(s['p50_ms'], 3):>9} "
                f"{_f(s['p95_ms'], 3):>9} {_f(s['p99_ms'], 3):>9}"
            )

    print("\n## replay (whole world, append order)")
    print(f"{'atoms':>8}  {'store':44} {'median s':>9} {'atoms/s':>10}")
    for size in cfg.sizes:
        key = str(size)
        for name, s in (
            ("dwbase replay", r["dwbase"]["replay"][key]),
            ("sqlite floor SELECT * ORDER BY seq", r["floor"]["read_all"][key]),
        ):
            print(f"{size:>8}  {name:44} {_f(s['median_s'], 3):>9} {_f(s['per_s'], 0):>10}")

    print("\n## chroma")
    if "chroma" in r:
        print(f"chroma {r['chroma']['version']} measured (PersistentClient, cosine HNSW)")
    else:
        print(f"chroma NOT MEASURED: {r['chroma_skipped']}")

    print("\n## ratios vs the SQLite floor (lower is better for latency, higher for rates)")
    d, fl = r["dwbase"], r["floor"]
    big = str(cfg.sizes[-1])
    lines = [
        ("remember p50, normal", d["remember_normal"]["p50_ms"], fl["single_normal"]["p50_ms"]),
        ("remember p95, normal", d["remember_normal"]["p95_ms"], fl["single_normal"]["p95_ms"]),
        ("remember p50, full", d["remember_full"]["p50_ms"], fl["single_full"]["p50_ms"]),
        ("remember p95, full", d["remember_full"]["p95_ms"], fl["single_full"]["p95_ms"]),
        (
            f"ask p95 at {big} vs FTS5 top-10",
            d["ask"][big]["p95_ms"],
            fl["fts_query"][big]["p95_ms"],
        ),
    ]
    for name, a, b in lines:
        line = f"{name:36} dwbase {_ratio(a, b):>8}"
        print(line)
    print(
        f"{'batch atoms/s (floor / dwbase)':36} dwbase "
        f"{_ratio(fl['batch']['per_s'], d['batch']['per_s']):>8} slower"
    )
    print(
        f"{'replay atoms/s at ' + big + ' (floor / dwbase)':36} dwbase "
        f"{_ratio(fl['read_all'][big]['per_s'], d['replay'][big]['per_s']):>8} slower"
    )
    if "chroma" in r:
        c = r["chroma"]
        print(
            f"{'chroma add p50 vs floor NORMAL':36} chroma "
            f"{_ratio(c['single']['p50_ms'], fl['single_normal']['p50_ms']):>8}"
        )
        print(
            f"{'chroma batch atoms/s (floor / chroma)':36} chroma "
            f"{_ratio(fl['batch']['per_s'], c['batch']['per_s']):>8} slower"
        )
        print(
            f"{'chroma query p95 at ' + big + ' vs FTS5':36} chroma "
            f"{_ratio(c['query'][big]['p95_ms'], fl['fts_query'][big]['p95_ms']):>8}"
        )

    print("\n## goals")
    goals = r["goals"]
    for g in goals:
        print(f"{g['goal']:36} measured {g['measured']:>12}  {g['verdict']}")


def judge(results: dict[str, Any], cfg: Config) -> list[dict[str, str]]:
    d = results["dwbase"]
    out = []
    p95 = d["remember_normal"]["p95_ms"]
    goal = GOALS["remember_p95_ms"]
    out.append(
        {
            "goal": f"remember p95 <= {goal:g} ms (normal)",
            "measured": f"{p95:.3f} ms",
            "verdict": "met"
            if p95 <= goal
            else f"MISSED by {p95 - goal:.3f} ms ({p95 / goal:.1f}x)",
        }
    )
    rate = d["batch"]["per_s"]
    goal = GOALS["batch_atoms_per_s"]
    out.append(
        {
            "goal": f"remember_batch >= {goal:,.0f} atoms/s",
            "measured": f"{rate:,.0f}/s",
            "verdict": "met"
            if rate >= goal
            else f"MISSED by {goal - rate:,.0f}/s ({goal / rate:.1f}x)",
        }
    )
    goal = GOALS["ask_p95_ms_at_100k"]
    if "100000" in d["ask"]:
        p95 = d["ask"]["100000"]["p95_ms"]
        verdict = "met" if p95 <= goal else f"MISSED by {p95 - goal:.2f} ms ({p95 / goal:.1f}x)"
        measured = f"{p95:.2f} ms"
    else:
        verdict, measured = "not measured (no 100000 size in this run)", "-"
    out.append(
        {"goal": f"ask p95 <= {goal:g} ms at 100k atoms", "measured": measured, "verdict": verdict}
    )
    return out


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    p.add_argument("--no-chroma", action="store_true", help="skip the Chroma comparison")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--sizes", help="comma-separated world sizes for ask (default 10000,100000)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--single-n", type=int, help="single remembers timed (durability normal)")
    p.add_argument("--full-n", type=int, help="single remembers timed with durability full")
    p.add_argument("--queries", type=int, help="asks timed at each size")
    p.add_argument("--warmup", type=int, help="untimed calls before each timed series")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep the stores")
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
    cfg = Config(
        sizes=sizes,
        batch_size=a.batch_size,
        single_n=a.single_n or (200 if quick else 2000),
        full_n=a.full_n or (50 if quick else 300),
        queries=a.queries or (50 if quick else 300),
        warmup=a.warmup if a.warmup is not None else (5 if quick else 30),
        chroma=not a.no_chroma,
        seed=a.seed,
    )
    return cfg, a


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
    q_corpus = Corpus(cfg.seed + 2)
    questions = [q_corpus.question() for _ in range(cfg.queries + cfg.warmup)]
    questions = questions[cfg.warmup :] + questions[: cfg.warmup]  # warm-up asks differ
    progress = sys.stderr
    if args.encrypt:
        try:
            results["encryption"] = bench_encryption(root, cfg, questions)
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        report_encryption(results, cfg)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return 0
    try:
        print("dwbase: remember (normal, full) ...", file=progress, flush=True)
        dw: dict[str, Any] = {
            "remember_normal": bench_dwbase_remember(root, "normal", cfg.single_n, cfg),
            "remember_full": bench_dwbase_remember(root, "full", cfg.full_n, cfg),
        }
        print("dwbase: remember_batch, ask, replay ...", file=progress, flush=True)
        texts: list[str] = []
        dw.update(bench_dwbase_load_ask_replay(root, cfg, texts, questions))
        results["dwbase"] = dw
        print("sqlite floor ...", file=progress, flush=True)
        results["floor"] = {
            "single_normal": bench_floor_single(root, "NORMAL", cfg.single_n, cfg),
            "single_full": bench_floor_single(root, "FULL", cfg.full_n, cfg),
            **bench_floor_load_query(root, cfg, texts, questions),
        }
        print("embeddings and numpy floor ...", file=progress, flush=True)
        vectors, results["embedding"] = embed_all(texts)
        results["numpy"] = bench_numpy_floor(vectors, questions, cfg)
        if cfg.chroma:
            why = chroma_unavailable()
            if why is None:
                print("chroma ...", file=progress, flush=True)
                try:
                    results["chroma"] = bench_chroma(root, cfg, texts, vectors, questions)
                except Exception as exc:  # report, and still print everything else
                    results["chroma_skipped"] = f"chroma failed: {type(exc).__name__}: {exc}"
            else:
                results["chroma_skipped"] = (
                    f"chromadb cannot be imported ({why}); install it with "
                    "pip install 'dwbase[bench]' (or pip install chromadb)"
                )
        else:
            results["chroma_skipped"] = "skipped by --no-chroma"
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["goals"] = judge(results, cfg)
    report(results, cfg)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
