"""Peer stores for the engine benchmark: Chroma and LanceDB, given the same precomputed vectors.

Both peers get DWBase's own hashing embeddings, computed once before they run, so neither
loads a model: **their figures exclude embedding, DWBase's include it** (the embedder's rate is
reported on its own). Each peer:

* adds one item per call (``single``, like one ``remember`` per call);
* adds in batches of ``batch_size`` while loading one collection/table up to each size
  (``batch``), then queries top 10 (``query``), reports its data dir's bytes per item
  (``footprint``) and the time to open it again and answer a first query (``open``).

A peer that cannot be imported is reported as NOT MEASURED with the reason; so is one that
fails while running (the rest of the run goes on).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench_measure import Series, disk_bytes, progress, throughput, timed_cpu

PEERS = ("chroma", "lancedb")
_IMPORT = {"chroma": "chromadb", "lancedb": "lancedb"}


def unavailable(peer: str) -> str | None:
    """Why ``peer`` cannot run here, or None when it can."""
    try:
        __import__(_IMPORT[peer])
        if peer == "lancedb":
            __import__("pyarrow")
    except Exception as exc:  # ImportError, or a broken install
        return (
            f"{_IMPORT[peer]} cannot be imported ({type(exc).__name__}: {exc}); install it "
            f"with pip install 'dwbase[bench]' (or pip install {_IMPORT[peer]})"
        )
    return None


def run_peer(
    peer: str,
    root: Path,
    cfg: Any,
    texts: Sequence[str],
    vectors: np.ndarray,
    single_texts: Sequence[str],
    single_vecs: np.ndarray,
    query_vecs: np.ndarray,
) -> dict[str, Any]:
    """Measure ``peer``; every argument is what DWBase saw (texts, sizes, batch, queries)."""
    impl = _Chroma(root) if peer == "chroma" else _Lance(root)
    out: dict[str, Any] = {"version": impl.version}

    single = Series()
    impl.create("single", single_texts[:1], single_vecs[:1])
    for i in range(1, len(single_texts)):
        single.time(
            lambda i=i: impl.add("single", single_texts[i : i + 1], single_vecs[i : i + 1], i),
            keep=i > cfg.warmup,
        )
    out["single"] = single.latency()

    counts: list[int] = []
    seconds: list[float] = []
    cpu: list[float] = []
    queries: dict[str, Any] = {}
    feet: dict[str, Any] = {}
    opens: dict[str, Any] = {}
    loaded = 0
    with progress(f"{peer} load", cfg.sizes[-1], cfg.progress) as advance:
        for size in cfg.sizes:
            while loaded < size:
                end = min(size, loaded + cfg.batch_size)
                chunk_t, chunk_v = texts[loaded:end], vectors[loaded:end]
                if loaded == 0:
                    wall, c, _ = timed_cpu(lambda t=chunk_t, v=chunk_v: impl.create("ask", t, v))
                else:
                    wall, c, _ = timed_cpu(
                        lambda t=chunk_t, v=chunk_v, o=loaded: impl.add("ask", t, v, o)
                    )
                counts.append(end - loaded)
                seconds.append(wall)
                cpu.append(c)
                advance(end - loaded)
                loaded = end
            for q in query_vecs[: cfg.warmup]:
                impl.query("ask", q)
            series = Series()
            for q in query_vecs[cfg.warmup : cfg.warmup + cfg.queries]:
                series.time(lambda q=q: impl.query("ask", q))
            queries[str(size)] = series.latency()
            disk = disk_bytes(impl.path)
            feet[str(size)] = {"atoms": size, "disk_bytes": disk, "disk_per_atom": disk / size}
            opens[str(size)] = impl.reopen("ask", query_vecs[0])
    out.update(batch=throughput(counts, seconds, cpu), query=queries, footprint=feet, open=opens)
    return out


class _Chroma:
    label = "chroma query top-10 (HNSW)"

    def __init__(self, root: Path) -> None:
        import chromadb

        self.path = root / "chroma"
        self.version = chromadb.__version__
        self._open()
        self.cols: dict[str, Any] = {}

    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(
            path=str(self.path), settings=Settings(anonymized_telemetry=False)
        )

    def create(self, name: str, texts: Sequence[str], vecs: np.ndarray) -> None:
        self.cols[name] = self.client.create_collection(
            name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self.add(name, texts, vecs, 0)

    def add(self, name: str, texts: Sequence[str], vecs: np.ndarray, offset: int) -> None:
        self.cols[name].add(
            ids=[f"{name}{offset + i}" for i in range(len(texts))],
            embeddings=vecs,
            documents=list(texts),
            metadatas=[{"kind": "observation", "worker": "agent-1"}] * len(texts),
        )

    def query(self, name: str, vec: np.ndarray) -> Any:
        return self.cols[name].query(query_embeddings=vec[None, :], n_results=10)

    def reopen(self, name: str, vec: np.ndarray) -> dict[str, float]:
        t0 = time.perf_counter()
        self._open()
        self.cols[name] = self.client.get_collection(name)
        opened = time.perf_counter() - t0
        self.query(name, vec)
        return {"open_s": opened, "first_query_s": time.perf_counter() - t0}


class _Lance:
    """LanceDB (embedded, a table in a temp dir); queries scan exactly (no ANN index built)."""

    label = "lancedb search top-10 (exact scan)"

    def __init__(self, root: Path) -> None:
        import lancedb

        self.path = root / "lancedb"
        self.version = lancedb.__version__
        self.db = lancedb.connect(str(self.path))
        self.tables: dict[str, Any] = {}

    @staticmethod
    def _arrow(texts: Sequence[str], vecs: np.ndarray, offset: int) -> Any:
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).ravel())
        return pa.table(
            {
                "id": pa.array([f"a{offset + i}" for i in range(len(texts))]),
                "text": pa.array(list(texts)),
                "kind": pa.array(["observation"] * len(texts)),
                "vector": pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1]),
            }
        )

    def create(self, name: str, texts: Sequence[str], vecs: np.ndarray) -> None:
        self.tables[name] = self.db.create_table(name, data=self._arrow(texts, vecs, 0))

    def add(self, name: str, texts: Sequence[str], vecs: np.ndarray, offset: int) -> None:
        self.tables[name].add(self._arrow(texts, vecs, offset))

    def query(self, name: str, vec: np.ndarray) -> Any:
        return self.tables[name].search(vec).metric("cosine").limit(10).to_arrow()

    def reopen(self, name: str, vec: np.ndarray) -> dict[str, float]:
        import lancedb

        t0 = time.perf_counter()
        self.db = lancedb.connect(str(self.path))
        self.tables[name] = self.db.open_table(name)
        opened = time.perf_counter() - t0
        self.query(name, vec)
        return {"open_s": opened, "first_query_s": time.perf_counter() - t0}


LABELS: dict[str, str] = {"chroma": _Chroma.label, "lancedb": _Lance.label}
SINGLE_LABELS: dict[str, str] = {
    "chroma": "chroma add, 1 item (embedding precomputed)",
    "lancedb": "lancedb add, 1 row (embedding precomputed)",
}
BATCH_LABELS: dict[str, str] = {
    "chroma": "chroma add (embedding precomputed)",
    "lancedb": "lancedb add (embedding precomputed)",
}
