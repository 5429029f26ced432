"""Ranking: hybrid fusion, context from neighbouring atoms, weights, explanations."""

from __future__ import annotations

import pytest

import dwbase
from dwbase import AtomId
from dwbase.errors import InvalidInputError
from dwbase.ranking import RankingWeights


def chat(db: dwbase.Engine, turns: list[str], start: str = "2024-03-01T10:00:") -> list[AtomId]:
    return db.remember_batch(
        [
            {
                "world": "w",
                "worker": "ann" if i % 2 == 0 else "bob",
                "kind": "message",
                "timestamp": f"{start}{i:02d}Z",
                "payload": {"text": t},
            }
            for i, t in enumerate(turns)
        ]
    )


TURNS = [
    "morning! did you sleep well?",
    "what instrument did your sister start learning?",
    "the violin, she practises every evening",
    "nice. my cat knocked over a plant today",
    "cats do that. any plans for the weekend?",
    "hiking near the lake if the weather holds",
]


def test_every_hit_explains_its_score_with_parts_that_add_up() -> None:
    with dwbase.open(":memory:") as db:
        chat(db, TURNS)
        for hit in db.ask("w", "what instrument is the sister learning").hits:
            assert set(hit.parts) == {
                "lexical",
                "semantic",
                "context",
                "recency",
                "importance",
                "links",
                "trust",
            }
            assert hit.score == pytest.approx(sum(hit.parts.values()), abs=1e-5)


def test_an_answer_without_the_questions_words_ranks_through_its_context() -> None:
    with dwbase.open(":memory:") as db:
        ids = chat(db, TURNS)
        hits = db.ask("w", "instrument sister learning").hits
        top3 = [h.atom.id for h in hits[:3]]
        assert ids[2] in top3  # "the violin ..." shares no word with the question
        answer = next(h for h in hits if h.atom.id == ids[2])
        assert answer.parts["context"] > 0 and answer.parts["lexical"] == 0


def test_context_stops_at_a_gap_in_time() -> None:
    with dwbase.open(":memory:") as db:
        a = chat(db, ["what instrument did your sister start learning?"])
        b = chat(db, ["the violin"], start="2024-03-09T10:00:")  # a week later
        hit = next(h for h in db.ask("w", "instrument sister").hits if h.atom.id == b[0])
        assert hit.parts["context"] == 0.0
        assert a


def test_context_weights_can_be_turned_off_per_ask() -> None:
    with dwbase.open(":memory:") as db:
        ids = chat(db, TURNS)
        hits = db.ask(
            "w", "instrument sister learning", weights={"context_prev": 0, "context_next": 0}
        ).hits
        assert all(h.parts["context"] == 0.0 for h in hits)
        assert ids[2] not in [h.atom.id for h in hits[:1]]


def test_weights_come_from_options_and_per_ask_overrides() -> None:
    ranking = RankingWeights(lexical=0.0, semantic=0.0, context_prev=0.0, context_next=0.0)
    with dwbase.open(":memory:", ranking=ranking) as db:
        chat(db, TURNS)
        assert all(h.parts["lexical"] == 0.0 for h in db.ask("w", "violin").hits)
        hits = db.ask("w", "violin", weights={"lexical": 1.0}).hits
        assert hits[0].atom.payload["text"].startswith("the violin")
        assert hits[0].parts["lexical"] == pytest.approx(1.0)
        with pytest.raises(InvalidInputError, match="unknown ranking weight 'bm25'"):
            db.ask("w", "violin", weights={"bm25": 1.0})


def test_recency_and_importance_modes_order_by_their_key() -> None:
    with dwbase.open(":memory:") as db:
        ids = chat(db, TURNS)
        assert [h.atom.id for h in db.ask("w", "violin", rank="recency").hits][:2] == [
            ids[5],
            ids[4],
        ]
        imp = db.remember(
            "w",
            "a",
            "observation",
            {"text": "old but vital"},
            importance=0.95,
            timestamp="2020-01-01T00:00:00Z",
        )
        assert db.ask("w", "violin", rank="importance").hits[0].atom.id == imp


def test_lexical_and_semantic_candidates_both_get_a_semantic_score() -> None:
    with dwbase.open(":memory:") as db:
        chat(db, TURNS)
        for hit in db.ask("w", "violin evening practice").hits[:3]:
            assert hit.parts["semantic"] > 0.0


def test_the_array_context_path_gives_exactly_the_pure_python_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("numpy")
    import random

    from dwbase import ask as ask_mod

    rng = random.Random(11)
    words = [f"w{i}" for i in range(60)]
    with dwbase.open(":memory:", trust={"bob": 0.9, "eve": 0.1}) as db:
        t = 0
        atoms = []
        for i in range(600):
            t += rng.choice([1, 30, 600, 2 * 3600, 3 * 3600])  # seconds: at and past the 2 h gap
            year = 1965 if i < 40 else 2024  # event times before 1970 too
            atoms.append(
                {
                    "world": "w",
                    "worker": rng.choice(["ann", "bob", "eve"]),
                    "kind": rng.choice(["message", "observation"]),
                    "importance": rng.random(),
                    "timestamp": f"{year}-01-01T00:00:00Z",
                    "payload": {"text": " ".join(rng.choice(words) for _ in range(8))},
                }
            )
            atoms[-1]["timestamp"] = f"{year}-01-{1 + (t // 86400) % 28:02d}T" + (
                f"{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}:{t % 60:02d}Z"
            )
        ids = db.remember_batch(atoms)
        db.remember(
            "w", "bob", payload={"text": "w1 w2"}, links=[{"target": ids[5], "kind": "supersedes"}]
        )
        questions = [" ".join(rng.sample(words, rng.randint(1, 4))) for _ in range(40)]
        variants: list[dict[str, object]] = [
            {},
            {"current_only": True},
            {"weights": {"context_next": 0.0}},
            {"filter": {"kinds": ["message"]}},
            {"limit": 25},
        ]

        def answers() -> list[object]:
            return [db.ask("w", q, **v).to_dict() for q in questions for v in variants]  # type: ignore[arg-type]

        monkeypatch.setattr(ask_mod, "ARRAYS", True)
        arrays = answers()
        monkeypatch.setattr(ask_mod, "ARRAYS", False)
        pure = answers()
    assert arrays == pure
    assert any(h["parts"]["context"] > 0 for a in pure for h in a["hits"])  # type: ignore[index]
