"""Random records into every v1 function of the real component: nothing traps, ever.

A trap poisons the instance (every later call fails), so the last calls prove the instance
still works. The seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from component.conftest import WORLD, Instantiate, atom_filter, new_atom, question

pytestmark = pytest.mark.component

ROUNDS = 150

_WEIRD = [
    "",
    " ",
    "\x00",
    "é" * 300,
    "tenant:acme/",
    "tenant:acme/" + "x" * 300,
    "tenant:other/notes",
    WORLD,
    "policy:retention_days=1",
    "world_status:archived",
    "2024-01-01T00:00:00Z",
    "not a time",
    "9999-99-99T99:99:99Z",
    "{}",
    "[]",
    '{"text": 1e999}',
    "null",
    "💥" * 50,
]
_NUMBERS = [0.0, 0.5, 0.7, 0.71, 1.0, -1.0, 2.0, float("nan"), float("inf"), -float("inf"), 1e308]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_WEIRD)
    return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 40)))


def _world(rng: random.Random) -> str:
    return WORLD if rng.random() < 0.5 else _text(rng)


def _strings(rng: random.Random) -> list[str]:
    return [_text(rng) for _ in range(rng.randrange(0, 4))]


def _filter(rng: random.Random) -> dict[str, Any]:
    return atom_filter(
        rng.choice([None, WORLD, _text(rng)]),
        kinds=rng.choice([[], ["observation"], _strings(rng)]),
        labels=_strings(rng) if rng.random() < 0.3 else [],
        flags=_strings(rng) if rng.random() < 0.2 else [],
        since=rng.choice([None, _text(rng)]),
        until=rng.choice([None, _text(rng)]),
        limit=rng.choice([None, 0, 1, 5, 2**32 - 1]),
    )


def _new_atom(rng: random.Random, ids: list[str]) -> dict[str, Any]:
    payload = rng.choice(
        [json.dumps({"text": _text(rng)}), _text(rng), json.dumps([1, 2]), '{"a":' * 50]
    )
    links = [
        {
            "target": rng.choice(ids) if ids and rng.random() < 0.5 else _text(rng),
            "kind": rng.choice(["supersedes", "contradicts", "confirms", "references"]),
        }
        for _ in range(rng.randrange(0, 3))
    ]
    return new_atom(
        world=_world(rng),
        worker=rng.choice(["", _text(rng)]),
        kind=rng.choice(["observation", "reflection", "plan", _text(rng)]),
        timestamp=rng.choice(["", _text(rng)]),
        importance=rng.choice(_NUMBERS),
        payload_json=payload,
        vector=rng.choice(
            [None, [], [rng.uniform(-1, 1) for _ in range(rng.randrange(1, 8))], [float("nan")]]
        ),
        flags=_strings(rng),
        labels=_strings(rng),
        links=links,
    )


def test_random_records_never_trap_a_v1_function(instantiate: Instantiate) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}")
    rng = random.Random(seed)
    db = instantiate({"DWBASE_OBSERVE_QUEUE_CAPACITY": "8"})
    ids: list[str] = []
    handles: list[str] = []
    for _ in range(ROUNDS):
        op = rng.randrange(9)
        if op == 0:
            aid = db.call("remember", _new_atom(rng, ids))
            assert isinstance(aid, str)
            if aid:
                ids.append(aid)
        elif op == 1:
            q = question(
                _text(rng),
                world=_world(rng),
                filter=rng.choice([None, _filter(rng)]),
                limit=rng.choice([None, 0, 3, 2**32 - 1]),
                as_of=rng.choice([None, _text(rng)]),
            )
            assert set(db.call("ask", q)) == {"world", "text", "supporting_atoms"}
        elif op == 2:
            assert isinstance(db.call("replay", _world(rng), _filter(rng)), list)
        elif op == 3:
            handle = db.call("observe-start", _filter(rng))
            if handle:
                handles.append(handle)
        elif op == 4:
            handle = rng.choice(handles) if handles and rng.random() < 0.7 else _text(rng)
            assert isinstance(
                db.call("observe-poll", handle, rng.choice([0, 1, 100, 2**32 - 1])), list
            )
        elif op == 5:
            handle = rng.choice(handles) if handles and rng.random() < 0.7 else _text(rng)
            assert db.call("observe-stats", handle)["handle"] == handle
        elif op == 6:
            handle = rng.choice(handles) if handles and rng.random() < 0.5 else _text(rng)
            assert db.call("observe-stop", handle) is None
        elif op == 7:
            atom = {**_new_atom(rng, ids), "id": _text(rng), "recorded_at": _text(rng)}
            assert db.call("observe", atom) >= 0
        else:
            assert db.call("health")["status"] in ("ready", "degraded")
    # Still alive and consistent after all of that.
    assert db.call("health")["status"] == "ready", f"seed {seed}"
    good = db.call("remember", new_atom("still alive"))
    assert good, f"seed {seed}"
    stored = db.call("replay", WORLD, atom_filter())
    assert good in [a["id"] for a in stored]
