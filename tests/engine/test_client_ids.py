"""Ids chosen by the writer: validated, idempotent within a world, refused across worlds."""

from __future__ import annotations

from typing import Any

import pytest

import dwbase
from dwbase.errors import ConflictError, InvalidInputError
from dwbase.ids import new_id
from dwbase.security.caps import Caller


def atom(world: str = "demo", aid: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"world": world, "worker": "w", "payload": {"text": "disk full"}}
    if aid is not None:
        out["id"] = aid
    out.update(kw)
    return out


def test_a_chosen_id_is_kept(db: dwbase.Engine) -> None:
    aid = new_id()
    assert db.remember_atom(atom(aid=aid)) == aid
    assert db.get(aid).world == "demo"


def test_a_retried_batch_returns_the_same_ids_and_stores_nothing_twice(
    db: dwbase.Engine,
) -> None:
    batch = [atom(aid=new_id(), payload={"n": i}) for i in range(5)]
    batch.append(atom(aid=new_id(), payload_json='{"v": NaN}', payload=None))
    first = db.remember_batch(batch)
    again = db.remember_batch(batch)
    assert first == again == [a["id"] for a in batch]
    assert [i.held for i in again] == [False] * 5 + [True]
    assert again[5].held_reason == "impossible_number"
    assert [a.id for a in db.replay("demo")] == first[:5]
    assert [a.id for a in db.replay("quarantine:demo")] == first[5:]
    # A batch that repeats some ids and adds new ones stores only the new ones.
    more = [*batch[:2], atom(aid=new_id(), payload={"n": 99})]
    assert db.remember_batch(more)[:2] == first[:2]
    assert len(db.replay("demo")) == 6


def test_a_repeated_id_within_one_batch_is_stored_once(db: dwbase.Engine) -> None:
    aid = new_id()
    assert db.remember_batch([atom(aid=aid), atom(aid=aid)]) == [aid, aid]
    assert len(db.replay("demo")) == 1


def test_an_id_taken_in_another_world_is_a_conflict_that_reveals_nothing(
    db: dwbase.Engine,
) -> None:
    secret = db.remember_atom(atom("secret", aid=new_id(), payload={"text": "launch codes"}))
    writer = Caller(worker="mallory", write=("demo",), read=("demo",))
    ok = new_id()
    with pytest.raises(ConflictError) as info:
        db.remember_batch([atom(aid=ok), atom(aid=secret)], caller=writer)
    err = info.value
    assert "secret" not in err.message and "launch" not in err.message
    assert "secret" not in str(err.details) and "launch" not in str(err.details)
    assert err.details.get("index") == 1
    # All or nothing: the other atom was not stored either, and the secret atom is unchanged.
    assert db.replay("demo") == []
    assert db.get(secret).payload == {"text": "launch codes"}
    assert db.get(secret).worker == "w"


def test_an_id_of_a_removed_atom_is_never_reused(db: dwbase.Engine, clock: Any) -> None:
    aid = db.remember_atom(atom("old", aid=new_id()))
    db.set_policy("old", retention_days=1)
    clock.advance(3 * 86400)
    assert db.gc().evicted == 1
    with pytest.raises(ConflictError):
        db.remember_atom(atom("old", aid=aid))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x",
        "not-a-uuid-at-all-but-36-chars-long!",
        "0190F3C2-7D1E-7A4B-8C3D-2E1F0A9B8C7D",  # not canonical (upper case)
        "0190f3c27d1e7a4b8c3d2e1f0a9b8c7d",  # no hyphens
        "0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d\n",
        "../../etc/passwd",
        "a" * 300,
        12345,
    ],
)
def test_a_chosen_id_must_be_a_canonical_uuid(db: dwbase.Engine, bad: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        db.remember_atom(atom(aid=bad))
    assert info.value.details["field"] == "id"
    assert "UUID" in info.value.message
    assert db.replay("demo") == []


def test_single_remembers_through_group_commit_honour_chosen_ids(db: dwbase.Engine) -> None:
    secret = db.remember_atom(atom("secret", aid=new_id()))
    aid = new_id()
    answers = db.remember_each(
        [(atom(aid=aid), None), (atom(aid=aid), None), (atom(aid=secret), None)]
    )
    assert answers[0] == aid and answers[1] == aid
    assert isinstance(answers[2], ConflictError)
    assert [a.id for a in db.replay("demo")] == [aid]
    assert db.remember_each([(atom(aid=aid), None)]) == [aid]
    assert len(db.replay("demo")) == 1
