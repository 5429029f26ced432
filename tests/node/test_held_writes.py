"""A held (quarantined) write answers differently from a stored one, in the body itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from dwbase.client import Client
from dwbase.engine import Engine
from dwbase.node import start_background

from .conftest import assert_error, make_settings, new_atom


def nested_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_remember_answers_a_held_write_with_an_object_naming_the_quarantine(
    http: TestClient, engine: Engine
) -> None:
    ok = http.post("/remember", json=new_atom(text="loss became NaN at step 1200"))
    assert ok.status_code == 200 and isinstance(ok.json(), str)
    assert "x-dwbase-quarantined" not in ok.headers
    held = http.post(
        "/remember", json={"world": "ml", "worker": "t", "payload_json": '{"loss": NaN}'}
    )
    assert held.status_code == 200
    body = held.json()
    assert body == {
        "id": body["id"],
        "quarantined": True,
        "world": "quarantine:ml",
        "reason": "impossible_number",
    }
    assert engine.get(body["id"]).world == "quarantine:ml"
    # The single-id header stays for clients that read it.
    assert held.headers["x-dwbase-quarantined"] == f"{body['id']}=impossible_number"


def test_batch_answers_held_entries_as_objects_and_keeps_headers_small(
    http: TestClient,
) -> None:
    # One worker per stored atom keeps the node's burst rule out of this test.
    atoms = [
        {"world": "ml", "worker": "t", "payload_json": '{"v": NaN}'}
        if i % 2
        else new_atom("ml", worker=f"w{i}")
        for i in range(2000)
    ]
    resp = http.post("/remember/batch", json={"atoms": atoms})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [isinstance(x, str) for x in body] == [i % 2 == 0 for i in range(2000)]
    held = [x for x in body if isinstance(x, dict)]
    assert len(held) == 1000
    assert all(x["quarantined"] is True and x["world"] == "quarantine:ml" for x in held)
    assert sum(len(k) + len(v) for k, v in resp.headers.items()) < 2048
    assert "x-dwbase-quarantined" not in resp.headers
    assert resp.headers["x-dwbase-quarantined-count"] == "1000"


def test_deeply_nested_payloads_are_400_on_every_write_route(http: TestClient) -> None:
    deep = nested_json(800)
    for resp in (
        http.post("/remember", json={"world": "d", "worker": "a", "payload_json": deep}),
        http.post(
            "/remember/batch",
            json={"atoms": [{"world": "d", "worker": "a", "payload_json": deep}]},
        ),
    ):
        err = assert_error(resp, 400, "invalid_input")
        assert "nested" in err["message"] and "100 levels" in err["message"]
    # The object form too (the JSON parser of the request may refuse it first: still a 400).
    obj = http.post(
        "/remember",
        content=b'{"world":"d","worker":"a","payload":' + deep.encode() + b"}",
        headers={"content-type": "application/json"},
    )
    assert_error(obj, 400, "invalid_input")


def test_the_client_reports_held_writes_like_the_library(
    make_http: Callable[..., TestClient],
) -> None:
    from .test_client import Via

    with Client("http://node", transport=Via(make_http())) as db:
        held = db.remember("ml", "t", payload_json='{"loss": Infinity}')
        assert held.held and held.held_world == "quarantine:ml"
        assert held.held_reason == "impossible_number"
        prose = db.remember("ml", "t", payload={"text": "accuracy went to inf"})
        assert not prose.held
        ids = db.remember_batch(
            [
                {"world": "ml", "worker": "t", "payload_json": '{"v": NaN}'},
                {"world": "ml", "worker": "t", "payload": {"v": 1}},
            ]
        )
        assert [i.held for i in ids] == [True, False]
        assert ids[0].held_world == "quarantine:ml"


def test_a_large_held_batch_reaches_the_client_over_real_http(tmp_path: Path) -> None:
    # ~55 header bytes per held atom used to pass the client's 100 KiB limit on a response
    # head: the client raised after the node had stored the whole batch.
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    atoms = [{"world": "ml", "worker": "t", "payload_json": '{"v": NaN}'} for _ in range(2500)]
    with start_background(settings) as node, Client(node.url) as db:
        ids = db.remember_batch(atoms)
        assert len(ids) == 2500
        assert all(i.held for i in ids)
        assert len(db.replay("quarantine:ml", limit=5000)) == 2500
