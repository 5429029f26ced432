"""A world's HNSW graph is saved beside the store and loaded on reopen, never trusted blindly.

A reopen answers from the saved graph at once (no rebuild, no read of every vector from the
store); a damaged graph file or one saved at another store generation is not used (the graph
is rebuilt from the store and the answers stay right); an encrypted store saves no graph.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dwbase
from conftest import require, wait_for
from dwbase.indexes import IndexManager
from dwbase.security.keys import EnvKeyProvider, env_name
from dwbase.vector import hnsw as hnsw_mod

TEXTS = [f"ticket {i} about {w}" for i, w in enumerate(["disk", "cpu", "refund"] * 100)]
QUESTIONS = ["refund ticket 17", "cpu ticket", "disk 42", "ticket about printers"]
WEIGHTS = {"lexical": 0, "recency": 0}  # semantic only: the graph decides the answers


def answers(db: dwbase.Engine) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUESTIONS:
        ans = db.ask("w", q, weights=WEIGHTS)
        out.append([(h.atom.payload_json, round(h.parts["semantic"], 6)) for h in ans.hits[:5]])
    return out


def saved_store(path: Path, **options: Any) -> list[list[tuple[str, float]]]:
    """A store at ``path`` with a graph for world ``w``, closed; the answers it gave."""
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    with dwbase.open(path, ann_threshold=200, **options) as db:
        db.remember_batch([{"world": "w", "worker": "a", "payload": {"text": t}} for t in TEXTS])
        db.ask("w", QUESTIONS[0])
        wait_for(lambda: db.index_status("w")[0]["kind"] == "hnsw")
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
        return answers(db)


def counting_loads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """(after_seq of every store vector load, count of graphs built) from here on."""
    loads: list[int] = []
    builds: list[int] = []
    from dwbase.storage.sqlite import SQLiteStorage

    real_load = SQLiteStorage.load_vectors
    real_build = IndexManager._build_ann

    def load(self: SQLiteStorage, world: str, **kw: Any) -> list[tuple[int, bytes]]:
        loads.append(int(kw.get("after_seq", 0)))
        return real_load(self, world, **kw)

    def build(self: IndexManager, st: Any) -> None:
        builds.append(1)
        real_build(self, st)

    monkeypatch.setattr(SQLiteStorage, "load_vectors", load)
    monkeypatch.setattr(IndexManager, "_build_ann", build)
    return loads, builds


def graph_files(path: Path) -> list[str]:
    folder = path / "indexes"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_reopen_answers_from_the_saved_graph_without_rebuilding_or_reading_every_vector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved_store(tmp_path / "s")
    files = graph_files(tmp_path / "s")
    assert [f.rsplit(".", 1)[1] for f in files] == ["hnsw", "json"]
    loads, builds = counting_loads(monkeypatch)
    with dwbase.open(tmp_path / "s", ann_threshold=200) as db:
        assert answers(db) == before
        status = db.index_status("w")[0]
        assert status["kind"] == "hnsw" and status["graph_file"] == "loaded"
        assert status["vectors"] == len(TEXTS) and status["lag"] == 0
        assert builds == [] and loads and min(loads) >= len(TEXTS)  # only the (empty) tail
        db.remember_batch([{"world": "w", "worker": "a", "payload": {"text": "a printer jam"}}])
        assert db.ask("w", "a printer jam").hits[0].atom.payload["text"] == "a printer jam"
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
    assert builds == []


def tamper_truncate(path: Path) -> None:
    graph = next((path / "indexes").glob("*.hnsw"))
    graph.write_bytes(graph.read_bytes()[:-100])


def tamper_flip(path: Path) -> None:
    graph = next((path / "indexes").glob("*.hnsw"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))


def tamper_generation(path: Path) -> None:
    side = next((path / "indexes").glob("*.json"))
    meta = json.loads(side.read_text())
    meta["generation"] += 1  # as if saved before another process's delete
    side.write_text(json.dumps(meta))


def tamper_world(path: Path) -> None:
    side = next((path / "indexes").glob("*.json"))
    meta = json.loads(side.read_text())
    meta["world"] = "other"
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (tamper_truncate, "checksum"),
        (tamper_flip, "checksum"),
        (tamper_generation, "generation differs"),
        (tamper_world, "world differs"),
    ],
)
def test_a_damaged_or_outdated_graph_is_not_trusted_and_answers_stay_right(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Path], None],
    why: str,
) -> None:
    saved_store(tmp_path / "s")
    shutil.copytree(tmp_path / "s", tmp_path / "exact")
    shutil.rmtree(tmp_path / "exact" / "indexes")  # its saved graph would be used
    with dwbase.open(tmp_path / "exact", ann_threshold=10**9) as exact_db:  # no graph at all
        exact = answers(exact_db)
        assert exact_db.index_status("w")[0]["kind"] == "exact"
    tamper(tmp_path / "s")
    loads, builds = counting_loads(monkeypatch)
    with dwbase.open(tmp_path / "s", ann_threshold=200) as db:
        db.ask("w", QUESTIONS[0])
        status = db.index_status("w")[0]
        assert status["graph_file"].startswith("not trusted") and why in status["graph_file"]
        assert 0 in loads  # rebuilt from the store
        wait_for(lambda: db.index_status("w")[0]["kind"] == "hnsw")
        wait_for(lambda: db.index_status("w")[0]["ann_pending"] == 0)
        assert builds == [1]
        # A new graph (its own levels, built in other slices) is approximate like the saved
        # one, so its best hit may differ from the saved graph's: it must be one of the five
        # best atoms an exact search finds for each question.
        after = answers(db)
        assert all(a[0] in e for a, e in zip(after, exact, strict=True)), (after, exact)


def test_a_delete_by_another_process_makes_the_saved_graph_untrusted(tmp_path: Path) -> None:
    saved_store(tmp_path / "s")
    with dwbase.open(tmp_path / "s", ann_threshold=None) as other:
        other.storage.delete([other.storage.max_seq()])  # the last atom, gone from the store
    with dwbase.open(tmp_path / "s", ann_threshold=200) as db:
        db.ask("w", QUESTIONS[0])
        assert "generation differs" in db.index_status("w")[0]["graph_file"]
        assert db.index_status("w")[0]["vectors"] == len(TEXTS) - 1


def test_an_encrypted_store_writes_no_graph_file(tmp_path: Path) -> None:
    provider = EnvKeyProvider({env_name("k1"): "11" * 32})
    saved_store(tmp_path / "s", encryption_key="k1", key_provider=provider)
    assert graph_files(tmp_path / "s") == []


def test_a_process_that_builds_no_graph_saves_none_and_still_uses_a_saved_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(hnsw_mod.available(), "ann extra not installed (pip install 'dwbase[ann]')")
    loads, builds = counting_loads(monkeypatch)
    with dwbase.open(tmp_path / "s", ann_threshold=200, ann_build=False) as db:
        db.remember_batch([{"world": "w", "worker": "a", "payload": {"text": t}} for t in TEXTS])
        assert db.ask("w", "refund ticket 17").hits
        assert db.index_status("w")[0]["kind"] == "exact"
    assert builds == [] and graph_files(tmp_path / "s") == []
    monkeypatch.undo()
    before = saved_store(tmp_path / "s")
    loads, builds = counting_loads(monkeypatch)
    with dwbase.open(tmp_path / "s", ann_threshold=200, ann_build=False) as db:
        assert answers(db) == before
        assert db.index_status("w")[0]["graph_file"] == "loaded" and builds == []
        assert min(loads) >= len(TEXTS)


def test_the_graph_of_another_store_with_the_same_shape_is_not_trusted(tmp_path: Path) -> None:
    import shutil

    saved_store(tmp_path / "a")
    before = saved_store(tmp_path / "b")  # same texts, seqs, generation and embedder
    shutil.rmtree(tmp_path / "b" / "indexes")
    shutil.copytree(tmp_path / "a" / "indexes", tmp_path / "b" / "indexes")
    with dwbase.open(tmp_path / "b", ann_threshold=200) as db:
        db.ask("w", QUESTIONS[0])
        assert "anchor atom" in db.index_status("w")[0]["graph_file"]
        wait_for(lambda: _graph_ready(db))
        assert [a[0][1] for a in answers(db)] == [b[0][1] for b in before]


def _graph_ready(db: dwbase.Engine) -> bool:
    st = db.index_status("w")[0]
    return bool(st["kind"] == "hnsw" and st["ann_pending"] == 0)


def test_cli_commands_build_no_graph_and_the_mcp_server_does(tmp_path: Path) -> None:
    from dwbase.cli import context

    short = context._embedded(tmp_path / "s", create=True)
    long_lived = context._embedded(tmp_path / "s", create=False, ann_build=True)
    try:
        assert short.options.ann_build is False and long_lived.options.ann_build is True
    finally:
        short.close()
        long_lived.close()
