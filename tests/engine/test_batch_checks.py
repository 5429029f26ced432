"""A batch checks what its atoms share (world, worker, tag lists) once, and still refuses
every bad atom by its index, storing nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest

import dwbase
from dwbase.errors import InvalidInputError


def atom(**fields: Any) -> dict[str, Any]:
    return {"world": "w", "worker": "a", "payload": {"text": "hello"}, **fields}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"world": "not a world"}, "world"),
        ({"world": "quarantine:w"}, "world"),
        ({"worker": "a\x00"}, "worker"),
        ({"worker": ""}, "worker"),
        ({"labels": ["x", "policy:bogus=1"]}, "labels"),
        ({"labels": ["x", "y\n"]}, "labels"),
        ({"labels": [["x"]]}, "labels"),  # unhashable: still named
        ({"flags": ["ok", 3]}, "flags"),
        ({"payload": {"text": "a\ud800"}}, "payload_json"),
    ],
)
def test_a_bad_atom_after_good_ones_sharing_its_fields_refuses_the_batch(
    db: dwbase.Engine, bad: dict[str, Any], field: str
) -> None:
    good = atom(labels=["x"], flags=["ok"])
    with pytest.raises(InvalidInputError) as info:
        db.remember_batch([good, good, atom(**bad), good])
    assert info.value.details["index"] == 2
    assert info.value.details["field"] == field
    assert db.replay("w") == []


def test_the_same_lists_in_many_atoms_are_stored_with_each() -> None:
    with dwbase.open(":memory:") as db:
        labels = ["team:a", "team:b", "team:a"]
        ids = db.remember_batch([atom(labels=labels, flags=("f",)) for _ in range(20)])
        stored = [db.get(i) for i in ids]
        assert all(a.labels == ("team:a", "team:b") and a.flags == ("f",) for a in stored)
        labels.append("team:c")  # the caller's list, changed after the write: not seen
        assert db.get(ids[0]).labels == ("team:a", "team:b")


def test_a_payload_with_a_non_finite_number_is_still_held_in_a_batch() -> None:
    with dwbase.open(":memory:") as db:
        ids = db.remember_batch(
            [atom(payload={"loss": math.nan}), atom(payload={"text": "NaN is prose"})]
        )
        assert [i.held for i in ids] == [True, False]
