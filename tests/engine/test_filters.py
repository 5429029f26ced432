"""The engine's one filter type: an AtomFilter, or the mapping of its fields, means one thing."""

from __future__ import annotations

import pytest

import dwbase
from dwbase import AtomFilter, InvalidInputError
from dwbase.engine import filters


def test_a_mapping_becomes_the_atom_filter_of_the_same_fields() -> None:
    flt = filters.as_filter({"kinds": ["plan"], "labels": ("x",), "since": None, "limit": 3})
    assert flt == AtomFilter(kinds=("plan",), labels=("x",), limit=3)
    assert filters.as_filter({"kinds": "plan"}) == AtomFilter(kinds=("plan",))
    assert filters.as_filter(None) == AtomFilter()


def test_unknown_filter_fields_are_refused_naming_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError) as err:
        filters.as_filter({"kind": ["plan"]})
    assert "unknown filter field(s): kind" in err.value.message
    assert "valid: world, kinds, labels, flags, since, until, limit" in err.value.message
    with pytest.raises(InvalidInputError, match="labels must be a list of strings"):
        filters.as_filter({"labels": "x"})


def test_keywords_lay_over_the_filter_and_a_filter_world_must_match(db: dwbase.Engine) -> None:
    flt = filters.merge_filter("demo", AtomFilter(kinds=("plan",)), labels=["x"], limit=None)
    assert flt == AtomFilter(kinds=("plan",), labels=("x",))
    with pytest.raises(InvalidInputError, match="filter world 'other' differs"):
        filters.merge_filter("demo", {"world": "other"})


def test_an_atom_filter_a_mapping_and_keywords_select_the_same_atoms(db: dwbase.Engine) -> None:
    db.remember("demo", "a", "plan", {"text": "no"})
    yes = db.remember("demo", "a", "plan", {"text": "yes"}, labels=["x"])
    db.remember("demo", "a", "action", {"text": "no"}, labels=["x"])
    by_type = db.replay("demo", filter=AtomFilter(kinds=("plan",), labels=("x",)))
    by_mapping = db.replay("demo", filter={"kinds": ["plan"], "labels": ["x"]})
    by_keywords = db.replay("demo", kinds=["plan"], labels=["x"])
    assert [a.id for a in by_type] == [a.id for a in by_mapping] == [a.id for a in by_keywords]
    assert [a.id for a in by_type] == [yes]
