"""Publishing one atom to many subscribers costs per atom, not per subscriber, where it can."""

from __future__ import annotations

import pytest

import dwbase
from dwbase.timeutil import parse_instant


def test_an_atom_is_read_once_for_all_its_subscribers(
    db: dwbase.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []

    def counting(value: str, *, field: str = "timestamp") -> int:
        parsed.append(value)
        return parse_instant(value, field=field)

    monkeypatch.setattr("dwbase.engine.observe.parse_instant", counting)
    plain = [db.observe_start("demo") for _ in range(20)]
    timed = [db.observe_start("demo", filter={"since": "2020-01-01T00:00:00Z"}) for _ in range(20)]
    kinds = db.observe_start("demo", filter={"kinds": ["plan"]})
    db.remember("demo", "a", "plan", {"text": "one atom, 41 subscribers"})
    db.remember("demo", "a", "observation", {"text": "not a plan"})
    assert all(len(db.observe_poll(h)) == 2 for h in plain + timed)
    assert [a.kind for a in db.observe_poll(kinds)] == ["plan"]
    # No filter needs no event time; the 20 "since" filters share one reading per atom.
    assert len(parsed) <= 2
