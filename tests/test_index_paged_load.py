"""A world's vectors are read from the store a page at a time when its index loads, so the
first ask of a large world never holds every vector twice (the rows read and the index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase import indexes
from dwbase.storage.memory import MemoryStorage
from dwbase.storage.sqlite import SQLiteStorage


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_the_first_ask_reads_a_worlds_vectors_in_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr(indexes, "LOAD_PAGE", 64)
    cls: Any = SQLiteStorage if backend == "sqlite" else MemoryStorage
    reads: list[int] = []
    real = cls.load_vectors

    def spy(self: Any, world: str, **kw: Any) -> Any:
        got = real(self, world, **kw)
        reads.append(len(got))
        return got

    monkeypatch.setattr(cls, "load_vectors", spy)
    where = str(tmp_path / "s") if backend == "sqlite" else ":memory:"
    with (
        dwbase.open(where, ann_threshold=None) as db,
        dwbase.open(":memory:", ann_threshold=None) as plain,
    ):
        items = [
            {"world": "w", "worker": "a", "payload": {"text": f"note {i}"}} for i in range(300)
        ]
        db.remember_batch(items)
        plain.remember_batch(items)
        reads.clear()
        answer = db.ask("w", "note 250", weights={"lexical": 0, "recency": 0})
        assert reads and max(reads) <= 64 and sum(reads) == 300
        assert len(db.index_status("w")) == 1 and db.index_status("w")[0]["vectors"] == 300
        same = plain.ask("w", "note 250", weights={"lexical": 0, "recency": 0})
        assert [h.atom.payload for h in answer.hits] == [h.atom.payload for h in same.hits]


def test_a_resync_after_a_release_reads_the_world_in_pages_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "LOAD_PAGE", 64)
    reads: list[int] = []
    real = SQLiteStorage.load_vectors

    def spy(self: Any, world: str, **kw: Any) -> Any:
        got = real(self, world, **kw)
        reads.append(len(got))
        return got

    monkeypatch.setattr(SQLiteStorage, "load_vectors", spy)
    with dwbase.open(str(tmp_path / "s"), ann_threshold=None) as db:
        items = [
            {"world": "w", "worker": "a", "payload": {"text": f"note {i}"}} for i in range(300)
        ]
        db.remember_batch(items)
        held = db.remember("w", "a", "observation", payload_json='{"text": "held", "v": NaN}')
        db.ask("w", "note 1")
        db.quarantine_release(str(held))  # the world's index resyncs on its next use
        reads.clear()
        hits = db.ask("w", "held", weights={"lexical": 0, "recency": 0}, limit=300).hits
        assert reads and max(reads) <= 64 and sum(reads) == 301
        assert hits[0].atom.id == str(held)  # the released atom is back in the index
