"""Closing an engine while a world's graph is being built stops the build within a slice:
the build thread ends before ``close`` returns, so no hnswlib thread is still inserting when
the process exits (a C++ thread torn down mid-call aborts the process)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import dwbase
from conftest import require
from dwbase import indexes
from dwbase.vector import hnsw as hnsw_mod


def test_close_stops_a_graph_build_between_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    require(hnsw_mod.available(), "hnswlib")
    monkeypatch.setattr(indexes, "BUILD_SLICE", 100)
    started = threading.Event()
    calls: list[int] = []
    real = hnsw_mod.HnswIndex.add_matrix

    def slow_slice(self: Any, seqs: Any, matrix: Any, **kw: Any) -> None:
        calls.append(len(seqs))
        started.set()
        time.sleep(0.05)  # a slice takes a while, as a large one does on a busy machine
        real(self, seqs, matrix, **kw)

    monkeypatch.setattr(hnsw_mod.HnswIndex, "add_matrix", slow_slice)
    db = dwbase.open(":memory:", ann_threshold=500)
    db.remember_batch(
        [{"world": "w", "worker": "a", "payload": {"text": f"note {i}"}} for i in range(3000)]
    )
    db.ask("w", "note 7")  # loads the index; past the threshold the graph build starts
    assert started.wait(10), "the graph build did not start"
    t0 = time.perf_counter()
    db.close()
    assert time.perf_counter() - t0 < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("dwbase-ann")]
    assert all(n <= 100 for n in calls) and sum(calls) < 3000  # stopped between slices
