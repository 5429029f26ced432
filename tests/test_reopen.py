"""Closing and reopening a SQLite store changes nothing a reader can see.

Links, quarantine, policy and world lifecycle are all persisted and rebuilt on open, so ask
ranks the same atoms with the same scores and parts, and every listing is equal.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dwbase
from dwbase import AtomId, Engine

FIXED = 1_717_243_200.0  # 2024-06-01T12:00:00Z: recency is computed against a frozen clock

QUESTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("ops", "why is checkout slow?", {}),
    ("ops", "checkout latency", {"current_only": True}),
    ("ops", "payment errors after deploy", {"limit": 5}),
    ("ops", "disk", {"rank": "recency"}),
    ("ops", "latency", {"rank": "importance"}),
    ("ops", "cache", {"filter": {"kinds": ["reflection"]}}),
    ("ops", "checkout", {"as_of": "2024-06-01T12:00:00Z"}),
    ("quarantine:ops", "latency", {}),
    ("legacy", "old queue", {}),
]


def _build(db: Engine) -> dict[str, AtomId]:
    ids: dict[str, AtomId] = {}

    def put(name: str, world: str, text: str, **kw: Any) -> None:
        ids[name] = db.remember(world, kw.pop("worker", "agent-1"), payload={"text": text}, **kw)

    put(
        "slow",
        "ops",
        "checkout latency 820 ms at peak",
        importance=0.9,
        timestamp="2024-05-30T09:00:00Z",
        labels=["latency"],
    )
    put(
        "fixed",
        "ops",
        "checkout latency back to 120 ms after cache fix",
        importance=0.7,
        timestamp="2024-05-31T10:00:00Z",
        links=[{"target": ids["slow"], "kind": "supersedes"}],
    )
    put(
        "doubt",
        "ops",
        "checkout latency still 700 ms for EU users",
        worker="agent-2",
        timestamp="2024-05-31T11:00:00Z",
        links=[{"target": ids["fixed"], "kind": "contradicts"}],
    )
    put(
        "agree",
        "ops",
        "confirmed: checkout p95 is 130 ms",
        worker="agent-3",
        importance=0.6,
        timestamp="2024-05-31T12:00:00Z",
        links=[{"target": ids["fixed"], "kind": "confirms"}],
    )
    put(
        "agree2",
        "ops",
        "checkout dashboards agree, latency fine",
        worker="agent-3",
        timestamp="2024-05-31T12:30:00Z",
        links=[{"target": ids["fixed"], "kind": "confirms"}],
    )
    put("ref", "ops", "see the checkout incident notes", links=[ids["slow"]])
    put(
        "pay",
        "ops",
        "payment errors spiked after the 14:00 deploy",
        kind="action",
        importance=0.8,
        timestamp="2024-05-29T14:05:00Z",
        labels=["deploy"],
    )
    put(
        "disk",
        "ops",
        "disk usage at 91 percent on db-2",
        importance=0.4,
        timestamp="2024-05-28T08:00:00Z",
        flags=["paged"],
    )
    put(
        "why",
        "ops",
        "cache misses explain the slow checkout",
        kind="reflection",
        importance=0.5,
        timestamp="2024-05-31T13:00:00Z",
    )
    ids["nan"] = db.remember(
        "ops", "agent-1", payload={"text": "latency", "ms": math.nan}, importance=0.3
    )
    assert db.get(ids["nan"]).world == "quarantine:ops"
    ids["policy"] = db.set_policy(
        "ops", retention_days=30, min_importance=0.1, replication_deny=["secret*"]
    )
    put("old", "legacy", "old queue backlog of 5000 jobs", timestamp="2024-01-02T00:00:00Z")
    put(
        "old2",
        "legacy",
        "old queue drained",
        timestamp="2024-01-03T00:00:00Z",
        links=[{"target": ids["old"], "kind": "supersedes"}],
    )
    ids["archived"] = db.archive_world("legacy")
    ids["created"] = db.create_world("fresh", description="a new world, still empty")
    return ids


def _snapshot(db: Engine) -> dict[str, Any]:
    answers = []
    for world, text, kw in QUESTIONS:
        ans = db.ask(world, text, **kw)
        answers.append(
            {
                "ranking": [(h.atom.id, h.score, h.parts, h.sources) for h in ans.hits],
                "answer": ans.to_dict(),
            }
        )
    worlds = db.list_worlds(include_archived=True)
    return {
        "answers": answers,
        "worlds": db.list_worlds(),
        "all_worlds": worlds,
        "status": {w: db.world_status(w) for w in worlds},
        "policy": {w: db.policy(w).to_dict() for w in [*worlds, "quarantine:ops", "nowhere"]},
        "quarantine": [a.to_dict() for a in db.quarantine_list()],
        "quarantine_ops": [a.to_dict() for a in db.quarantine_list("ops")],
        "replay_current": {
            w: [a.to_dict() for a in db.replay(w, current_only=True)] for w in worlds
        },
        "replay_all": {w: [a.to_dict() for a in db.replay(w)] for w in worlds},
        "replay_quarantine": [a.to_dict() for a in db.replay("quarantine:ops")],
    }


def test_reopened_store_answers_exactly_as_before(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with dwbase.open(path, clock=lambda: FIXED) as db:
        ids = _build(db)
        before = _snapshot(db)

    # The world we built is what the comparison is about; make sure it is not vacuous.
    assert before["worlds"] == ["fresh", "ops", "policy:ops"]
    assert before["all_worlds"] == ["fresh", "legacy", "ops", "policy:ops"]
    assert before["status"] == {
        "fresh": "active",
        "legacy": "archived",
        "ops": "active",
        "policy:ops": "active",
    }
    assert before["policy"]["ops"]["retention_days"] == 30
    assert before["policy"]["ops"]["replication_deny"] == ["secret*"]
    assert [a["id"] for a in before["quarantine"]] == [ids["nan"]]
    assert ids["nan"].quarantined == "impossible_number"
    current_ops = [a["id"] for a in before["replay_current"]["ops"]]
    assert ids["slow"] not in current_ops and ids["fixed"] in current_ops
    ranking = before["answers"][0]["ranking"]
    assert ranking, "ask returned nothing"
    parts = {aid: p for aid, _, p, _ in ranking}
    assert parts.get(ids["slow"], {}).get("links") == -1.0
    assert parts.get(ids["fixed"], {}).get("links") == round(-0.3 + 0.2 + 0.2, 6)

    with dwbase.open(path, clock=lambda: FIXED) as db:
        after = _snapshot(db)
        # Reopening twice in a row (no writes in between) is also stable.
        again = _snapshot(db)

    for i, (world, text, _) in enumerate(QUESTIONS):
        assert after["answers"][i]["ranking"] == before["answers"][i]["ranking"], (world, text)
        assert after["answers"][i]["answer"] == before["answers"][i]["answer"], (world, text)
    for key in before:
        assert after[key] == before[key], key
    assert again == after
