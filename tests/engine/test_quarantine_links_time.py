from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

import dwbase
from dwbase import AtomId, Caller

from .conftest import FakeClock


def put(
    db: dwbase.Engine,
    text: str,
    world: str = "demo",
    *,
    worker: str = "agent",
    importance: float = 0.5,
    timestamp: str = "",
    links: Sequence[Mapping[str, str]] = (),
    caller: Caller | None = None,
) -> AtomId:
    return db.remember(
        world,
        worker,
        payload={"text": text},
        importance=importance,
        timestamp=timestamp,
        links=links,
        caller=caller,
    )


@pytest.mark.parametrize(
    "text",
    [
        "tenant finance report",
        "infinite scroll",
        "nano banana",
        "inflation at 3%",
        "nanoseconds and infinity-pool",
    ],
)
def test_words_that_contain_nan_or_inf_are_not_quarantined(db: dwbase.Engine, text: str) -> None:
    aid = put(db, text)
    assert aid.quarantined is None
    assert db.get(aid).world == "demo"


@pytest.mark.parametrize("text", ["Infinity Ward shipped", "latency: nan", "value -inf"])
def test_standalone_nan_and_infinity_words_are_prose_not_numbers(
    db: dwbase.Engine, text: str
) -> None:
    assert put(db, text).quarantined is None


def held(db: dwbase.Engine, text: str, value: float = math.nan) -> AtomId:
    return db.remember("demo", "agent", payload={"text": text, "value": value})


def test_real_nan_values_are_quarantined(db: dwbase.Engine) -> None:
    a = db.remember("demo", "w", payload={"text": "latency", "ms": math.nan})
    b = db.remember_atom(
        {
            "world": "demo",
            "worker": "w",
            "kind": "observation",
            "importance": 0.5,
            "payload_json": '{"latency": NaN}',
        }
    )
    assert a.quarantined == b.quarantined == "impossible_number"
    held = db.get(a)
    assert held.world == "quarantine:demo" and "suspect" in held.flags
    assert db.replay("demo") == []
    assert db.ask("demo", "latency").hits == []
    assert {x.id for x in db.replay("quarantine:demo")} == {a, b}
    assert db.ask("quarantine:demo", "latency").hits
    assert db.counters.quarantine_total == 2


def test_low_trust_writer_with_high_importance_is_quarantined(clock: FakeClock) -> None:
    db = dwbase.open(":memory:", clock=clock, trust={"shady": 0.1})
    assert put(db, "all is fine", worker="shady", importance=0.95).quarantined == "low_trust"
    assert put(db, "all is fine", worker="shady", importance=0.3).quarantined is None


def test_bursts_are_quarantined_when_enabled(clock: FakeClock) -> None:
    from dwbase.quarantine import QuarantineConfig

    db = dwbase.open(
        ":memory:", clock=clock, quarantine=QuarantineConfig(burst_count=3, burst_window_s=1.0)
    )
    reasons = [put(db, f"spam {i}").quarantined for i in range(5)]
    assert reasons == [None, None, None, "burst", "burst"]
    clock.advance(2)
    assert put(db, "calm").quarantined is None


def test_quarantine_release_and_drop(db: dwbase.Engine) -> None:
    a = held(db, "value")
    b = held(db, "value", -math.inf)
    assert {x.id for x in db.quarantine_list()} == {a, b}
    db.quarantine_release(a)
    assert db.get(a).world == "demo"
    assert [h.atom.id for h in db.ask("demo", "value").hits] == [a]
    db.quarantine_drop(b)
    with pytest.raises(dwbase.NotFoundError):
        db.get(b)
    assert db.quarantine_list() == []
    assert db.check().ok


def test_superseded_atom_ranks_below_its_successor(db: dwbase.Engine) -> None:
    old = put(db, "deploy window is friday evening")
    new = put(db, "deploy window is monday morning", links=[{"target": old, "kind": "supersedes"}])
    put(db, "the deploy window was discussed")
    hits = db.ask("demo", "when is the deploy window?").hits
    order = [h.atom.id for h in hits]
    assert order.index(new) < order.index(old)
    by_id = {h.atom.id: h for h in hits}
    assert by_id[old].parts["links"] == -1.0
    current = [h.atom.id for h in db.ask("demo", "deploy window", current_only=True).hits]
    assert old not in current and new in current
    assert old not in [a.id for a in db.replay("demo", current_only=True)]


