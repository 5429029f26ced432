"""dwbase.Client / AsyncClient against the in-process app: same types, same errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import dwbase
from dwbase import Answer, Atom, AtomId, Hit
from dwbase.client import AsyncClient, Client
from dwbase.engine import Engine
from dwbase.errors import (
    CapabilityDeniedError,
    ConflictError,
    DWBaseError,
    InvalidHandleError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
)
from dwbase.node import create_app
from dwbase.security.tokens import TokenStore
from dwbase.stream import SubscriptionStats


class Via(httpx.BaseTransport):
    """A sync httpx transport into the in-process app (through Starlette's TestClient)."""

    def __init__(self, tc: TestClient) -> None:
        self.tc = tc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.tc.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.read(),
            headers=dict(request.headers),
        )
        return httpx.Response(
            r.status_code, headers=list(r.headers.multi_items()), content=r.content
        )


@pytest.fixture
def client(make_http: Callable[..., TestClient]) -> Iterator[Client]:
    tc = make_http()
    with Client("http://node", transport=Via(tc)) as c:
        yield c


def test_client_is_exported_lazily() -> None:
    assert dwbase.Client is Client and dwbase.AsyncClient is AsyncClient


def test_remember_get_ask_replay_return_the_engine_types(client: Client, engine: Engine) -> None:
    aid = client.remember(
        "demo", "agent-1", "observation", {"text": "checkout latency 820ms"}, labels=["latency"]
    )
    assert isinstance(aid, AtomId) and aid.quarantined is None
    assert client.get(aid) == engine.get(aid)
    assert client.inspect(aid) == engine.get(aid)
    other = client.remember("demo", "agent-1", payload_json='{"text": "soup"}', importance=0.2)
    answer = client.ask("demo", "why is checkout slow?", limit=5)
    assert isinstance(answer, Answer) and isinstance(answer.hits[0], Hit)
    assert answer == engine.ask("demo", "why is checkout slow?", limit=5)
    assert client.replay("demo") == engine.replay("demo") == [engine.get(aid), engine.get(other)]
    assert client.replay("demo", labels=["latency"], limit=1) == [engine.get(aid)]
    assert client.replay("demo", after=aid) == [engine.get(other)]


def test_batch_worlds_policy_index_and_quarantine(client: Client, engine: Engine) -> None:
    ids = client.remember_batch(
        [{"world": "ops", "worker": "a", "payload": {"n": i}} for i in range(3)]
    )
    assert [type(i) for i in ids] == [AtomId] * 3
    assert client.remember_atom({"world": "ops", "worker": "a"}) in {
        a.id for a in engine.replay("ops")
    }
    assert isinstance(client.create_world("new", description="d"), AtomId)
    assert set(client.list_worlds()) == {"ops", "new"}
    client.archive_world("ops")
    assert client.list_worlds() == ["new"]
    assert "ops" in client.list_worlds(include_archived=True)
    client.resume_world("ops")
    client.set_policy("ops", retention_days=7, replication_deny=["x*"])
    assert engine.policy("ops").retention_days == 7
    assert {s["world"] for s in client.index_status()} == {"ops", "new", "policy:ops"}
    assert client.index_rebuild("ops")["worlds"] == ["ops"]
    held = client.remember("ops", "a", payload_json='{"v": NaN}')
    assert held.quarantined == "impossible_number"
    assert [a.id for a in client.quarantine_list()] == [held]
    assert client.quarantine_release(held).world == "ops"
    held2 = client.remember("ops", "a", payload_json='{"v": Infinity}')
    client.quarantine_drop(held2)
    assert client.quarantine_list() == []
    assert client.health()["storage_ok"] is True
    assert client.metrics_snapshot()["dwbase_atoms_total"] >= 5


def test_observe_over_the_client(client: Client) -> None:
    first = client.remember("demo", "a", payload={"text": "zero"})
    handle = client.observe_start("demo")
    ids = [client.remember("demo", "a", payload={"n": i}) for i in range(3)]
    stats = client.observe_stats(handle)
    assert isinstance(stats, SubscriptionStats) and stats.queued_count == 3
    assert [a.id for a in client.observe_poll(handle, max=10)] == ids
    client.observe_stop(handle)
    with pytest.raises(InvalidHandleError):
        client.observe_poll(handle)
    streamed = list(client.observe_stream("demo", last_event_id=first, max_events=3))
    assert [a.id for a in streamed] == ids
    assert all(isinstance(a, Atom) for a in streamed)


def test_client_raises_the_engine_error_classes(
    client: Client, engine: Engine, make_http: Callable[..., TestClient], tokens: TokenStore
) -> None:
    cases: list[tuple[type[DWBaseError], Callable[[Any], Any]]] = [
        (InvalidInputError, lambda db: db.remember("demo", "a", text="x", importance=1.7)),
        (InvalidInputError, lambda db: db.ask("bad world!", "x")),
        (NotFoundError, lambda db: db.get("01234567-0000-7000-8000-000000000000")),
        (InvalidHandleError, lambda db: db.observe_stats("nope")),
        (PayloadTooLargeError, lambda db: db.remember("demo", "a", payload={"t": "x" * 300_000})),
    ]
    for cls, call in cases:
        with pytest.raises(cls) as from_engine:
            call(engine)
        with pytest.raises(cls) as from_client:
            call(client)
        assert type(from_client.value) is type(from_engine.value)
        assert from_client.value.code == from_engine.value.code
    engine.remember("arch", "a", text="x")
    engine.archive_world("arch")
    with pytest.raises(ConflictError):
        client.remember("arch", "a", text="x")

    secret, _ = tokens.create("bot", read=["demo"], write=["demo"], remember_rate=2)
    with Client("http://node", token=secret, transport=Via(make_http())) as limited:
        with pytest.raises(CapabilityDeniedError):
            limited.remember("secret", "a", text="x")
        limited.remember("demo", "a", text="x")
        with pytest.raises(RateLimitedError) as rl:
            limited.remember("demo", "a", text="x")
        assert rl.value.retry_after > 0
    with (
        Client("http://node", transport=Via(make_http())) as anonymous,
        pytest.raises(UnauthenticatedError),
    ):
        anonymous.list_worlds()


def test_unreachable_node_is_unavailable() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as c, pytest.raises(UnavailableError):
        c.health()


def test_async_client_has_the_same_methods_and_types(engine: Engine) -> None:
    app = create_app(engine)

    async def main() -> None:
        async with AsyncClient("http://node", transport=httpx.ASGITransport(app=app)) as db:
            aid = await db.remember("demo", "agent-1", "observation", {"text": "disk full"})
            assert isinstance(aid, AtomId)
            assert await db.get(aid) == engine.get(aid)
            answer = await db.ask("demo", "what is full?")
            assert answer.hits[0].atom.id == aid
            assert await db.replay("demo") == [engine.get(aid)]
            assert await db.list_worlds() == ["demo"]
            with pytest.raises(NotFoundError):
                await db.get("missing")
            second = await db.remember("demo", "agent-1", payload={"text": "more"})
            got = [a.id async for a in db.observe_stream("demo", last_event_id=aid, max_events=1)]
            assert got == [second]

    asyncio.run(main())
