"""The capability model in the engine: scoped operators, policy, world management, links.

Every check lives in the engine, so these run against the library with no node involved.
The embedded owner (``caller=None``) keeps every capability.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import dwbase
from dwbase.errors import CapabilityDeniedError, InvalidInputError, NotFoundError
from dwbase.security.caps import Caller
from dwbase.security.tokens import TokenStore

DEMO_WRITER = Caller(worker="w", read=("demo",), write=("demo",), name="demo writer")


def held(db: dwbase.Engine, world: str) -> str:
    aid = db.remember(world, "seed", "observation", {"reading": float("nan")})
    assert aid.quarantined
    return str(aid)


def test_a_scoped_operators_list_is_filled_to_its_limit_past_other_worlds_held_atoms(
    db: dwbase.Engine,
) -> None:
    ops = Caller(worker="ops", read=("demo",), write=("demo",), operate=("demo",))
    others = [held(db, "secret") for _ in range(5)]
    mine = [held(db, "demo") for _ in range(3)]
    assert len(db.quarantine_list(limit=100)) == 8
    listed = [a.id for a in db.quarantine_list(limit=2, caller=ops)]
    assert len(listed) == 2 and set(listed) <= set(mine)
    assert sorted(a.id for a in db.quarantine_list(limit=3, caller=ops)) == sorted(mine)
    assert sorted(a.id for a in db.quarantine_list(limit=100, caller=ops)) == sorted(mine)
    assert not set(others) & {a.id for a in db.quarantine_list(limit=100, caller=ops)}


def test_a_scoped_admin_token_cannot_release_or_drop_a_held_atom_of_another_world(
    db: dwbase.Engine, tmp_path: Path
) -> None:
    _, info = TokenStore(str(tmp_path / "tokens.json")).create("ops", read=["demo"], admin=True)
    ops = info.caller()
    secret_held, demo_held = held(db, "secret"), held(db, "demo")
    for action in (db.quarantine_release, db.quarantine_drop):
        with pytest.raises(CapabilityDeniedError):
            action(secret_held, caller=ops)
    assert [a.id for a in db.quarantine_list("secret")] == [secret_held]  # still held
    assert [a.id for a in db.quarantine_list(caller=ops)] == [demo_held]
    with pytest.raises(CapabilityDeniedError):
        db.quarantine_list("secret", caller=ops)
    assert db.quarantine_release(demo_held, caller=ops).world == "demo"
    assert db.get(demo_held).world == "demo"


def test_operator_actions_need_the_operator_capability(db: dwbase.Engine) -> None:
    demo_held = held(db, "demo")
    for call in (
        lambda: db.quarantine_release(demo_held, caller=DEMO_WRITER),
        lambda: db.quarantine_drop(demo_held, caller=DEMO_WRITER),
        lambda: db.quarantine_list(caller=DEMO_WRITER),
        lambda: db.gc(caller=DEMO_WRITER),
        lambda: db.index_rebuild(caller=DEMO_WRITER),
    ):
        with pytest.raises(CapabilityDeniedError):
            call()
    with pytest.raises(NotFoundError):
        db.quarantine_release("no-such-atom", caller=DEMO_WRITER)


def test_gc_by_a_scoped_operator_touches_only_its_worlds(db: dwbase.Engine, clock: object) -> None:
    for w in ("demo", "secret"):
        db.remember(w, "a", "observation", {"text": "old"})
        db.set_policy(w, retention_days=1)
    clock.advance(3 * 86_400)  # type: ignore[attr-defined]
    ops = Caller(worker="ops", read=("demo",), write=("demo",), operate=("demo",))
    report = db.gc(caller=ops)
    assert report.evicted == 1
    assert [a.payload for a in db.replay("secret") if "text" in a.payload] == [{"text": "old"}]
    assert db.gc().evicted == 1  # the embedded owner operates everywhere


def test_a_plain_writer_cannot_change_policy(db: dwbase.Engine) -> None:
    with pytest.raises(CapabilityDeniedError):
        db.set_policy("demo", retention_days=0, caller=DEMO_WRITER)
    for label in ("policy:retention_days=0", "policy:min_importance=0.9"):
        with pytest.raises(CapabilityDeniedError):
            db.remember(
                "demo", "w", "observation", {"v": float("nan")}, labels=[label], caller=DEMO_WRITER
            )
    assert db.policy("demo").effective_retention_days is None
    assert db.replay("demo") == [] and db.quarantine_list() == []
    steward = Caller(worker="s", read=("demo",), write=("demo",), policy=("demo",))
    db.set_policy("demo", retention_days=30, caller=steward)
    assert db.policy("demo").effective_retention_days == 30
    with pytest.raises(CapabilityDeniedError):  # policy rights do not reach other worlds
        db.set_policy("secret", retention_days=0, caller=steward)


def test_a_plain_writer_cannot_change_a_worlds_lifecycle(db: dwbase.Engine) -> None:
    db.remember("demo", "a", "observation", {"text": "x"})
    calls: list[Callable[[], object]] = [
        lambda: db.archive_world("demo", caller=DEMO_WRITER),
        lambda: db.create_world("demo", caller=DEMO_WRITER),
        lambda: db.remember(
            "demo", "w", "observation", {}, labels=["world_status:archived"], caller=DEMO_WRITER
        ),
    ]
    for call in calls:
        with pytest.raises(CapabilityDeniedError):
            call()
    assert db.world_status("demo") == "active"
    keeper = Caller(worker="k", read=("demo",), write=("demo",), manage=("demo",))
    db.archive_world("demo", caller=keeper)
    assert db.world_status("demo") == "archived"
    db.resume_world("demo", caller=keeper)
    assert db.world_status("demo") == "active"


@pytest.mark.parametrize("kind", ["supersedes", "contradicts", "confirms"])
def test_a_link_cannot_reach_an_atom_of_another_world(db: dwbase.Engine, kind: str) -> None:
    target = db.remember("secret", "owner", "observation", {"text": "the real plan"})
    before = db.ask("secret", "plan", current_only=True).hits[0].score
    for caller in (DEMO_WRITER, None):  # not even a caller who may write both worlds
        with pytest.raises(InvalidInputError) as err:
            db.remember(
                "demo",
                "w",
                "observation",
                {"text": "plan changed"},
                links=[{"target": target, "kind": kind}],
                caller=caller,
            )
        assert "secret" not in err.value.message  # says nothing about the target's world
    assert [a.id for a in db.replay("secret", current_only=True)] == [target]
    assert db.ask("secret", "plan", current_only=True).hits[0].score == before
    assert db.replay("demo") == []


def test_a_ranking_link_needs_a_stored_target_but_a_reference_does_not(
    db: dwbase.Engine,
) -> None:
    with pytest.raises(InvalidInputError):
        db.remember(
            "demo", "w", text="x", links=[{"target": "0190f0f0-unknown", "kind": "supersedes"}]
        )
    aid = db.remember(
        "demo", "w", text="x", links=[{"target": "0190f0f0-unknown", "kind": "references"}]
    )
    assert db.get(aid).links[0].kind == "references"


def test_links_inside_one_world_still_act(db: dwbase.Engine) -> None:
    old = db.remember("demo", "w", payload={"text": "deploy on friday"}, caller=DEMO_WRITER)
    new = db.remember(
        "demo",
        "w",
        payload={"text": "deploy on monday"},
        links=[{"target": old, "kind": "supersedes"}],
        caller=DEMO_WRITER,
    )
    assert [a.id for a in db.replay("demo", current_only=True)] == [new]


def test_a_peer_may_link_to_an_atom_that_has_not_arrived_yet(db: dwbase.Engine) -> None:
    first = dwbase.Atom.from_dict(
        {
            "id": "0190f0f0-0000-7000-8000-000000000002",
            "world": "demo",
            "worker": "peer",
            "kind": "observation",
            "timestamp": "2026-01-01T00:00:00Z",
            "importance": 0.5,
            "payload_json": '{"text": "new"}',
            "links": [{"target": "0190f0f0-0000-7000-8000-000000000001", "kind": "supersedes"}],
        }
    )
    assert db.ingest([first]).stored == [first.id]


def test_tokens_files_without_capability_fields_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(str(path))
    store.create("ops", read=["demo*"], write=["demo"], admin=True)
    store.create("bot", read=["demo"])
    doc = json.loads(path.read_text())
    for t in doc["tokens"]:  # the file as an older release wrote it
        for key in ("operate", "policy", "manage"):
            t.pop(key, None)
    path.write_text(json.dumps(doc))
    by_worker = {t.worker: t.caller() for t in TokenStore(str(path)).list()}
    ops, bot = by_worker["ops"], by_worker["bot"]
    assert ops.can_operate("demo") and not ops.can_operate("demo-2")
    assert ops.can_set_policy("demo") and ops.can_manage("demo")
    assert not bot.can_operate("demo") and not bot.can_set_policy("demo")
    assert not bot.can_manage("demo")


def test_the_embedded_owner_keeps_every_capability(db: dwbase.Engine) -> None:
    demo_held = held(db, "demo")
    db.set_policy("demo", retention_days=30)
    db.archive_world("demo")
    db.resume_world("demo")
    assert db.quarantine_release(demo_held).world == "demo"