def test_confirmations_promote_and_contradictions_demote(db: dwbase.Engine) -> None:
    a = put(db, "cache hit rate is 90%")
    b = put(db, "cache hit rate is 40%")
    put(db, "confirmed", links=[{"target": a, "kind": "confirms"}])
    put(
        db,
        "disputed",
        links=[{"target": b, "kind": "contradicts"}, {"target": b, "kind": "references"}],
    )
    parts = {h.atom.id: h.parts["links"] for h in db.ask("demo", "cache hit rate").hits}
    assert parts[a] == pytest.approx(0.2)
    assert parts[b] == pytest.approx(-0.3)


def test_every_hit_explains_its_score(db: dwbase.Engine) -> None:
    put(db, "checkout latency 820ms", importance=0.9)
    hit = db.ask("demo", "checkout latency").hits[0]
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
    assert "lexical" in hit.sources


def test_rank_modes_order_by_recency_or_importance(db: dwbase.Engine, clock: FakeClock) -> None:
    a = put(db, "a", importance=0.9, timestamp="2025-01-01T00:00:00Z")
    b = put(db, "b", importance=0.1, timestamp="2025-06-01T00:00:00Z")
    c = put(db, "c", importance=0.5, timestamp="2025-03-01T00:00:00Z")
    assert [h.atom.id for h in db.ask("demo", "", rank="recency").hits] == [b, c, a]
    assert [h.atom.id for h in db.ask("demo", "", rank="importance").hits] == [a, c, b]
    with pytest.raises(dwbase.InvalidInputError):
        db.ask("demo", "x", rank="random")


def test_as_of_reads_what_the_store_knew_then(db: dwbase.Engine, clock: FakeClock) -> None:
    first = put(db, "first fact")
    then = "2026-01-01T00:00:30Z"
    clock.advance(60)
    second = put(db, "second fact", links=[{"target": first, "kind": "supersedes"}])
    assert [a.id for a in db.replay("demo", as_of=then)] == [first]
    hits = db.ask("demo", "fact", as_of=then).hits
    assert [h.atom.id for h in hits] == [first]
    assert hits[0].parts["links"] == 0.0  # the superseding atom did not exist yet
    assert {a.id for a in db.replay("demo")} == {first, second}


def test_event_time_filters_are_inclusive_and_compare_instants(db: dwbase.Engine) -> None:
    a = put(db, "a", timestamp="2025-01-01T10:00:00+02:00")  # 08:00Z
    b = put(db, "b", timestamp="2025-01-01T09:00:00Z")
    got = db.replay("demo", since="2025-01-01T08:00:00Z", until="2025-01-01T09:00:00Z")
    assert [x.id for x in got] == [a, b]
    assert [x.id for x in db.replay("demo", since="2025-01-01T08:00:00.000001Z")] == [b]
    assert [x.id for x in db.replay("demo", order="event", limit=1)] == [a]


def test_read_paths_refuse_worlds_the_caller_may_not_read(db: dwbase.Engine) -> None:
    secret = put(db, "secret plan", world="secret")
    caller = dwbase.Caller(read=("public",), write=("public",))
    with pytest.raises(dwbase.CapabilityDeniedError):
        db.ask("secret", "plan", caller=caller)
    with pytest.raises(dwbase.CapabilityDeniedError):
        db.replay("secret", caller=caller)
    with pytest.raises(dwbase.NotFoundError):
        db.get(secret, caller=caller)
    with pytest.raises(dwbase.CapabilityDeniedError):
        put(db, "x", world="secret", caller=caller)


def test_authenticated_caller_writes_as_itself(db: dwbase.Engine) -> None:
    caller = dwbase.Caller(worker="token-worker")
    aid = db.remember("demo", "someone-else", payload={"text": "x"}, caller=caller)
    assert db.get(aid).worker == "token-worker"
