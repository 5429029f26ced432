"""Policy atoms live in ``policy:<world>`` (as in the original DWBase), not in the world."""

from __future__ import annotations

import pytest

import dwbase
from dwbase.errors import CapabilityDeniedError
from dwbase.security.caps import Caller


def test_set_policy_keeps_the_worlds_own_memory_clean() -> None:
    with dwbase.open(":memory:") as db:
        note = db.remember("demo", "a", "observation", {"text": "what is the retention policy?"})
        pid = db.set_policy("demo", retention_days=30)
        assert [a.id for a in db.replay("demo")] == [note]
        assert [a.id for a in db.replay("policy:demo")] == [pid]
        assert [h.atom.id for h in db.ask("demo", "retention policy").hits] == [note]
        assert db.policy("demo").retention_days == 30


def test_policy_worlds_themselves_take_their_policy_directly() -> None:
    with dwbase.open(":memory:") as db:
        pid = db.set_policy("policy:demo", min_importance=0.5)
        tid = db.set_policy("tenant:acme/policy", retention_min_days=90)
        assert [a.id for a in db.replay("policy:demo")] == [pid]
        assert [a.id for a in db.replay("tenant:acme/policy")] == [tid]
        assert db.policy("demo").min_importance == 0.5


def test_the_policy_capability_is_checked_against_the_governed_world() -> None:
    steward = Caller(worker="steward", read=("demo",), write=("demo",), policy=("demo",))
    outsider = Caller(worker="w", read=("*",), write=("*",), policy=("other",))
    with dwbase.open(":memory:") as db:
        pid = db.set_policy("demo", retention_days=30, caller=steward)
        assert db.get(pid).worker == "steward"
        with pytest.raises(CapabilityDeniedError):
            db.set_policy("demo", retention_days=1, caller=outsider)
        assert db.policy("demo").retention_days == 30
