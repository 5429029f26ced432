"""Vector-index benchmark: which HNSW library backs DWBase's ANN index.

Usage::

    python benchmarks/vectors.py [--n 100000] [--dim 384] [--queries 500] [--json OUT]

For each library installed (exact numpy search, hnswlib, usearch, faiss-cpu) it measures, on
the same clustered unit vectors (deterministic seed): insert rate (vectors/s, batch insert
with the library's default threads), single-query latency p50/p95 (one query at a time, as
``ask`` issues them) and recall@10 against exact search. HNSW settings are the same for all:
M=16, ef_construction=128, ef_search=64, cosine (inner product on unit vectors).
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path; the other benchmark modules in it must
# not shadow standard-library or installed modules of the same name (e.g. ``http``).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = 64
K = 10


def dataset(n: int, dim: int, queries: int, spread: float = 0.6, seed: int = 7) -> tuple[Any, Any]:
    """Unit vectors drawn around 1000 random centres (closer to real embeddings than noise).

    ``spread`` is the noise around each centre relative to it: larger is harder for HNSW.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    pick = rng.integers(0, len(centres), n + queries)
    data = centres[pick] + spread * rng.standard_normal((n + queries, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data[:n], data[n:]


def exact_top(base: Any, queries: Any, k: int) -> Any:
    out = np.empty((len(queries), k), dtype=np.int64)
    for i in range(0, len(queries), 256):
        s = queries[i : i + 256] @ base.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        out[i : i + 256] = np.take_along_axis(part, order, axis=1)
    return out


def measure(
    name: str,
    build: Callable[[Any], Any],
    search: Callable[[Any, Any], Any],
    base: Any,
    queries: Any,
    truth: Any,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    index = build(base)
    build_s = time.perf_counter() - t0
    lat: list[float] = []
    hits = 0
    for qi, q in enumerate(queries):
        t = time.perf_counter()
        ids = search(index, q)
        lat.append(time.perf_counter() - t)
        hits += len(set(int(x) for x in ids[:K]) & set(int(x) for x in truth[qi]))
    lat.sort()
    return {
        "library": name,
        "insert_per_s": round(len(base) / build_s) if name != "exact (numpy)" else None,
        "build_s": round(build_s, 2),
        "query_p50_ms": round(1000 * lat[len(lat) // 2], 3),
        "query_p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 3),
        "recall@10": round(hits / (K * len(queries)), 4),
    }


def run_exact(base: Any, queries: Any, truth: Any) -> dict[str, Any]:
    def search(mat: Any, q: Any) -> Any:
        s = mat @ q
        part = np.argpartition(-s, K)[:K]
        return part[np.argsort(-s[part])]

    return measure("exact (numpy)", lambda b: np.ascontiguousarray(b), search, base, queries, truth)


def run_hnswlib(base: Any, queries: Any, truth: Any) -> dict[str, Any] | None:
    try:
        import hnswlib
    except ImportError:
        return None

    def build(b: Any) -> Any:
        idx = hnswlib.Index(space="ip", dim=b.shape[1])
        idx.init_index(max_elements=len(b), M=M, ef_construction=EF_CONSTRUCTION)
        idx.add_items(b, np.arange(len(b)))
        idx.set_ef(EF_SEARCH)
        return idx

    def search(idx: Any, q: Any) -> Any:
        labels, _ = idx.knn_query(q, k=K)
        return labels[0]

    return measure(
        "hnswlib " + getattr(hnswlib, "__version__", ""), build, search, *(base, queries, truth)
    )


def run_usearch(base: Any, queries: Any, truth: Any) -> dict[str, Any] | None:
    try:
        import usearch
        from usearch.index import Index
    except ImportError:
        return None

    def build(b: Any) -> Any:
        idx = Index(
            ndim=b.shape[1],
            metric="ip",
            dtype="f32",
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=EF_SEARCH,
        )
        idx.add(np.arange(len(b)), b)
        return idx

    def search(idx: Any, q: Any) -> Any:
        return idx.search(q, K).keys

    return measure("usearch " + usearch.__version__, build, search, base, queries, truth)


def run_faiss(base: Any, queries: Any, truth: Any) -> dict[str, Any] | None:
    try:
        import faiss
    except ImportError:
        return None

    def build(b: Any) -> Any:
        idx = faiss.IndexHNSWFlat(b.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = EF_CONSTRUCTION
        idx.add(b)
        idx.hnsw.efSearch = EF_SEARCH
        return idx

    def search(idx: Any, q: Any) -> Any:
        _, labels = idx.search(q.reshape(1, -1), K)
        return labels[0]

    return measure("faiss-cpu " + faiss.__version__, build, search, base, queries, truth)


def engine_ask(n: int, asks: int = 300) -> list[dict[str, Any]]:
    """``ask`` latency through the library at ``n`` atoms in one world, exact vs HNSW."""
    import tempfile

    import dwbase
    from dwbase.embed import HashingEmbedder

    rng = np.random.default_rng(11)
    vocab = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choice(vocab, 12)) for _ in range(n)]
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        emb = HashingEmbedder()
        db = dwbase.open(tmp, embedder=emb)
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            db.remember_batch(
                [
                    {"world": "big", "worker": "w", "payload": {"text": t}}
                    for t in texts[i : i + 5000]
                ]
            )
        load_s = time.perf_counter() - t0
        db.close()
        for threshold in (None, 20_000):
            db = dwbase.open(tmp, embedder=emb, ann_threshold=threshold)
            t0 = time.perf_counter()
            db.ask("big", texts[0])  # loads the index (and starts the HNSW build)
            while db.index_status("big")[0]["ann_building"]:
                time.sleep(0.2)
            ready_s = time.perf_counter() - t0
            kind = db.index_status("big")[0]["kind"]
            lat = []
            for q in rng.choice(len(texts), asks):
                question = " ".join(texts[int(q)].split()[:5])
                t = time.perf_counter()
                db.ask("big", question, limit=10)
                lat.append(time.perf_counter() - t)
            lat.sort()
            db.close()
            out.append(
                {
                    "index": kind,
                    "atoms": n,
                    "load_s": round(load_s, 1),
                    "index_ready_s": round(ready_s, 1),
                    "ask_p50_ms": round(1000 * lat[len(lat) // 2], 2),
                    "ask_p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 2),
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare HNSW libraries for DWBase's ANN index.")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--spread", type=float, default=0.6, help="cluster noise (harder: 1.5)")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument(
        "--engine",
        type=int,
        default=0,
        metavar="N",
        help="also measure dwbase ask p50/p95 at N atoms in one world (exact vs HNSW)",
    )
    args = parser.parse_args(argv)
    base, queries = dataset(args.n, args.dim, args.queries, args.spread)
    truth = exact_top(base, queries, K)
    print(
        f"{args.n} x {args.dim} unit vectors (spread {args.spread}), {args.queries} queries, "
        f"k={K}, "
        f"M={M} ef_construction={EF_CONSTRUCTION} ef_search={EF_SEARCH}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus"
    )
    print(
        f"{'library':<22}{'insert/s':>10}{'build s':>9}{'p50 ms':>9}{'p95 ms':>9}{'recall@10':>11}"
    )
    results = []
    for runner in (run_exact, run_hnswlib, run_usearch, run_faiss):
        r = runner(base, queries, truth)
        if r is None:
            continue
        results.append(r)
        print(
            f"{r['library']:<22}{r['insert_per_s'] or '-':>10}{r['build_s']:>9}"
            f"{r['query_p50_ms']:>9}{r['query_p95_ms']:>9}{r['recall@10']:>11}",
            flush=True,
        )
    engine: list[dict[str, Any]] = []
    if args.engine:
        print(f"\ndwbase ask, {args.engine} atoms in one world, hashing embedder (256 dims)")
        print(f"{'index':<8}{'ready s':>9}{'p50 ms':>9}{'p95 ms':>9}")
        for r in engine_ask(args.engine):
            engine.append(r)
            print(f"{r['index']:<8}{r['index_ready_s']:>9}{r['ask_p50_ms']:>9}{r['ask_p95_ms']:>9}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            doc = {"n": args.n, "dim": args.dim, "results": results, "engine": engine}
            json.dump(doc, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
