"""One world's vector index as the index manager holds it: the exact rows, the graph, and
where the graph's unindexed tail starts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import hnsw as hnsw_mod
from .exact import ExactIndex, Probe


@dataclass(slots=True)
class WorldIndex:
    world: str
    quarantined: bool
    exact: ExactIndex
    embedder: str
    ann: hnsw_mod.HnswIndex | None = None
    ann_building: bool = False
    ready: bool = True
    rebuilding: bool = False
    progress: float = 1.0
    last_rebuilt_us: int | None = None
    dirty: bool = False
    # seqs gc evicted since the last use: taken out of ``exact`` and the graph on the next
    # use, instead of reading the whole world again (``dirty``)
    removals: list[int] = field(default_factory=list)
    seen_seq: int = 0  # storage rows up to here were looked at (some may not fit the index)
    error: str | None = None
    # rows of ``exact`` below this are in the graph (or removed); the rows from it on are the
    # graph's tail, not taken in yet: asks score them exactly beside the graph's neighbours,
    # in one block, and the index thread moves them into the graph in row order
    graph_rows: int = 0
    stored: bool = False  # atoms were stored since the index thread last caught up
    resyncs: int = 0  # bumped by each resync: rows read before one may be gone since
    # the graph file: the store generation it was saved or loaded at (None: not on disk), and
    # how this index's graph came to be ("loaded", or why a saved one was not trusted)
    saved_generation: int | None = None
    graph_file: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return "hnsw" if self.ann is not None else "exact"

    @property
    def pending(self) -> int:
        """Vectors in ``exact`` that the graph has not taken in yet (0 without a graph)."""
        return self.exact.live_from(self.graph_rows) if self.ann is not None else 0

    def top(self, probe: Probe, query: Sequence[float], k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest indexed seqs, best first: ``(seq, cosine)``.

        With a graph: its neighbours and every vector it has not taken in yet, scored exactly.
        The tail's start is read before the graph is searched, and the index thread moves it
        on only after the graph holds those rows: every indexed seq is in one of the two.
        """
        with self.lock:
            ann, lo = self.ann, self.graph_rows
        if ann is None:
            return probe.search(k)
        return probe.top_after(ann.search(query, k), lo, k)
