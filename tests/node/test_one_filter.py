"""One filter type from edge to storage: every route hands the engine a ``dwbase.AtomFilter``
(the engine's ``filters.spec`` alone turns it into the storage form), and one filter selects
the same atoms on replay, ask, observe and the SSE stream, whose wire forms are unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dwbase.engine import Engine
from dwbase.model import AtomFilter

from .conftest import new_atom

WIRE = {"kinds": ["plan"], "labels": ["x"], "since": "2024-01-01T00:00:00Z"}
WANTED = AtomFilter(kinds=("plan",), labels=("x",), since="2024-01-01T00:00:00Z")


def recording(seen: list[Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("filter"))
        return fn(*args, **kwargs)

    return wrapper


def sse_ids(text: str) -> list[str]:
    return [line[4:] for line in text.splitlines() if line.startswith("id: ")]


def test_every_route_hands_the_engine_an_atom_filter(
    http: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    for name in ("replay", "ask", "observe_start"):
        monkeypatch.setattr(engine, name, recording(seen, getattr(engine, name)))
    assert http.post("/replay", json={"world": "demo", "filter": WIRE}).status_code == 200
    ask = {"world": "demo", "text": "plan", "filter": WIRE}
    assert http.post("/ask", json=ask).status_code == 200
    assert http.post("/observe/start", json={"world": "demo", **WIRE}).status_code == 200
    params: dict[str, Any] = {"world": "demo", "timeout_s": 0.01, **WIRE}
    assert http.get("/observe/stream", params=params).status_code == 200
    assert seen == [WANTED, WANTED, AtomFilter(world="demo", **_fields(WANTED)), WANTED]
    assert all(type(f) is AtomFilter for f in seen)


def _fields(flt: AtomFilter) -> dict[str, Any]:
    return {"kinds": flt.kinds, "labels": flt.labels, "since": flt.since}


def test_one_filter_selects_the_same_atoms_on_every_path(http: TestClient) -> None:
    first = http.post("/remember", json=new_atom(text="opening")).json()
    handle = http.post("/observe/start", json={"world": "demo", **WIRE}).json()["handle"]
    written = {
        "yes": new_atom(text="ship the plan", kind="plan", labels=["x", "y"]),
        "no_label": new_atom(text="plan without label", kind="plan"),
        "no_kind": new_atom(text="an action on the plan", kind="action", labels=["x"]),
        "too_old": new_atom(
            text="an old plan", kind="plan", labels=["x"], timestamp="2023-06-01T00:00:00Z"
        ),
    }
    ids = {k: http.post("/remember", json=v).json() for k, v in written.items()}
    yes = [ids["yes"]]

    replayed = http.post("/replay", json={"world": "demo", "filter": WIRE}).json()
    assert [a["id"] for a in replayed] == yes
    answer = http.post("/ask", json={"world": "demo", "text": "plan", "filter": WIRE}).json()
    assert [h["atom"]["id"] for h in answer["hits"]] == yes
    polled = http.post("/observe/poll", json={"handle": handle}).json()
    assert [a["id"] for a in polled] == yes
    params: dict[str, Any] = {"world": "demo", "after": first, "max_events": 5, "timeout_s": 0.1}
    stream = http.get("/observe/stream", params={**params, **WIRE})
    assert sse_ids(stream.text) == yes
    data = [json.loads(line[6:]) for line in stream.text.splitlines() if line[:6] == "data: "]
    assert data[0]["labels"] == ["x", "y"]
