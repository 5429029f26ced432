"""Vector indexes: exact and HNSW search, embedder changes, background rebuilds, fallbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import dwbase
from conftest import CountingEmbedder, require
from dwbase import AtomId
from dwbase.embed import HashingEmbedder
from dwbase.errors import InvalidInputError
from dwbase.vector import ExactIndex, pack
from dwbase.vector import hnsw as hnsw_mod

TEXTS = [
    "the checkout service answers slowly",
    "disk on db-2 is almost full",
    "deploy of version 42 finished",
    "customer asked for a refund",
    "certificate expires next week",
    "cache hit ratio dropped",
]


def wait_for(cond: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def fill(db: dwbase.Engine, world: str = "w", texts: Sequence[str] = TEXTS) -> list[AtomId]:
    return db.remember_batch(
        [{"world": world, "worker": "a", "payload": {"text": t}} for t in texts]
    )


class GatedEmbedder(HashingEmbedder):
    """A hashing embedder whose batch work (rebuilds) waits until the test opens the gate."""

    version = "gated-1"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if threading.current_thread() is not threading.main_thread():
            assert self.gate.wait(30), "gate never opened"
        return super().embed(texts)


# ---------------------------------------------------------------------------- exact index


def test_exact_index_returns_best_first_and_knows_neighbours() -> None:
    idx = ExactIndex(2)
    idx.add([(10, pack([1.0, 0.0])), (11, pack([0.0, 1.0])), (13, pack([0.6, 0.8]))])
    assert [s for s, _ in idx.search([1.0, 0.0], 2)] == [10, 13]
    assert idx.neighbours(11) == (10, 13)
    assert idx.neighbours(10) == (None, 11)
    assert idx.neighbours(12) == (11, 13)  # a seq without a vector still has neighbours
    idx.remove([11])
    assert idx.neighbours(13) == (10, None)
    assert idx.scores([0.0, 1.0], [10, 11, 13]) == pytest.approx({10: 0.0, 13: 0.8})


@pytest.mark.parametrize("by_rows", [False, True])
def test_a_probe_reuses_its_scan_and_scores_rows_added_or_removed_since(by_rows: bool) -> None:
    idx = ExactIndex(2)
    idx.add([(1, pack([1.0, 0.0])), (2, pack([0.0, 1.0])), (3, pack([0.6, 0.8]))])
    if by_rows:
        idx.by_rows()
    probe = idx.probe([0.6, 0.8])
    assert [s for s, _ in probe.search(2)] == [3, 2]
    idx.add([(4, pack([0.8, 0.6]))])  # after the scan: scored on demand
    idx.remove([2])  # gone since the scan: not scored at all
    got = probe.scores([1, 2, 3, 4, 99])
    assert got == pytest.approx({1: 0.6, 3: 1.0, 4: 0.96})
    # the figures read back from the scan are the ones a fresh product gives
    assert got == idx.scores([0.6, 0.8], [1, 3, 4])
    assert probe.scores([]) == {}


@pytest.mark.parametrize("by_rows", [False, True])
def test_a_sparse_query_scores_every_row_as_the_full_product_does(by_rows: bool) -> None:
    np = pytest.importorskip("numpy")
    from dwbase.vector import exact

    rng = np.random.default_rng(3)
    mat = rng.standard_normal((300, 64)).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    idx = ExactIndex(64)
    idx.add([(i + 1, mat[i].tobytes()) for i in range(150)])
    if by_rows:  # the layout an ANN-backed world switches to, then more rows added
        idx.by_rows()
    idx.add([(i + 1, mat[i].tobytes()) for i in range(150, 300)])
    assert idx.vectors([7]) == {7: pytest.approx(mat[6].tolist())}
    assert idx.matrix()[1] == pytest.approx(mat)
    sparse = np.zeros(64, dtype=np.float32)
    sparse[[3, 17, 40]] = [0.6, -0.48, 0.64]  # 3 of 64 dimensions: the sparse path
    dense = rng.standard_normal(64).astype(np.float32)
    dense /= np.linalg.norm(dense)
    assert np.count_nonzero(sparse) <= exact.SPARSE_QUERY * 64 < np.count_nonzero(dense)
    for q in (sparse, dense):
        got = idx.search(q.tolist(), 300)
        want = mat @ q
        assert len(got) == 300
        assert [s for s, _ in got[:10]] == [int(i) + 1 for i in np.argsort(-want)[:10]]
        assert all(abs(v - float(want[s - 1])) < 1e-6 for s, v in got)
    assert idx.search([0.0] * 64, 3) != []  # a zero query scores every row 0, not an error


# ---------------------------------------------------------------------------- errors


def test_a_query_vector_of_the_wrong_dimension_is_a_clear_error() -> None:
    with dwbase.open(":memory:", embedder=HashingEmbedder(dim=64)) as db:
        fill(db)
        with pytest.raises(
            InvalidInputError, match="query vector has 3 dims, world 'w' expects 64"
        ):
            db.ask("w", "anything", vector=[0.1, 0.2, 0.3])


def test_a_query_vector_of_the_right_dimension_drives_semantic_search() -> None:
    emb = HashingEmbedder(dim=64)
    with dwbase.open(":memory:", embedder=emb) as db:
        fill(db)
        ans = db.ask("w", "", vector=emb.embed(["certificate expires next week"])[0])
        assert ans.hits[0].atom.payload["text"] == "certificate expires next week"
        assert ans.hits[0].parts["semantic"] == pytest.approx(0.4, abs=1e-3)


# ---------------------------------------------------------------------------- persistence


def test_the_index_is_rebuilt_on_open_with_the_same_results(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    with dwbase.open(path) as db:
        fill(db)
        before = [(h.atom.id, h.score) for h in db.ask("w", "refund request").hits]
    with dwbase.open(path) as db:
        after = [(h.atom.id, h.score) for h in db.ask("w", "refund request").hits]
        status = db.index_status("w")[0]
    assert after == before
    assert status["ready"] and status["loaded"] and status["vectors"] == len(TEXTS)
    assert status["version"] == 1 and status["embedder"] == "hashing:1"


# ---------------------------------------------------------------------------- embedder changes


def test_changing_the_embedder_rebuilds_the_index_in_the_background(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    with dwbase.open(path, embedder=HashingEmbedder(dim=64)) as db:
        fill(db)
    gated = GatedEmbedder(dim=32)
    with dwbase.open(path, embedder=gated, reembed=True) as db:
        status = db.index_status("w")[0]
        assert status["rebuilding"] and status["stale"] and not status["ready"]
        assert status["progress"] < 1.0
        assert status["dim"] == 32  # the world's vectors follow its embedder
        assert db.storage.meta_get("embedder") == "hashing:gated-1:32"

        ans = db.ask("w", "refund")  # served while the index is not ready
        assert any("being rebuilt" in w for w in ans.warnings)
        assert ans.hits[0].atom.payload["text"] == "customer asked for a refund"
        assert all(h.parts["semantic"] == 0.0 for h in ans.hits)

        gated.gate.set()
        wait_for(lambda: db.index_status("w")[0]["ready"])
        status = db.index_status("w")[0]
        assert status["progress"] == 1.0 and not status["rebuilding"]
        assert status["vectors"] == len(TEXTS) and status["last_rebuilt"]
        ans = db.ask("w", "refund")
        assert ans.warnings == []
        assert ans.hits[0].parts["semantic"] > 0.0
        # Old atoms were re-embedded with the new embedder: they match their own text exactly.
        q = gated.embed(["disk on db-2 is almost full"])[0]
        top = db.ask("w", "", vector=q).hits[0]
        assert top.atom.payload["text"] == "disk on db-2 is almost full"
        assert top.parts["semantic"] == pytest.approx(0.4, abs=1e-3)
        # New atoms are embedded by the new embedder as they arrive.
        db.remember("w", "a", "observation", {"text": "kafka consumer lag grows"})
        q = gated.embed(["kafka consumer lag grows"])[0]
        assert db.ask("w", "", vector=q).hits[0].parts["semantic"] == pytest.approx(0.4, abs=1e-3)


def test_re_embedded_vectors_are_kept_for_the_next_open(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    with dwbase.open(path, embedder=HashingEmbedder(dim=64)) as db:
        fill(db)
    first = CountingEmbedder(dim=32)
    with dwbase.open(path, embedder=first, reembed=True) as db:
        wait_for(lambda: db.index_status("w")[0]["ready"])
        assert first.texts == len(TEXTS)
        before = [(h.atom.id, h.score) for h in db.ask("w", "refund").hits]
    again = CountingEmbedder(dim=32)
    with dwbase.open(path, embedder=again) as db:
        wait_for(lambda: db.index_status("w")[0]["ready"])
        assert [(h.atom.id, h.score) for h in db.ask("w", "refund").hits] == before
        assert again.texts == 1  # the question only


def test_an_embedder_change_keeps_worlds_of_caller_given_vectors(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    with dwbase.open(path, embedder=HashingEmbedder(dim=4)) as db:
        db.remember("v", "a", "observation", {"text": "x"}, vector=[1.0, 0.0, 0.0, 0.0])
        db.remember("v", "a", "observation", {"text": "y"}, vector=[0.0, 1.0, 0.0, 0.0])
    with dwbase.open(path, embedder=HashingEmbedder(dim=32), reembed=True) as db:
        wait_for(lambda: db.index_status("v")[0]["ready"])
        assert db.index_status("v")[0]["dim"] == 4
        hits = db.ask("v", "", vector=[0.0, 1.0, 0.0, 0.0]).hits
        assert hits[0].atom.payload["text"] == "y"


def test_index_rebuild_on_request_reports_progress_and_finishes(tmp_path: Path) -> None:
    with dwbase.open(str(tmp_path / "d")) as db:
        fill(db)
        db.ask("w", "refund")
        out = db.index_rebuild("w", wait=False)
        assert out["started"] and out["worlds"] == ["w"]
        db.index_rebuild(wait=False)  # joins the running rebuild instead of racing it
        rebuilders = [t for t in threading.enumerate() if t.name == "dwbase-reindex"]
        assert len(rebuilders) <= 1
        wait_for(lambda: db.index_status("w")[0]["ready"])
        assert db.index_rebuild("w") == {"worlds": ["w"], "vectors": len(TEXTS)}


def test_deleted_atoms_leave_the_index(tmp_path: Path) -> None:
    with dwbase.open(str(tmp_path / "d")) as db:
        ids = fill(db)
        assert db.ask("w", "refund").hits[0].atom.id == ids[3]
        db.set_policy("w", min_importance=0.6)
        db.gc()
        ans = db.ask("w", "customer asked for a refund")
        assert ids[3] not in [h.atom.id for h in ans.hits]
        assert db.index_status("w") == []  # every atom left (the policy is in policy:w)


# ---------------------------------------------------------------------------- HNSW


def test_large_worlds_switch_to_hnsw_and_agree_with_exact_search() -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    texts = [f"ticket {i} about {w}" for i, w in enumerate(["disk", "cpu", "refund"] * 100)]
    with dwbase.open(":memory:", ann_threshold=200) as db:
        fill(db, texts=texts)
        first = db.ask("w", "refund ticket 17", weights={"lexical": 0})
        wait_for(lambda: db.index_status("w")[0]["kind"] == "hnsw")
        status = db.index_status("w")[0]
        assert status["vectors"] == 300 and not status["ann_building"]
        again = db.ask("w", "refund ticket 17", weights={"lexical": 0})
        assert again.warnings == []
        assert [h.atom.id for h in again.hits[:5]] == [h.atom.id for h in first.hits[:5]]
        fill(db, texts=["a brand new refund ticket"])  # added to the graph as it arrives
        top = db.ask("w", "a brand new refund ticket", weights={"lexical": 0}).hits[0]
        assert top.atom.payload["text"] == "a brand new refund ticket"


@pytest.mark.parametrize("by_rows", [False, True])
def test_probe_context_gives_each_seqs_neighbours_their_cosines_and_times(by_rows: bool) -> None:
    np = pytest.importorskip("numpy")
    from dwbase.vector.exact import NO_TS

    rng = np.random.default_rng(5)
    idx = ExactIndex(8)
    vecs = {}
    for s in [*range(10, 60, 2), 7, 33, 200]:  # appends, then two out of order, then one more
        v = rng.standard_normal(8).astype(np.float32)
        vecs[s] = v / np.linalg.norm(v)
        idx.add([(s, vecs[s].tobytes())])
        if by_rows and s == 40:
            idx.by_rows()
    idx.remove([20, 200])
    times = {s: -5_000 + 1_000 * s for s in vecs if s != 34}  # 34: no stored atom
    asked: list[list[int]] = []

    def ts_of(seqs: list[int]) -> dict[int, int]:
        asked.append(seqs)
        return {s: times[s] for s in seqs if s in times}

    q = rng.standard_normal(8).astype(np.float32)
    probe = idx.probe(q.tolist())
    if not by_rows:  # with rows (an ANN world) no full scan: cosines computed on demand
        probe.search(3)
    seqs = [7, 8, 10, 20, 21, 33, 34, 58, 59, 300, 1]
    for _ in range(2):  # the second time, every time is known: the store is not asked
        ctx = probe.context(seqs, ts_of)
        pairs = idx.neighbours_many(seqs)
        k = len(seqs)
        for i, s in enumerate(seqs):
            for j, n in ((i, pairs[s][0]), (k + i, pairs[s][1])):
                if n is None:
                    assert (ctx.seqs[j], ctx.cos[j], ctx.ts[j]) == (-1, 0.0, NO_TS)
                else:
                    assert ctx.seqs[j] == n
                    assert ctx.cos[j] == pytest.approx(float(vecs[n] @ q), abs=1e-6)
                    assert ctx.ts[j] == times.get(n, NO_TS)
    assert len(asked) == 2 and asked[1] == [34]  # only the one the store does not have
