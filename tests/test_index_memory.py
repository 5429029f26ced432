"""RAM held by the vector indexes: small worlds hold no spare rows, a graph world keeps no
Python object per vector, and an ask scores a long unindexed tail as one block.

Memory is read with tracemalloc, which sees numpy's arrays and every Python object, filtered
to what the index modules allocated (hnswlib's own C++ memory is not traced).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

import dwbase
from conftest import require, wait_for
from dwbase.vector import ExactIndex, pack
from dwbase.vector import hnsw as hnsw_mod

DIM = 256  # the default embedder's
RAW = 4 * DIM  # bytes of one float32 vector


@contextmanager
def index_memory() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the bytes the index modules allocated in
    it and still hold."""
    out: list[int] = []
    filters = [
        tracemalloc.Filter(True, "*dwbase/vector/*"),
        tracemalloc.Filter(True, "*dwbase/indexes*"),
    ]
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot().filter_traces(filters)
        yield out
        after = tracemalloc.take_snapshot().filter_traces(filters)
    finally:
        tracemalloc.stop()
    out.append(sum(d.size_diff for d in after.compare_to(before, "filename")))


def texts(world: int, n: int) -> list[str]:
    return [
        f"note {i} of world {world} about topic {i % 7} and item {i * 31 % 97}" for i in range(n)
    ]


def fill(db: dwbase.Engine, world: str, batch: Sequence[str]) -> None:
    db.remember_batch([{"world": world, "worker": "a", "payload": {"text": t}} for t in batch])


def test_a_hundred_small_worlds_indexes_hold_little_beyond_their_vectors() -> None:
    worlds, size = 100, 20
    with dwbase.open(":memory:") as db:
        for w in range(worlds):
            fill(db, f"w{w}", texts(w, size))
        with index_memory() as held:
            for w in range(worlds):
                db.ask(f"w{w}", "topic 3 item")
        per_atom = held[0] / (worlds * size)
    # each world's vectors, their seqs and times, and a few objects per world: no spare rows
    assert per_atom < 1.5 * RAW, f"{per_atom:.0f} B per atom of {RAW} B vectors"


def test_an_exact_index_grows_by_a_quarter_not_by_doubling() -> None:
    idx = ExactIndex(DIM)

    def vec(s: int) -> bytes:
        return pack([1.0, 1.0 / s] + [0.0] * (DIM - 2))

    with index_memory() as held:
        idx.add([(s, vec(s)) for s in range(1, 1001)])
        idx.add([(1001, vec(1001))])  # one more row past an exact fit
    assert held[0] < 1.35 * 1001 * (RAW + 16), f"{held[0]} B for 1,001 vectors"
    assert [s for s, _ in idx.search([0.0, 1.0] + [0.0] * (DIM - 2), 3)] == [1, 2, 3]


def test_a_graph_world_keeps_no_python_object_per_vector() -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    n = 2100
    every = texts(0, n)
    with dwbase.open(":memory:", ann_threshold=1000) as db:
        fill(db, "w", every[:1500])
        with index_memory() as held:
            db.ask("w", "topic 3 item")
            wait_for(lambda: db.index_status("w")[0]["kind"] == "hnsw")
            fill(db, "w", every[1500:])  # the index grows past its first load
            db.ask("w", "topic 3 item")
            wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
            assert db.index_status("w")[0]["vectors"] == n
            db.ask("w", "topic 3 item")
        per_atom = held[0] / n
    # the exact rows (vector, seq, time) and the seq -> row lookup; the graph's labels live
    # in hnswlib, not in a Python set beside it, and the matrix keeps no doubled capacity
    assert per_atom < RAW + 350, f"{per_atom:.0f} B per atom of {RAW} B vectors"


def test_an_ask_scores_the_unindexed_tail_and_the_graph_neighbours_as_one_ranking() -> None:
    idx = ExactIndex(4)
    idx.add([(s, pack([1.0, s / 100, 0.0, 0.0])) for s in range(1, 11)])
    idx.by_rows()
    idx.add([(s, pack([1.0, s / 100, 0.0, 0.0])) for s in range(11, 21)])
    idx.remove([19])
    probe = idx.probe([0.0, 1.0, 0.0, 0.0])
    # rows 10 on (seqs 11..20) are the tail; 12 is named by the graph too, scored once
    got = probe.top_after([3, 12, 5, 99], 10, 4)
    assert [s for s, _ in got] == [20, 18, 17, 16]
    assert got[0][1] == pytest.approx(0.2)
    assert [s for s, _ in probe.top_after([3, 5], 10, 100)][-2:] == [5, 3]
    assert probe.top_after([3, 5], 20, 2) == probe.top([3, 5], 2)
