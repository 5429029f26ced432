"""Payload nesting is bounded: a deep payload is invalid input naming the limit, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dwbase
from dwbase.errors import InvalidInputError
from dwbase.model import MAX_PAYLOAD_DEPTH, parse_payload


def nested_json(depth: int) -> str:
    """An object ``depth`` levels deep: ``{"a":[{"a":[ ... 1 ... ]}]}``."""
    opens = "".join('{"a":' if i % 2 == 0 else "[" for i in range(depth))
    closes = "".join("}" if i % 2 == 0 else "]" for i in reversed(range(depth)))
    return opens + "1" + closes


def nested_object(depth: int) -> dict[str, Any]:
    out: Any = 1
    for _ in range(depth - 1):
        out = {"a": out}
    return {"a": out}


def test_the_helpers_build_the_depth_they_claim() -> None:
    assert nested_json(1) == '{"a":1}'
    assert nested_json(2) == '{"a":[1]}'
    assert json.loads(nested_json(3)) == {"a": [{"a": 1}]}
    assert nested_object(2) == {"a": {"a": 1}}


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 500, 900, 5000])
def test_payload_json_nested_too_deep_is_invalid_input_naming_the_limit(
    db: dwbase.Engine, depth: int
) -> None:
    with pytest.raises(InvalidInputError) as info:
        db.remember("demo", "a", payload_json=nested_json(depth))
    assert f"{MAX_PAYLOAD_DEPTH} levels" in info.value.message
    assert info.value.details["field"] == "payload_json"
    assert db.replay("demo") == [] and db.replay("quarantine:demo") == []


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 900, 5000])
def test_a_payload_object_nested_too_deep_is_invalid_input(db: dwbase.Engine, depth: int) -> None:
    with pytest.raises(InvalidInputError) as info:
        db.remember("demo", "a", payload=nested_object(depth))
    assert f"{MAX_PAYLOAD_DEPTH} levels" in info.value.message


def test_a_payload_at_the_limit_is_stored(db: dwbase.Engine) -> None:
    aid = db.remember("demo", "a", payload_json=nested_json(MAX_PAYLOAD_DEPTH))
    assert not aid.held and db.get(aid).payload_json == nested_json(MAX_PAYLOAD_DEPTH)
    wide = {"k": [[i] for i in range(5000)]}  # many brackets, little depth
    assert not db.remember("demo", "a", payload=wide).held


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = json.dumps({"text": "[" * 5000 + "{" * 5000})
    assert parse_payload(text)[1] == json.loads(text)


def test_the_limit_holds_for_batches_and_for_atoms_from_peers(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match=r"atom 1: .*nested"):
        db.remember_batch(
            [
                {"world": "demo", "worker": "a", "payload": {"ok": 1}},
                {"world": "demo", "worker": "a", "payload_json": nested_json(700)},
            ]
        )
    peer = {
        "id": "0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d",
        "world": "demo",
        "worker": "peer",
        "kind": "observation",
        "timestamp": "2026-01-01T00:00:00Z",
        "importance": 0.5,
        "payload_json": nested_json(800),
    }
    with pytest.raises(InvalidInputError, match="nested"):
        db.ingest([peer])
    assert db.replay("demo") == []
