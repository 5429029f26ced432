"""``dwbase.Client`` and ``dwbase.AsyncClient`` take a remember's payload as the engine does:
exactly one of ``payload=``, ``payload_json=`` or ``text=``; a call without one is refused
before anything is sent. Their asks send the same keyword filters as their replays."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from dwbase import InvalidInputError
from dwbase.client import AsyncClient, Client


class Recorder:
    """A transport that records each request and answers like a node would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.sent.append((request.url.path, body))
        if request.url.path == "/remember":
            return httpx.Response(200, json=body["id"])
        if request.url.path == "/ask":
            return httpx.Response(
                200,
                json={"world": body["world"], "text": "", "supporting_atoms": [], "hits": []}
                | {"warnings": []},
            )
        return httpx.Response(200, json=[])


def test_the_client_refuses_a_remember_without_a_payload_and_sends_nothing() -> None:
    rec = Recorder()
    with Client("http://node", transport=httpx.MockTransport(rec)) as db:
        with pytest.raises(InvalidInputError, match="text='some text'"):
            db.remember("demo", "some text")
        with pytest.raises(InvalidInputError, match="only one of"):
            db.remember("demo", "a", payload={"x": 1}, text="x")
        db.remember("demo", "a", text="checkout latency 820ms")
    assert [(path, body["payload"]) for path, body in rec.sent] == [
        ("/remember", {"text": "checkout latency 820ms"})
    ]


def test_the_async_client_refuses_a_remember_without_a_payload_and_sends_nothing() -> None:
    rec = Recorder()

    async def main() -> None:
        async with AsyncClient("http://node", transport=httpx.MockTransport(rec)) as db:
            with pytest.raises(InvalidInputError, match="text='some text'"):
                await db.remember("demo", "some text")
            await db.remember("demo", "a", text="hello")

    asyncio.run(main())
    assert [body["payload"] for _, body in rec.sent] == [{"text": "hello"}]


def test_the_clients_ask_with_the_keyword_filters_of_replay() -> None:
    rec = Recorder()
    keywords: dict[str, Any] = {
        "kinds": ["observation"],
        "labels": ["web"],
        "flags": ["hot"],
        "since": "2024-05-01T00:00:00Z",
        "until": "2024-05-02T00:00:00Z",
    }

    async def main() -> None:
        async with AsyncClient("http://node", transport=httpx.MockTransport(rec)) as db:
            await db.ask("demo", "q", filter={"limit": 3}, **keywords)
            await db.replay("demo", filter={"limit": 3}, **keywords)

    with Client("http://node", transport=httpx.MockTransport(rec)) as db:
        db.ask("demo", "q", filter={"limit": 3}, **keywords)
        db.replay("demo", filter={"limit": 3}, **keywords)
    asyncio.run(main())
    filters = [body["filter"] for _, body in rec.sent]
    assert filters == [{"limit": 3, **keywords}] * 4
