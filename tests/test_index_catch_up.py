"""The HNSW graph catches up in the background; an ask never waits for it.

An ask answers from the graph plus an exact scan of the vectors the graph has not taken in
yet, so a blocked or failing graph update changes neither the answer nor its latency much.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import dwbase
from conftest import require, wait_for
from dwbase.model import Answer
from dwbase.vector import hnsw as hnsw_mod

TEXTS = [f"ticket {i} about {w}" for i, w in enumerate(["disk", "cpu", "refund"] * 100)]
WEIGHTS = {"lexical": 0, "recency": 0}  # semantic only: comparable across two stores
NEW = ["a brand new refund ticket", "printer jam on floor three", "refund for order 991"]


def fill(db: dwbase.Engine, texts: Sequence[str]) -> None:
    db.remember_batch([{"world": "w", "worker": "a", "payload": {"text": t}} for t in texts])


def ask_within(db: dwbase.Engine, text: str, seconds: float = 5.0) -> Answer:
    """``db.ask`` on another thread; fails (instead of hanging) if it does not answer in time."""
    out: list[Answer] = []
    t = threading.Thread(target=lambda: out.append(db.ask("w", text, weights=WEIGHTS)), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"ask {text!r} did not answer within {seconds} s"
    return out[0]


def graph_world(db: dwbase.Engine) -> None:
    """Fill world ``w`` past the threshold and wait until the graph answers its searches."""
    db.indexes.ask_quiet_s = 0.1  # the graph catches up soon after the test's asks
    fill(db, TEXTS)
    db.ask("w", "refund ticket 17")
    wait_for(lambda: db.index_status("w")[0]["kind"] == "hnsw")
    wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)


@pytest.fixture
def gated_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(entered, gate): graph insertions wait for ``gate``; ``entered`` is set when one does."""
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    entered, gate = threading.Event(), threading.Event()
    real_add = hnsw_mod.HnswIndex.add

    def gated_add(
        self: hnsw_mod.HnswIndex, seqs: Sequence[int], matrix: Any, *, num_threads: int = 1
    ) -> None:
        entered.set()
        assert gate.wait(10), "gate never opened"
        real_add(self, seqs, matrix, num_threads=num_threads)

    monkeypatch.setattr(hnsw_mod.HnswIndex, "add", gated_add)
    gate.set()  # open while the world fills; each test closes it when it wants
    yield entered, gate
    gate.set()


def test_asks_answer_from_the_graph_and_the_unindexed_tail_while_catch_up_is_blocked(
    gated_graph: tuple[threading.Event, threading.Event],
) -> None:
    entered, gate = gated_graph
    with (
        dwbase.open(":memory:", ann_threshold=200) as db,
        dwbase.open(":memory:", ann_threshold=None) as exact,
    ):
        graph_world(db)
        fill(exact, TEXTS)
        gate.clear()
        entered.clear()
        fill(db, NEW)  # a writer is never held up by the graph
        fill(exact, NEW)
        for text in NEW:
            ans = ask_within(db, text)
            assert ans.hits[0].atom.payload["text"] == text
            want = exact.ask("w", text, weights=WEIGHTS)  # the same atoms, exact search only
            assert [h.atom.payload_json for h in ans.hits[:3]] == [
                h.atom.payload_json for h in want.hits[:3]
            ]
            assert ans.hits[0].parts["semantic"] == pytest.approx(want.hits[0].parts["semantic"])
            assert ans.warnings == []
        assert entered.wait(5)  # the background thread is stuck in the graph, not the ask
        status = db.index_status("w")[0]
        assert status["kind"] == "hnsw" and status["ann_pending"] == len(NEW)
        assert status["lag"] == 0 and status["vectors"] == len(TEXTS) + len(NEW)
        fill(db, ["written while the graph is stuck"])  # writes still go through
        assert ask_within(db, "written while the graph is stuck").hits[0].atom.payload["text"] == (
            "written while the graph is stuck"
        )
        gate.set()
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
        again = ask_within(db, NEW[0])
        assert again.hits[0].atom.payload["text"] == NEW[0]


