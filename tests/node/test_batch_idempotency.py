"""Retried writes store nothing twice: ids chosen by the writer, and a client that uses them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dwbase import AtomId
from dwbase.client import AsyncClient, Client
from dwbase.engine import Engine
from dwbase.errors import ConflictError
from dwbase.ids import new_id
from dwbase.node import create_app

from .conftest import assert_error, new_atom
from .test_client import Via


class LosesFirstAnswers(httpx.BaseTransport):
    """Delivers every request, but loses the node's answer to the first ``n`` of them."""

    def __init__(self, inner: httpx.BaseTransport, n: int = 1) -> None:
        self.inner, self.n = inner, n
        self.bodies: list[Any] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.read() or b"null"))
        resp = self.inner.handle_request(request)
        if self.n > 0:
            self.n -= 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return resp


def test_a_batch_sent_twice_with_ids_is_stored_once(http: TestClient, engine: Engine) -> None:
    atoms = [new_atom(text=f"row {i}", id=new_id()) for i in range(3)]
    first = http.post("/remember/batch", json={"atoms": atoms})
    again = http.post("/remember/batch", json={"atoms": atoms})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == [a["id"] for a in atoms]
    assert [a.id for a in engine.replay("demo")] == [a["id"] for a in atoms]
    one = new_atom(text="single", id=new_id())
    assert http.post("/remember", json=one).json() == one["id"]
    assert http.post("/remember", json=one).json() == one["id"]
    assert len(engine.replay("demo")) == 4


def test_an_id_of_another_worlds_atom_is_409_without_its_content(
    http: TestClient, engine: Engine
) -> None:
    secret = engine.remember_atom(
        {"world": "secret", "worker": "o", "id": new_id(), "payload": {"text": "launch codes"}}
    )
    for resp in (
        http.post("/remember", json=new_atom(id=secret)),
        http.post("/remember/batch", json={"atoms": [new_atom(id=new_id()), new_atom(id=secret)]}),
    ):
        err = assert_error(resp, 409, "conflict")
        assert "secret" not in resp.text and "launch" not in resp.text
        assert err["details"].get("id") == secret
    assert engine.replay("demo") == []


@pytest.mark.parametrize("bad", ["x", "A" * 36, "0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d/x", ""])
def test_a_malformed_id_is_400(http: TestClient, bad: str) -> None:
    err = assert_error(http.post("/remember", json=new_atom(id=bad)), 400, "invalid_input")
    assert "UUID" in err["message"]


def test_the_client_retries_a_batch_whose_answer_was_lost_without_duplicates(
    make_http: Callable[..., TestClient], engine: Engine
) -> None:
    flaky = LosesFirstAnswers(Via(make_http()), n=1)
    with Client("http://node", transport=flaky) as db:
        ids = db.remember_batch(
            [{"world": "ops", "worker": "a", "payload": {"n": i}} for i in range(4)]
        )
    assert len(flaky.bodies) == 2 and flaky.bodies[0] == flaky.bodies[1]
    assert [a["id"] for a in flaky.bodies[0]["atoms"]] == ids
    assert [a.id for a in engine.replay("ops")] == ids


def test_the_client_retries_single_remembers_and_keeps_given_ids(
    make_http: Callable[..., TestClient], engine: Engine
) -> None:
    flaky = LosesFirstAnswers(Via(make_http()), n=2)
    with Client("http://node", transport=flaky) as db:
        aid = db.remember("ops", "a", payload={"text": "once"})
        mine = new_id()
        assert db.remember_atom({"world": "ops", "worker": "a", "id": mine}) == mine
    assert len(flaky.bodies) == 4
    assert [a.id for a in engine.replay("ops")] == [aid, mine]


def test_the_client_gives_up_after_its_retries_with_unavailable(
    make_http: Callable[..., TestClient], engine: Engine
) -> None:
    from dwbase.errors import UnavailableError

    flaky = LosesFirstAnswers(Via(make_http()), n=100)
    with Client("http://node", transport=flaky) as db, pytest.raises(UnavailableError):
        db.remember_batch([{"world": "ops", "worker": "a"}])
    assert 2 <= len(flaky.bodies) <= 5
    assert len(engine.replay("ops")) == 1  # every try carried the same id


def test_the_client_surfaces_a_conflict_on_a_taken_id(
    make_http: Callable[..., TestClient], engine: Engine
) -> None:
    secret = engine.remember_atom({"world": "secret", "worker": "o", "id": new_id()})
    with Client("http://node", transport=Via(make_http())) as db, pytest.raises(ConflictError):
        db.remember_batch([{"world": "ops", "worker": "a", "id": secret}])


def test_the_async_client_retries_a_batch_without_duplicates(engine: Engine) -> None:
    inner = httpx.ASGITransport(app=create_app(engine))
    sent: list[Any] = []

    class Flaky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(json.loads(await request.aread()))
            resp = await inner.handle_async_request(request)
            if len(sent) == 1:
                raise httpx.ReadError("connection reset by peer", request=request)
            return resp

    async def main() -> list[AtomId]:
        async with AsyncClient("http://node", transport=Flaky()) as db:
            return await db.remember_batch(
                [{"world": "ops", "worker": "a", "payload": {"n": i}} for i in range(3)]
            )

    ids = asyncio.run(main())
    assert len(sent) == 2 and sent[0] == sent[1]
    assert [a.id for a in engine.replay("ops")] == ids
