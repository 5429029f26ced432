from __future__ import annotations

import pytest

import dwbase
from dwbase import InvalidHandleError, InvalidInputError

from .conftest import FakeClock


def put(db: dwbase.Engine, text: str, world: str = "demo", **kw: object) -> str:
    return db.remember(world, "agent", payload={"text": text}, **kw)  # type: ignore[arg-type]


def test_observe_delivers_new_atoms_of_the_world_only(db: dwbase.Engine) -> None:
    h = db.observe_start("demo")
    a = put(db, "one")
    put(db, "elsewhere", world="other")
    assert [x.id for x in db.observe_poll(h)] == [a]
    assert db.observe_poll(h) == []


def test_observe_filter_means_the_same_as_replay(db: dwbase.Engine) -> None:
    h = db.observe_start("demo", filter={"kinds": ["plan"], "labels": ["x"]})
    put(db, "no", kind="plan")
    yes = put(db, "yes", kind="plan", labels=["x", "y"])
    put(db, "no", kind="action", labels=["x"])
    assert [x.id for x in db.observe_poll(h)] == [yes]
    assert [x.id for x in db.replay("demo", kinds=["plan"], labels=["x"])] == [yes]


def test_drop_oldest_keeps_the_newest_and_counts_drops(db: dwbase.Engine) -> None:
    h = db.observe_start("demo", capacity=3)
    ids = [put(db, f"n{i}") for i in range(5)]
    stats = db.observe_stats(h)
    assert (stats.queued_count, stats.dropped_count) == (3, 2)
    assert stats.warnings
    assert [x.id for x in db.observe_poll(h, 10)] == ids[2:]


def test_drop_newest_keeps_the_oldest(db: dwbase.Engine) -> None:
    h = db.observe_start("demo", capacity=3, drop_policy="drop_newest")
    ids = [put(db, f"n{i}") for i in range(5)]
    assert [x.id for x in db.observe_poll(h, 10)] == ids[:3]
    assert db.observe_stats(h).dropped_count == 2


def test_unknown_drop_policy_is_invalid_input(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError):
        db.observe_start("demo", drop_policy="drop_random")


def test_abandoned_subscriptions_expire(db: dwbase.Engine, clock: FakeClock) -> None:
    h = db.observe_start("demo")
    clock.advance(db.options.observe_idle_ttl_s + 1)
    put(db, "after expiry")
    with pytest.raises(InvalidHandleError):
        db.observe_poll(h)


def test_stopped_handle_is_invalid(db: dwbase.Engine) -> None:
    h = db.observe_start("demo")
    db.observe_stop(h)
    with pytest.raises(InvalidHandleError) as err:
        db.observe_stats(h)
    assert err.value.code == "invalid_handle"


def test_resume_from_cursor_has_no_gaps_or_duplicates(db: dwbase.Engine) -> None:
    h = db.observe_start("demo", capacity=2)
    first = [put(db, f"a{i}") for i in range(2)]
    got = db.observe_poll(h)
    assert [x.id for x in got] == first
    cursor = db.observe_stats(h).cursor
    assert cursor == first[-1]
    missed = [put(db, f"b{i}") for i in range(5)]  # overflows the tiny queue
    assert db.observe_stats(h).dropped_count == 3
    db.observe_stop(h)
    h2 = db.observe_start("demo", after=cursor, capacity=100)
    later = put(db, "c")
    assert [x.id for x in db.observe_poll(h2, 100)] == [*missed, later]


def test_observe_publishes_without_storing(db: dwbase.Engine) -> None:
    h = db.observe_start("demo")
    atom = dwbase.Atom(
        id="ephemeral-1",
        world="demo",
        worker="a",
        kind="message",
        timestamp="2026-01-01T00:00:00Z",
        importance=0.1,
        payload_json='{"text": "typing..."}',
    )
    assert db.observe(atom) == 1
    assert [x.id for x in db.observe_poll(h)] == ["ephemeral-1"]
    assert db.replay("demo") == []


def test_observer_without_read_permission_sees_nothing(db: dwbase.Engine) -> None:
    reader = dwbase.Caller(read=("public*",), name="token r")
    with pytest.raises(dwbase.CapabilityDeniedError):
        db.observe_start("secret", caller=reader)
    h = db.observe_start(caller=reader)
    put(db, "hidden", world="secret")
    shown = put(db, "shown", world="public-news")
    assert [x.id for x in db.observe_poll(h)] == [shown]


def test_a_cursor_from_another_world_is_not_found(db: dwbase.Engine) -> None:
    elsewhere = put(db, "secret", world="other")
    with pytest.raises(dwbase.NotFoundError):
        db.observe_start("demo", after=elsewhere)
    with pytest.raises(dwbase.NotFoundError):
        db.replay("demo", after=elsewhere)


def test_kinds_must_be_a_list(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError):
        db.replay("demo", filter={"kinds": 5})


def test_the_process_wide_subscription_cap_is_a_limit_error_naming_it(db: dwbase.Engine) -> None:
    from dwbase.errors import LimitExceededError

    db.hub.max_subscriptions = 3
    handles = [db.observe_start("demo") for _ in range(3)]
    with pytest.raises(LimitExceededError, match="limit 3") as info:
        db.observe_start("demo")
    assert info.value.code == "limit_exceeded"
    assert info.value.details["limit"] == "observe_subscriptions"
    db.observe_stop(handles[0])
    db.observe_start("demo")  # a slot came back
