from __future__ import annotations

import pytest

import dwbase
from dwbase import ConflictError

from .conftest import FakeClock

DAY = 86_400.0


def put(db: dwbase.Engine, text: str, world: str = "demo", **kw: object) -> str:
    return db.remember(world, "agent", payload={"text": text}, **kw)  # type: ignore[arg-type]


def test_archived_worlds_leave_default_listings_and_refuse_writes(db: dwbase.Engine) -> None:
    db.create_world("a", description="first")
    put(db, "x", world="b")
    assert db.list_worlds() == ["a", "b"]
    db.archive_world("a")
    assert db.list_worlds() == ["b"]
    assert db.list_worlds(include_archived=True) == ["a", "b"]
    with pytest.raises(ConflictError):
        put(db, "late", world="a")
    db.resume_world("a")
    assert db.world_status("a") == "active"
    put(db, "back", world="a")


def test_lifecycle_is_recorded_as_world_meta_atoms(db: dwbase.Engine) -> None:
    db.create_world("a")
    db.archive_world("a")
    metas = db.replay("a", labels=["world_meta"], order="append")
    assert [m.labels for m in metas] == [
        ("world_meta", "world_status:active"),
        ("world_meta", "world_status:archived"),
    ]


def test_list_worlds_shows_only_readable_worlds(db: dwbase.Engine) -> None:
    put(db, "x", world="tenant:acme/support")
    put(db, "y", world="tenant:other/support")
    caller = dwbase.Caller(read=("tenant:acme/*",))
    assert db.list_worlds(caller=caller) == ["tenant:acme/support"]


def test_retention_evicts_old_atoms_but_keeps_policy_and_link_targets(
    db: dwbase.Engine, clock: FakeClock
) -> None:
    old = put(db, "old", timestamp="2025-01-01T00:00:00Z")
    target = put(db, "old but linked", timestamp="2025-01-01T00:00:00Z")
    put(db, "refers", links=[target])
    fresh = put(db, "fresh")
    pol = db.set_policy("demo", retention_days=30)
    report = db.gc()
    assert report.evicted == 1 and report.by_reason == {"retention": 1}
    left = {a.id for a in db.replay("demo")}
    assert old not in left
    assert {target, fresh} <= left
    assert db.get(pol).world == "policy:demo"
    assert db.check().ok
    assert all(h.atom.id != old for h in db.ask("demo", "old").hits)


def test_retention_floor_from_tenant_policy_wins(db: dwbase.Engine) -> None:
    w = "tenant:acme/support"
    put(db, "forty days old", world=w, timestamp="2025-11-22T00:00:00Z")
    db.set_policy("tenant:acme/policy", retention_min_days=90)
    db.set_policy(w, retention_days=7)
    assert db.policy(w).effective_retention_days == 90
    assert db.gc().evicted == 0


def test_policy_world_source_applies(db: dwbase.Engine) -> None:
    put(db, "low", importance=0.1)
    keep = put(db, "high", importance=0.9)
    db.set_policy("policy:demo", min_importance=0.5)
    assert db.policy("demo").min_importance == 0.5
    assert db.gc().evicted == 1
    assert [a.id for a in db.replay("demo")] == [keep]


def test_disk_budget_evicts_lowest_importance_first(tmp_path: object, clock: FakeClock) -> None:
    db = dwbase.open(":memory:", clock=clock, max_disk_mb=0.01)
    ids = [put(db, "x" * 500, importance=i / 100) for i in range(40)]
    report = db.gc()
    assert report.evicted > 0 and report.by_reason.keys() == {"disk_budget"}
    left = {a.id for a in db.replay("demo")}
    assert ids[-1] in left and ids[0] not in left
    assert db.storage.used_bytes() <= 0.01 * 1024 * 1024


def test_gc_runs_on_a_schedule(tmp_path: object) -> None:
    import time

    db = dwbase.open(":memory:", gc_interval_s=0.05)
    put(db, "ancient", timestamp="2000-01-01T00:00:00Z")
    db.set_policy("demo", retention_days=1)
    deadline = time.time() + 5
    while time.time() < deadline and len(db.replay("demo")) > 1:
        time.sleep(0.02)
    assert len(db.replay("demo")) == 1
    db.close()


def test_replication_policy_refuses_ingest(db: dwbase.Engine) -> None:
    db.set_policy("private", replication_deny=["private*"])
    atom = dwbase.Atom(
        id="remote-1",
        world="private",
        worker="peer",
        kind="observation",
        timestamp="2025-01-01T00:00:00Z",
        importance=0.5,
        payload_json="{}",
    )
    result = db.ingest([atom])
    assert result.refused == {"remote-1": "replication denied by world policy"}
    assert db.storage.get("remote-1") is None


def test_ingest_keeps_ids_and_is_idempotent(db: dwbase.Engine) -> None:
    atom = dwbase.Atom(
        id="remote-1",
        world="demo",
        worker="peer",
        kind="observation",
        timestamp="2025-01-01T00:00:00Z",
        importance=0.5,
        payload_json='{"text": "from a peer"}',
    )
    assert db.ingest([atom]).stored == ["remote-1"]
    again = db.ingest([atom.to_dict()])
    assert again.stored == [] and again.duplicates == ["remote-1"]
    assert db.get("remote-1").worker == "peer"
    assert len(db.replay("demo")) == 1


def test_ingest_validates_like_local_writes(db: dwbase.Engine) -> None:
    bad = {
        "id": "r",
        "world": "demo",
        "worker": "peer",
        "kind": "observation",
        "timestamp": "2025-01-01T00:00:00Z",
        "importance": 7,
        "payload_json": "{}",
    }
    with pytest.raises(dwbase.InvalidInputError):
        db.ingest([bad])
    with pytest.raises(dwbase.CapabilityDeniedError):
        db.ingest([dict(bad, importance=0.5)], caller=dwbase.Caller(write=("other",)))
    assert db.storage.count() == 0