def test_a_failing_graph_update_is_logged_counted_in_health_and_asks_still_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    with dwbase.open(":memory:", ann_threshold=200) as db:
        graph_world(db)

        def broken(self: hnsw_mod.HnswIndex, seqs: Any, matrix: Any, **kw: Any) -> None:
            raise RuntimeError("graph out of memory")

        monkeypatch.setattr(hnsw_mod.HnswIndex, "add", broken)
        with caplog.at_level(logging.WARNING, logger="dwbase"):
            fill(db, NEW)
            ans = ask_within(db, NEW[1])
            assert ans.hits[0].atom.payload["text"] == NEW[1]
            wait_for(lambda: any("graph out of memory" in r.getMessage() for r in caplog.records))
        h = db.health()
        assert h["background_failures"]["index"]["failing"] is True
        assert "graph out of memory" in h["message"] and h["status"] == "degraded"
        assert h["background_failures"]["index"]["failures"] >= 1
        assert ask_within(db, NEW[2]).hits[0].atom.payload["text"] == NEW[2]
        monkeypatch.undo()
        fill(db, ["the graph works again"])
        ask_within(db, "the graph works again")
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
        wait_for(lambda: not db.health()["background_failures"]["index"]["failing"])


def test_closing_the_store_ends_its_index_threads() -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    before = {t.ident for t in threading.enumerate()}
    db = dwbase.open(":memory:", ann_threshold=200)
    graph_world(db)
    fill(db, NEW)
    db.ask("w", NEW[0])
    db.close()
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert [t.name for t in left] == []


def test_the_graph_takes_in_new_atoms_without_any_ask() -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    with dwbase.open(":memory:", ann_threshold=200) as db:
        graph_world(db)
        fill(db, NEW)  # no ask from here on: the index thread follows the writes by itself
        wait_for(lambda: db.index_status("w")[0]["lag"] == 0)
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
        assert db.index_status("w")[0]["vectors"] == len(TEXTS) + len(NEW)


def test_a_probe_ranks_given_seqs_as_sorting_their_scores_would() -> None:
    np = pytest.importorskip("numpy")
    from dwbase.vector import ExactIndex

    rng = np.random.default_rng(3)
    idx = ExactIndex(8)
    vecs = rng.standard_normal((50, 8)).astype(np.float32)
    idx.add([(s, vecs[s].tobytes()) for s in range(50)])
    idx.add([(60, vecs[7].tobytes())])  # a tie with seq 7
    probe = idx.probe(rng.standard_normal(8).tolist())
    seqs = [7, 60, 3, 99, 3, *range(10, 40)]  # 99 is not indexed; 3 is given twice
    want = sorted(probe.scores(seqs).items(), key=lambda x: -x[1])[:5]
    assert probe.top(seqs, 5) == want
    assert probe.top(seqs, 0) == [] and probe.top([99], 3) == []


def test_while_asks_run_the_graph_waits_for_a_long_tail_and_catches_up_in_the_quiet() -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    with dwbase.open(":memory:", ann_threshold=200) as db:
        graph_world(db)
        db.indexes.graph_tail_max = len(NEW)  # a tail of NEW fits: it waits while asks run
        fill(db, NEW)
        end = time.monotonic() + 0.6
        while time.monotonic() < end:  # asks keep coming: the tail is scanned, not inserted
            assert db.ask("w", NEW[2], weights=WEIGHTS).hits[0].atom.payload["text"] == NEW[2]
            assert db.index_status("w")[0]["ann_pending"] == len(NEW)
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)  # quiet: it goes in
        db.indexes.graph_tail_max = 0  # past the bound the graph takes rows in while asked
        fill(db, ["one more refund ticket"])
        end = time.monotonic() + 10
        while db.index_status("w")[0]["ann_pending"] and time.monotonic() < end:
            db.ask("w", NEW[0], weights=WEIGHTS)
        assert db.index_status("w")[0]["ann_pending"] == 0
