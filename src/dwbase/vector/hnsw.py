"""HNSW graph over one world's vectors (the ``ann`` extra: hnswlib).

hnswlib won the committed benchmark (``benchmarks/vectors.py``, figures in
``docs/performance.md``). It is imported lazily: without the extra, worlds stay on exact
search. The graph only answers "which seqs are near"; the exact index keeps the vectors, so
scores are recomputed exactly and context lookups work the same for both kinds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = 64


def available() -> bool:
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class HnswIndex:
    """Cosine HNSW keyed by seq. ``add``/``remove``/``search`` are thread-safe.

    The graph keeps no Python object per vector: its size and newest seq are counters, and
    only the (rare) labels marked deleted are a set.
    """

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        import hnswlib

        self.dim = dim
        self._lock = threading.Lock()  # the graph's structure: searches, additions, removals
        self._write = threading.Lock()  # additions, removals and saves (a save lets searches on)
        self._index: Any = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=max(capacity, 16), M=M, ef_construction=EF_CONSTRUCTION)
        self._index.set_ef(EF_SEARCH)
        self._deleted: set[int] = set()  # labels marked deleted (still in the file)
        self._newest: int | None = None
        self.changes = 0  # vectors added or removed since it was built, loaded or saved

    @classmethod
    def load(cls, path: str, dim: int, deleted: Sequence[int]) -> HnswIndex:
        """A graph saved by :meth:`save`; ``deleted`` are the labels it marked deleted."""
        import hnswlib

        self = cls.__new__(cls)
        self.dim = dim
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.load_index(path)
        self._index.set_ef(EF_SEARCH)
        labels = [int(x) for x in self._index.get_ids_list()]
        self._deleted = set(deleted).intersection(labels)
        self._newest = max((x for x in labels if x not in self._deleted), default=None)
        self.changes = 0
        return self

    def __len__(self) -> int:
        return int(self._index.get_current_count()) - len(self._deleted)

    def save(self, path: str) -> set[int]:
        """Write the graph to ``path``; the labels it holds marked deleted."""
        with self._write:  # searches go on meanwhile: both only read the graph
            self._index.save_index(path)
            self.changes = 0
            return set(self._deleted)

    def newest(self) -> int | None:
        """The highest seq in the graph (``None`` when empty)."""
        with self._lock:
            if self._newest is not None and self._newest in self._deleted:
                labels = [int(x) for x in self._index.get_ids_list()]
                self._newest = max((x for x in labels if x not in self._deleted), default=None)
            return self._newest

    def add(self, seqs: Sequence[int], matrix: Any, *, num_threads: int = 1) -> None:
        """Put ``matrix`` (float32, ``len(seqs) x dim``) in the graph under ``seqs``."""
        if not len(seqs):
            return
        with self._write, self._lock:
            need = self._index.get_current_count() + len(seqs)
            cap = self._index.get_max_elements()
            if need > cap:  # a quarter more: spare room costs the size of a vector each
                self._index.resize_index(max(need, cap + cap // 4))
            self._index.add_items(matrix, list(seqs), num_threads=num_threads)
            self._deleted.difference_update(seqs)
            top = max(seqs)
            if self._newest is None or top > self._newest:
                self._newest = top
            self.changes += len(seqs)

    def add_matrix(self, seqs: Sequence[int], matrix: Any, *, num_threads: int = -1) -> None:
        """:meth:`add` with every core (a build: no search waits on it yet)."""
        self.add(seqs, matrix, num_threads=num_threads)

    def remove(self, seqs: Sequence[int]) -> None:
        with self._write, self._lock:
            for s in seqs:
                if s in self._deleted:
                    continue
                try:
                    self._index.mark_deleted(s)
                except RuntimeError:  # not in the graph
                    continue
                self._deleted.add(s)
                self.changes += 1

    def search(self, query: Sequence[float], k: int) -> list[int]:
        """Seqs of (about) the ``k`` nearest vectors, nearest first."""
        import numpy as np

        with self._lock:
            n = len(self)
            if n == 0 or k <= 0:
                return []
            kk = min(k, n)
            q = np.asarray(query, dtype=np.float32)
            self._index.set_ef(max(EF_SEARCH, kk))
            try:
                labels, _ = self._index.knn_query(q, k=kk)
            except RuntimeError:
                # Deleted labels still route the search but are not returned: with many of
                # them hnswlib finds fewer than ``kk`` and refuses. Search wider, then ask for
                # fewer (the caller scores the unindexed tail beside these anyway).
                labels = None
                self._index.set_ef(int(self._index.get_current_count()))
                while labels is None and kk > 0:
                    try:
                        labels, _ = self._index.knn_query(q, k=kk)
                    except RuntimeError:
                        kk //= 2
                if labels is None:
                    return []
        return [int(x) for x in labels[0]]
