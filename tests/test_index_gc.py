"""A gc eviction takes the evicted atoms out of the world's loaded vector index; the next ask
does not read every vector of the world again (it used to: a soak that ran gc every 2 s made
about one ask in two seconds reload the whole world)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase.storage.sqlite import SQLiteStorage

WEIGHTS = {"lexical": 0, "recency": 0}


def full_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Worlds whose every vector was read (``load_vectors`` without ``after_seq``)."""
    seen: list[str] = []
    real = SQLiteStorage.load_vectors

    def spy(self: SQLiteStorage, world: str, *args: Any, **kw: Any) -> Any:
        if kw.get("after_seq") is None:
            seen.append(world)
        return real(self, world, *args, **kw)

    monkeypatch.setattr(SQLiteStorage, "load_vectors", spy)
    return seen


@pytest.mark.parametrize("threshold", [None, 50])
def test_gc_evictions_leave_the_index_loaded_and_out_of_every_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int | None
) -> None:
    db = dwbase.open(tmp_path / "s", ann_threshold=threshold)
    try:
        items = [
            {
                "world": "w",
                "worker": "a",
                "payload": {"text": f"disk alert {i}"},
                "importance": 0.2 + 0.6 * (i % 2),
            }
            for i in range(120)
        ]
        ids = [str(a) for a in db.remember_batch(items)]
        low = {aid for i, aid in enumerate(ids) if i % 2 == 0}
        db.ask("w", "disk alert", weights=WEIGHTS)  # the index is loaded
        loads = full_loads(monkeypatch)
        db.set_policy("w", min_importance=0.5)
        assert db.gc().evicted == len(low)
        answer = db.ask("w", "disk alert 7", limit=60, weights=WEIGHTS)
        got = {h.atom.id for h in answer.hits}
        assert not got & low
        assert len(got) == 60  # every atom left is still found
        assert loads == []  # no reload of the whole world
        fresh = dwbase.open(tmp_path / "s", ann_threshold=None)  # the store read afresh
        try:
            again = fresh.ask("w", "disk alert 7", limit=60, weights=WEIGHTS)
            assert [h.atom.id for h in again.hits][:10] == [h.atom.id for h in answer.hits][:10]
        finally:
            fresh.close()
    finally:
        db.close()
