"""The queue the read lane and the ask workers take callers' jobs from."""

from __future__ import annotations

import pytest

from dwbase.node.fair import FairQueue


def test_callers_are_served_in_turn_each_in_its_own_order() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(4):
        q.push("a", f"a{i}")
    q.push("b", "b0")
    q.push("c", "c0")
    q.push("b", "b1")
    assert len(q) == 7
    taken = [q.pop() for _ in range(7)]
    # a sent four first, yet b and c wait behind only a's first
    assert taken == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert not q
    with pytest.raises(IndexError):
        q.pop()


def test_a_caller_just_served_waits_for_callers_not_served_yet() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(3):
        q.push("a", f"a{i}")
    assert q.pop() == "a0"  # a's first job runs; its two others wait
    q.push("b", "b0")  # b arrives later but has not been served
    assert q.drain() == ["b0", "a1", "a2"]
    q.push("a", "a3")
    q.push("c", "c0")
    assert q.drain() == ["c0", "a3"]  # a was served last
    assert len(q) == 0


def test_keys_that_were_all_served_are_forgotten() -> None:
    q: FairQueue[int] = FairQueue()
    for i in range(1000):
        q.push(f"caller-{i}", i)
        assert q.pop() == i
    assert len(q._ends) <= 65  # bounded however many callers came and went
