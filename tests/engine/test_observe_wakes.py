"""Subscriptions with a waker: the hub calls it instead of making the consumer poll.

A waker is what the node's SSE stream waits on (tests/node/test_sse_wakes.py): called outside
the hub's lock when atoms queue for an empty subscription and when it ends; atoms another
process stores reach it through the engine's own look at the store, not the consumer's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import dwbase
from dwbase import InvalidHandleError
from dwbase.background import BackgroundFailures
from dwbase.engine.sync import Watcher
from dwbase.errors import StorageError
from dwbase.stream import Hub

from .conftest import FakeClock


def everything(atom: object, seq: object) -> bool:
    return True


def test_the_hub_wakes_an_empty_subscription_outside_its_lock(
    db: dwbase.Engine,
) -> None:
    calls: list[bool] = []

    def waker() -> None:
        free = db.hub._lock.acquire(blocking=False)  # the hub's lock is not held here
        if free:
            db.hub._lock.release()
        calls.append(free)

    h = db.observe_start("demo", waker=waker)
    db.remember("demo", "agent", payload={"n": 1})
    assert calls == [True]
    db.remember("demo", "agent", payload={"n": 2})  # the queue was not empty: no second call
    assert calls == [True]
    assert len(db.observe_poll(h)) == 2
    db.remember("demo", "agent", payload={"n": 3})
    assert calls == [True, True]
    db.remember("other", "agent", payload={"n": 4})  # not for this subscription
    assert calls == [True, True]


def test_stopping_a_subscription_wakes_its_waiter(db: dwbase.Engine) -> None:
    calls: list[str] = []
    h = db.observe_start("demo", waker=lambda: calls.append("woken"))
    db.observe_stop(h)
    assert calls == ["woken"]


def test_a_subscription_with_a_waker_does_not_expire_while_it_waits() -> None:
    clock = FakeClock()
    hub = Hub(clock, idle_ttl_s=10)
    waiting = hub.subscribe(everything, waker=lambda: None)
    polled = hub.subscribe(everything)  # and polled by nobody
    clock.advance(60)
    with pytest.raises(InvalidHandleError):
        hub.stats(polled)  # expired
    assert hub.stats(waiting).queued_count == 0  # its owner waits on it, and stops it
    assert len(hub) == 1
    assert hub.waiting() == 1
    hub.stop(waiting)
    assert hub.waiting() == 0


def test_a_failing_waker_does_not_fail_the_write(db: dwbase.Engine) -> None:
    def waker() -> None:
        raise RuntimeError("event loop closed")

    h = db.observe_start("demo", waker=waker)
    aid = db.remember("demo", "agent", payload={"n": 1})
    assert [a.id for a in db.observe_poll(h)] == [aid]


def test_another_processes_atom_wakes_the_subscription_without_a_poll(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    with dwbase.open(path) as node, dwbase.open(path) as other:
        woken = threading.Event()
        h = node.observe_start("demo", waker=woken.set)
        aid = other.remember("demo", "cli", payload={"n": 1})  # another connection commits
        assert woken.wait(2.0), "the engine never looked for the other writer's atom"
        assert [a.id for a in node.observe_poll(h)] == [aid]
        node.observe_stop(h)


def test_a_failing_look_at_the_store_is_counted_and_the_watcher_goes_on() -> None:
    looks: list[int] = []
    done = threading.Event()

    def sync() -> None:
        looks.append(1)
        if len(looks) >= 3:
            done.set()
        raise StorageError("disk gone")

    background = BackgroundFailures()
    watcher = Watcher(sync, lambda: 1, background, interval_s=0.001)
    watcher.wake()
    try:
        assert done.wait(2.0)
    finally:
        watcher.close()
    observe = background.snapshot()["observe"]
    assert observe["failing"] and observe["failures"] >= 3
    assert observe["last_error"] == "StorageError: disk gone"


def test_the_watcher_stops_when_no_subscription_waits() -> None:
    waiting = [1]
    looked = threading.Event()

    def sync() -> None:
        looked.set()

    watcher = Watcher(sync, lambda: waiting[0], BackgroundFailures(), interval_s=0.001)
    watcher.wake()
    assert looked.wait(2.0)
    waiting[0] = 0
    deadline = time.monotonic() + 2.0
    while watcher._thread is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert watcher._thread is None
    looked.clear()
    waiting[0] = 1
    watcher.wake()  # a new waiting subscription starts it again
    assert looked.wait(2.0)
    watcher.close()
