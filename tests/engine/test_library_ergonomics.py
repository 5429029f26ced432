"""Library calls that cannot mean what they say are errors; reads take filters one way; the
objects a reader gets back say what they are when printed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import dwbase
from dwbase import CapabilityDeniedError, InvalidInputError
from dwbase.model import Answer, Atom, Hit

# ------------------------------------------------------------------------------ remember


def test_a_remember_without_a_payload_is_refused_naming_the_three_forms(
    db: dwbase.Engine,
) -> None:
    with pytest.raises(InvalidInputError) as err:
        db.remember("demo", "some text")  # the second argument is the worker
    msg = err.value.message
    assert "payload=" in msg and "payload_json=" in msg and "text=" in msg
    assert "text='some text'" in msg  # the likely meaning, offered
    assert err.value.details == {"field": "payload"}
    assert db.storage.count() == 0


@pytest.mark.parametrize(
    "forms",
    [
        {"payload": {"text": "a"}, "text": "a"},
        {"payload_json": '{"text": "a"}', "text": "a"},
        {"payload": {"text": "a"}, "payload_json": '{"text": "a"}'},
    ],
)
def test_two_payload_forms_at_once_are_refused(db: dwbase.Engine, forms: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="only one of payload=, payload_json= or text="):
        db.remember("demo", "agent-1", **forms)
    assert db.storage.count() == 0


def test_text_is_the_short_form_of_a_text_payload(db: dwbase.Engine) -> None:
    short = db.remember("demo", "agent-1", text="checkout latency 820ms", importance=0.9)
    long = db.remember("demo", "agent-1", payload={"text": "checkout latency 820ms"})
    assert db.get(short).payload == db.get(long).payload == {"text": "checkout latency 820ms"}
    assert db.get(short).payload_json == db.get(long).payload_json
    assert db.ask("demo", "checkout latency").hits[0].atom.id in (short, long)


def test_text_must_be_a_string(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match="text must be a string"):
        db.remember("demo", "agent-1", text=42)  # type: ignore[arg-type]


def test_the_async_engine_refuses_the_same_remember(db: dwbase.Engine) -> None:
    import asyncio

    async def main() -> None:
        adb = dwbase.AsyncDWBase(db)
        with pytest.raises(InvalidInputError, match="text="):
            await adb.remember("demo", "some text")
        aid = await adb.remember("demo", "agent-1", text="hello")
        assert db.get(aid).payload == {"text": "hello"}

    asyncio.run(main())


# ------------------------------------------------------------------------------ filters


def _store(db: dwbase.Engine) -> None:
    db.remember(
        "demo", "a", "observation", text="checkout slow", labels=["web"], flags=["hot"],
        timestamp="2024-05-01T10:00:00Z",
    )  # fmt: skip
    db.remember(
        "demo", "a", "plan", text="checkout cache plan", labels=["web"],
        timestamp="2024-05-02T10:00:00Z",
    )  # fmt: skip
    db.remember(
        "demo", "a", "observation", text="checkout fine again", flags=["hot"],
        timestamp="2024-05-03T10:00:00Z",
    )  # fmt: skip


@pytest.mark.parametrize(
    "keywords",
    [
        {"kinds": ["observation"]},
        {"labels": ["web"]},
        {"flags": ["hot"]},
        {"since": "2024-05-02T00:00:00Z"},
        {"until": "2024-05-02T10:00:00Z"},
        {"kinds": ["observation"], "flags": ["hot"], "since": "2024-05-02T00:00:00Z"},
    ],
)
def test_ask_takes_the_same_keyword_filters_as_replay(
    db: dwbase.Engine, keywords: dict[str, Any]
) -> None:
    _store(db)
    replayed = {a.id for a in db.replay("demo", **keywords)}
    asked = {h.atom.id for h in db.ask("demo", "checkout", **keywords).hits}
    assert asked == replayed and 0 < len(replayed) < 3
    # The keywords and filter= are the same thing, on both reads.
    assert {h.atom.id for h in db.ask("demo", "checkout", filter=keywords).hits} == replayed
    assert {a.id for a in db.replay("demo", filter=keywords)} == replayed


def test_ask_keywords_lie_over_its_filter_like_replays(db: dwbase.Engine) -> None:
    _store(db)
    flt = {"kinds": ["plan"], "labels": ["web"]}
    replayed = [a.payload["text"] for a in db.replay("demo", filter=flt, kinds=["observation"])]
    answer = db.ask("demo", "x", filter=flt, kinds=["observation"])
    asked = [h.atom.payload["text"] for h in answer.hits]
    assert replayed == asked == ["checkout slow"]


def test_ask_limit_and_filter_limit_both_cap_the_hits(db: dwbase.Engine) -> None:
    _store(db)
    assert len(db.ask("demo", "checkout", limit=2).hits) == 2
    assert len(db.ask("demo", "checkout", filter={"limit": 1}).hits) == 1
    assert len(db.replay("demo", limit=2)) == 2


# ------------------------------------------------------------------------------ reprs


def test_atoms_hits_and_answers_print_short_and_useful(db: dwbase.Engine) -> None:
    aid = db.remember("demo", "agent-1", text="checkout latency 820ms")
    long = db.remember("demo", "agent-1", payload={"n": 1, "note": "x" * 200})
    atom = db.get(aid)
    assert repr(atom) == (
        f"<Atom {aid[:8]}…{aid[-4:]} demo observation by agent-1 'checkout latency 820ms'>"
    )
    short = repr(db.get(long))
    assert len(short) < 120 and short.endswith("…'>") and '{"n":1' in short.replace(" ", "")
    answer = db.ask("demo", "checkout latency")
    hit = answer.hits[0]
    assert repr(hit) == f"<Hit {hit.score:.3f} {aid[:8]}…{aid[-4:]} 'checkout latency 820ms'>"
    assert repr(answer).startswith("<Answer demo: 2 hits, top 'checkout latency 820ms'")
    # Printing changed; equality did not.
    assert dataclasses.replace(atom) == atom and atom != db.get(long)
    assert Hit(atom, 1.0, {}, ()) == Hit(atom, 1.0, {}, ())
    assert Answer("w", "", [], []) == Answer("w", "", [], [])


def test_an_empty_answer_prints_its_warnings(db: dwbase.Engine) -> None:
    answer = db.ask("nowhere", "anything")
    assert repr(answer).startswith("<Answer nowhere: 0 hits; warning: world 'nowhere'")


def test_an_atom_of_a_non_text_payload_shows_its_json() -> None:
    atom = Atom("id-1", "w", "a", "plan", "2024-01-01T00:00:00Z", 0.5, '{"step": 1}')
    assert repr(atom) == "<Atom id-1 w plan by a '{\"step\": 1}'>"


# ------------------------------------------------------------------------------ missing worlds


def test_ask_on_a_world_without_atoms_says_so(db: dwbase.Engine) -> None:
    answer = db.ask("nowhere", "anything at all?")
    assert answer.hits == [] and answer.text == ""
    assert answer.warnings == [
        "world 'nowhere' holds no atoms: nothing was remembered there (or all of it was removed)"
    ]
    assert db.replay("nowhere") == []


def test_a_world_with_atoms_that_no_filter_matches_gets_no_such_warning(
    db: dwbase.Engine,
) -> None:
    db.remember("demo", "a", text="checkout slow")
    answer = db.ask("demo", "checkout", kinds=["plan"])
    assert answer.hits == [] and answer.warnings == []
    db.create_world("fresh")  # a created world exists, though nothing was remembered there
    assert db.ask("fresh", "anything").warnings == []


def test_a_world_whose_only_atoms_are_held_exists(db: dwbase.Engine) -> None:
    aid = db.remember("ml", "trainer", payload_json='{"loss": NaN}')
    assert aid.held
    assert db.ask("ml", "loss").warnings == []
    assert db.ask("quarantine:ml", "loss").hits[0].atom.id == aid


def test_a_caller_who_may_not_read_learns_nothing_of_missing_worlds(db: dwbase.Engine) -> None:
    db.remember("secret", "a", text="the vault code is 1234")
    caller = dwbase.Caller(worker="w", read=("demo",), write=("demo",))
    answers = []
    for world in ("secret", "nowhere"):
        with pytest.raises(CapabilityDeniedError) as asked:
            db.ask(world, "vault", caller=caller)
        with pytest.raises(CapabilityDeniedError) as replayed:
            db.replay(world, caller=caller)
        for err in (asked, replayed):
            answers.append((err.value.code, err.value.message.replace(world, "W")))
    assert len(set(answers)) == 1
