"""The node's ``/mcp``: the SDK's streamable-HTTP client against a real node on loopback,
behind the node's tokens. The authorization matrix of tests/node/test_authz.py, through MCP:
no tool or resource returns an atom of a world the token may not read."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

import dwbase
from dwbase.config import load_settings
from dwbase.node import create_app, start_background
from dwbase.node.server import RunningNode
from dwbase.security.caps import world_matches

from .conftest import TOOLS, call, call_error

WORLDS = ["demo", "demo-2", "secret", "tenant:acme/support", "tenant:other/x"]
TOKENS: dict[str, tuple[list[str], list[str]]] = {  # name -> (read, write)
    "demo": (["demo*"], ["demo"]),
    "acme": (["tenant:acme/*"], ["tenant:acme/*"]),
    "reader": (["*"], []),
    "nobody": ([], []),
}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "node"), "access_log": False}, environ={}
    )
    with start_background(settings) as running:
        yield running


@asynccontextmanager
async def session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        yield s


def atoms_in(body: Any) -> Iterator[dict[str, Any]]:
    """Every atom-shaped object anywhere in a result."""
    if isinstance(body, dict):
        if {"id", "world", "worker", "kind"} <= set(body):
            yield body
        for v in body.values():
            yield from atoms_in(v)
    elif isinstance(body, list):
        for v in body:
            yield from atoms_in(v)


def test_mcp_over_http_on_a_real_node_uses_the_tokens_worker(node: RunningNode) -> None:
    secret, _ = node.tokens.create("agent-1", read=["demo*"], write=["demo"])

    async def scenario() -> None:
        async with session(node.url, secret) as s:
            assert {t.name for t in (await s.list_tools()).tools} == TOOLS
            made = await call(s, "remember", world="demo", text="checkout latency 820ms")
            ans = await call(s, "ask", world="demo", question="checkout latency")
            assert [h["atom"]["id"] for h in ans["hits"]] == [made["id"]]
            assert ans["hits"][0]["atom"]["worker"] == "agent-1"
            err = await call_error(s, "remember", world="demo", text="x", importance=-1)
            assert err["code"] == "invalid_input"

    anyio.run(scenario)
    assert node.engine.replay("demo")[0].worker == "agent-1"


def test_mcp_on_a_node_spends_the_tokens_rate_limits(node: RunningNode) -> None:
    secret, _ = node.tokens.create("slow", read=["*"], write=["*"], remember_rate=0.01)

    async def scenario() -> None:
        async with session(node.url, secret) as s:
            await call(s, "remember", world="demo", text="first")
            err = await call_error(s, "remember", world="demo", text="second")
            assert err["code"] == "rate_limited" and err["details"]["retry_after"] > 0
            await call(s, "ask", world="demo", question="first")  # asks have their own

    anyio.run(scenario)
    assert [a.payload["text"] for a in node.engine.replay("demo")] == ["first"]


def test_mcp_on_a_node_refuses_a_request_without_a_valid_token(node: RunningNode) -> None:
    secret, info = node.tokens.create("agent-1", read=["*"], write=["*"])
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx2.Client(base_url=node.url, headers=accept) as http:
        ok = http.post("/mcp", json=hello, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["serverInfo"]["name"] == "dwbase"
        for headers in ({}, {"Authorization": "Bearer dwb_nope_nope"}):
            r = http.post("/mcp", json=hello, headers=headers)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "unauthenticated"
        node.tokens.revoke(info.id)
        r = http.post("/mcp", json=hello, headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401  # revoked: refused at its next request


def test_no_mcp_tool_returns_an_atom_of_a_world_the_token_may_not_read(
    node: RunningNode,
) -> None:
    seeded = {w: node.engine.remember(w, "seed", text=f"seed of {w}") for w in WORLDS}
    secrets = {
        name: node.tokens.create(f"worker-{name}", read=read, write=write)[0]
        for name, (read, write) in TOKENS.items()
    }

    async def as_token(name: str) -> None:
        read, write = TOKENS[name]
        async with session(node.url, secrets[name]) as s:

            async def expect(allowed: bool, tool: str, deny: str, **args: Any) -> None:
                if allowed:
                    body = await call(s, tool, **args)
                    for atom in atoms_in(body):
                        assert world_matches(atom["world"], read), (name, tool, atom["world"])
                else:
                    err = await call_error(s, tool, **args)
                    assert err["code"] == deny, (name, tool, err)

            listed = (await call(s, "list_worlds"))["worlds"]
            assert listed == sorted(w for w in WORLDS if world_matches(w, read))
            for world in WORLDS:
                ok = world_matches(world, read)
                await expect(ok, "ask", "capability_denied", world=world, question="seed")
                await expect(ok, "replay", "capability_denied", world=world)
                await expect(ok, "observe_poll", "capability_denied", world=world)
                await expect(ok, "inspect", "not_found", id=seeded[world])
                if not ok:  # a cursor from an unreadable world tells nothing either
                    other = "demo" if world != "demo" else "demo-2"
                    deny = "not_found" if world_matches(other, read) else "capability_denied"
                    await expect(False, "observe_poll", deny, world=other, cursor=seeded[world])
                wrote = world_matches(world, write)
                await expect(wrote, "remember", "capability_denied", world=world, text="w")
                if ok:
                    contents = await s.read_resource(f"dwbase://world/{world}")
                    text = getattr(contents.contents[0], "text", "")
                    assert {a["world"] for a in json.loads(text)["atoms"]} == {world}
                else:
                    with pytest.raises(MCPError, match=r"error\[capability_denied\]"):
                        await s.read_resource(f"dwbase://world/{world}")
            worlds = json.loads(
                getattr((await s.read_resource("dwbase://worlds")).contents[0], "text", "")
            )
            assert [w["world"] for w in worlds["worlds"]] == listed

    async def scenario() -> None:
        for name in TOKENS:
            await as_token(name)

    anyio.run(scenario)


def test_mcp_on_a_node_answers_only_post_and_is_counted_as_its_route(tmp_path: Path) -> None:
    app = create_app(dwbase.open(":memory:"), load_settings(None, {}, environ={}))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with TestClient(app) as http:
        r = http.post("/mcp", json=ping, headers={"Accept": "application/json, text/event-stream"})
        assert r.status_code == 200 and r.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        for method in ("GET", "DELETE"):  # stateless: no stream to hold open, no session
            r = http.request(method, "/mcp", headers={"Accept": "text/event-stream"})
            assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        metrics = http.get("/metrics").text
        assert 'dwbase_http_requests_total{route="/mcp",status="200"} 1.0' in metrics


def test_one_tokens_mcp_requests_take_turns_behind_its_own(tmp_path: Path) -> None:
    """While a caller holds all its turns (replays and MCP requests), its next MCP request
    waits; another caller's is answered at once."""
    settings = load_settings(None, {"data_dir": str(tmp_path / "d")}, environ={})
    engine = settings.open_engine()
    app = create_app(engine, settings)
    state = app.state.node
    busy, busy_info = state.tokens.create("busy", read=["*"], write=["*"])
    other, _ = state.tokens.create("other", read=["*"], write=["*"])
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}

    async def scenario() -> None:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://node") as http:

            async def post(secret: str) -> int:
                auth = {"Authorization": f"Bearer {secret}", **accept}
                return (await http.post("/mcp", json=ping, headers=auth)).status_code

            async with contextlib.AsyncExitStack() as held:
                for _ in range(state.replay_share):
                    await held.enter_async_context(state.turn(f"token:{busy_info.id}"))
                waiting = asyncio.create_task(post(busy))
                assert await post(other) == 200
                await asyncio.sleep(0.05)
                assert not waiting.done()
            assert await waiting == 200

    try:
        asyncio.run(scenario())
    finally:
        engine.close()
