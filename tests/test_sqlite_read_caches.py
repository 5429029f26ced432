"""The SQLite adapter's read caches for ask: score rows, stems and document counts."""

from __future__ import annotations

from pathlib import Path

import pytest

import dwbase
from dwbase.model import FilterSpec
from dwbase.storage.sqlite import SQLiteStorage, sqlite_path


def _fill(db: dwbase.Engine, n: int, text: str, worker: str = "w") -> None:
    db.remember_batch([{"world": "c", "worker": worker, "payload": {"text": text}}] * n)


def test_score_rows_come_from_the_cache_and_forget_deleted_atoms(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    _fill(db, 5, "hello")
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    first = store.score_rows([1, 2, 3, 4, 5])
    assert sorted(first) == [1, 2, 3, 4, 5]
    assert store.score_rows([3, 1]) == {3: first[3], 1: first[1]}
    store.delete([2])
    assert sorted(store.score_rows([1, 2, 3])) == [1, 3]
    db.close()
    reopened = SQLiteStorage(sqlite_path(str(tmp_path / "s")))
    assert reopened.score_rows([1, 3]) == {1: first[1], 3: first[3]}  # same rows as cached
    reopened.close()


def test_document_counts_are_recounted_once_the_store_grows(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    store.WORK_BUDGET = 4  # the pruning rule of large stores, at a test's size
    _fill(db, 195, "plain words")
    _fill(db, 5, "alpha words")
    # alpha is in 2.5% of the atoms: rare enough to search on.
    assert len(store.search_text("c", ["alpha"], 10)) == 5
    assert len(store.search_text("c", ["alpha"], 10)) == 5  # from the cached count
    _fill(db, 300, "alpha again")
    # Now alpha is in 61% of the atoms: a stale count (5) would keep it; the recount drops it.
    assert store.search_text("c", ["alpha"], 10) == []
    db.close()


def test_link_counts_see_links_written_after_the_targets_were_loaded(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    a = db.remember("c", "w", "observation", {"text": "old fact"})
    b = db.remember("c", "w", "observation", {"text": "another"})
    assert store.link_counts([a, b]) == {}  # loads the (empty) set of link targets
    db.remember(
        "c", "w", "observation", {"text": "new fact"}, links=[{"target": a, "kind": "supersedes"}]
    )
    assert store.link_counts([a, b]) == {a: {"supersedes": 1}}
    texts = [h.atom.payload["text"] for h in db.ask("c", "fact", current_only=True).hits]
    assert "new fact" in texts and "old fact" not in texts  # the superseded atom is gone
    db.close()
    reopened = SQLiteStorage(sqlite_path(str(tmp_path / "s")))
    assert reopened.link_counts([a, b]) == {a: {"supersedes": 1}}
    reopened.close()


def test_a_second_engine_on_the_store_sees_links_and_changes_the_first_makes(
    tmp_path: Path,
) -> None:
    writer = dwbase.open(str(tmp_path / "s"))
    reader = dwbase.open(str(tmp_path / "s"))
    a = writer.remember("c", "w", "observation", {"text": "old fact"})
    assert reader.storage.link_counts([a]) == {}  # the reader loads its link targets
    writer.remember(
        "c", "w", "observation", {"text": "new fact"}, links=[{"target": a, "kind": "supersedes"}]
    )
    assert reader.storage.link_counts([a]) == {a: {"supersedes": 1}}
    texts = [h.atom.payload["text"] for h in reader.ask("c", "fact", current_only=True).hits]
    assert texts == ["new fact"]
    # A change appends cannot show (a quarantine release) moves the writer's generation; the
    # reader forgets what it cached and its vector index resyncs with the store.
    held = writer.remember("c", "w", "observation", payload_json='{"text": "odd", "v": NaN}')
    assert held.quarantined
    writer.remember("c", "w", "observation", {"text": "later fact"})  # newer than the held one
    stored = writer.storage.get(held)
    assert stored is not None
    seq = stored.seq
    idx = reader.indexes.get("c", False)
    assert idx is not None and seq not in idx.exact
    gen = writer.generation
    writer.quarantine_release(held)
    assert writer.generation > gen
    idx = reader.indexes.get("c", False)
    assert idx is not None and seq not in idx.exact  # appends-only catch-up cannot see it
    reader.forget_caches()
    idx = reader.indexes.get("c", False)
    assert idx is not None and seq in idx.exact
    writer.close()
    reader.close()


def test_decoded_atoms_are_not_served_stale_after_a_release_or_a_delete(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    held = db.remember("c", "w", "observation", payload_json='{"text": "odd boiler", "v": NaN}')
    assert held.quarantined
    hits = db.ask("quarantine:c", "odd boiler").hits  # decodes (and caches) the held atom
    assert [h.atom.world for h in hits] == ["quarantine:c"]
    db.quarantine_release(held)
    hits = db.ask("c", "odd boiler").hits
    assert [(h.atom.id, h.atom.world, "suspect" in h.atom.flags) for h in hits] == [
        (held, "c", False)
    ]
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    seq = store.get(held)
    assert seq is not None and store.get_seqs([seq.seq])
    store.delete([seq.seq])
    assert store.get_seqs([seq.seq]) == {}
    db.close()


def test_a_small_worlds_rare_word_is_searched_however_common_it_is_elsewhere(
    tmp_path: Path,
) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    store.WORK_BUDGET = 4  # the pruning rule of large stores, at a test's size
    db.remember_batch([{"world": "small", "worker": "w", "payload": {"text": "plain words"}}] * 39)
    db.remember_batch([{"world": "small", "worker": "w", "payload": {"text": "alpha words"}}])
    _fill(db, 400, "alpha again")  # alpha is in 401 of the store's 440 atoms, 1 of small's 40
    # Pruning weighs a word by its count in the asking world, not in the store.
    assert len(store.search_text("small", ["alpha"], 10)) == 1
    assert store.search_text("c", ["alpha"], 10) == []  # in world c, alpha is everywhere
    db.close()


def test_world_indexes_are_bounded_and_let_go_of_the_least_recent_world(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    worlds = [f"team-{i}" for i in range(5)]
    for i, world in enumerate(worlds):
        texts = ["disk full", f"disk {i} cleanup", "cache warm disk", f"note {i}"]
        db.remember_batch([{"world": world, "worker": "w", "payload": {"text": t}} for t in texts])
    store.WORLD_INDEX_SLOTS, store.WORLD_INDEX_ATOMS = 3, 10  # 2 worlds of 4 atoms fit
    reference = SQLiteStorage(sqlite_path(str(tmp_path / "s")))  # holds every world
    expected = [reference.search_text(w, ["disk", "cache"], 10) for w in worlds]
    reference.close()
    assert all(len(hits) == 3 for hits in expected)
    for _ in range(2):
        assert [store.search_text(w, ["disk", "cache"], 10) for w in worlds] == expected
        with store._reading() as conn:
            held = conn.execute("SELECT world, atoms FROM temp.world_text ORDER BY used")
            assert [tuple(r) for r in held] == [("team-3", 4), ("team-4", 4)]
    db.close()


def test_a_store_of_one_world_searches_its_shared_index(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    _fill(db, 5, "disk full")
    assert len(store.search_text("c", ["disk"], 10)) == 5
    with store._reading() as conn:
        tables = conn.execute("SELECT name FROM sqlite_temp_master WHERE name='world_text'")
        assert tables.fetchall() == []
    db.close()


def test_a_filter_finds_a_worlds_weakest_match_beyond_the_first_fetch(tmp_path: Path) -> None:
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    weak = db.remember(
        "small",
        "w",
        "observation",
        {"text": "disk among many other words of a long note"},
        labels=["ops"],
    )
    db.remember_batch([{"world": "small", "worker": "w", "payload": {"text": "disk"}}] * 300)
    db.remember_batch([{"world": "small", "worker": "w", "payload": {"text": "cache"}}] * 400)
    _fill(db, 3, "disk elsewhere")
    ops = FilterSpec(labels=frozenset({"ops"}))
    hits = store.search_text("small", ["disk"], 10, spec=ops)
    assert [s.atom.id for s in store.get_seqs([q for q, _ in hits]).values()] == [weak]
    db.close()


def test_a_large_world_skips_the_size_query_until_a_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteStorage, "WORLD_INDEX_MAX", 4)
    db = dwbase.open(str(tmp_path / "s"))
    store = db.storage
    assert isinstance(store, SQLiteStorage)
    ids = [db.remember("big", "w", text=f"disk {i}") for i in range(6)]
    db.remember("other", "w", text="disk elsewhere")
    assert len(store.search_text("big", ["disk"], 10)) == 6
    assert store._large_worlds == {"big"}  # the next ask of it asks no size query
    seqs = [s.seq for s in store.get_many(ids[:3]).values()]
    store.delete(seqs)
    assert store._large_worlds == set()  # it may have become small: asked again
    assert len(store.search_text("big", ["disk"], 10)) == 3
    assert store._large_worlds == set()  # 3 atoms: searched in its own index now
    with store._reading() as conn:
        worlds = conn.execute("SELECT world FROM temp.world_text").fetchall()
    assert ("big",) in worlds
    db.close()
