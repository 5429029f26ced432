"""Engine.remember_each: independent remembers sharing one transaction (group commit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dwbase
from dwbase import CapabilityDeniedError, ConflictError, InvalidInputError, StorageError
from dwbase.embed import HashingEmbedder
from dwbase.security.caps import Caller
from dwbase.storage.base import NewRecord
from dwbase.storage.memory import MemoryStorage


def _atom(world: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"world": world, "worker": "w", "payload": {"text": text}, **kw}


def test_each_item_gets_its_own_answer_and_refused_items_store_nothing(
    db: dwbase.Engine,
) -> None:
    db.remember("shut", "w", "observation", {"text": "before"})
    db.archive_world("shut")
    only_a = Caller(worker="bot", write=("a",), name="token:bot")
    answers = db.remember_each(
        [
            (_atom("a", "first"), None),
            (_atom("a", "bad", importance=7), None),
            (_atom("b", "not allowed"), only_a),
            (_atom("a", "as bot"), only_a),
            (_atom("shut", "archived"), None),
            (_atom("a", "last"), None),
        ]
    )
    assert isinstance(answers[1], InvalidInputError)
    assert isinstance(answers[2], CapabilityDeniedError)
    assert isinstance(answers[4], ConflictError)
    stored = [a for a in answers if isinstance(a, str)]
    assert len(stored) == 3
    texts = [a.payload["text"] for a in db.replay("a")]
    assert texts == ["first", "as bot", "last"]
    assert db.get(str(answers[3])).worker == "bot"  # each item's caller applies to it
    assert db.replay("b") == []
    assert db.check().ok


def test_a_failed_shared_transaction_is_retried_per_item() -> None:
    class FailsOnOneText(MemoryStorage):
        """Refuses any write that contains the atom with text "poison"."""

        def append(self, records: Sequence[NewRecord]) -> list[Any]:
            if any(r.text == "poison" for r in records):
                raise StorageError("disk said no")
            return super().append(records)

    db = dwbase.Engine(FailsOnOneText())
    answers = db.remember_each(
        [(_atom("a", "one"), None), (_atom("a", "poison"), None), (_atom("a", "two"), None)]
    )
    assert isinstance(answers[1], StorageError)
    assert [a.payload["text"] for a in db.replay("a")] == ["one", "two"]
    assert {str(answers[0]), str(answers[2])} == {a.id for a in db.replay("a")}


def test_empty_group_is_empty(db: dwbase.Engine) -> None:
    assert db.remember_each([]) == []


class _CallCounting(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(16)
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return super().embed(texts)


def test_a_batch_and_a_group_are_embedded_in_one_call_each() -> None:
    emb = _CallCounting()
    db = dwbase.open(":memory:", embedder=emb)
    db.remember_batch([_atom("a", f"text {i}") for i in range(10)])
    assert emb.calls == [10]
    given = _atom("a", "has its own vector", vector=[1.0] + [0.0] * 15)
    answers = db.remember_each(
        [(_atom("a", f"t{i}"), None) for i in range(4)]
        + [(given, None), (_atom("a", "x", kind="?"), None)]
    )
    assert emb.calls == [10, 4]  # the caller's vector and the refused atom need no embedding
    assert isinstance(answers[5], InvalidInputError)
    # Every atom's index vector is the embedding of its own text (none landed on a neighbour).
    idx = db.indexes.get("a", False)
    assert idx is not None
    for atom in db.replay("a"):
        if atom.vector is not None:
            continue
        stored = db.storage.get(atom.id)
        assert stored is not None
        [mine] = HashingEmbedder(16).embed([atom.payload["text"]])
        got = idx.exact.vectors([stored.seq])[stored.seq]
        assert max(abs(a - b) for a, b in zip(got, mine, strict=True)) < 1e-6
    db.close()
