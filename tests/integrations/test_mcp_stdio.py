"""``dwbase mcp`` over stdio, driven by the MCP SDK's own client session, on an embedded
store and on a node."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import dwbase
from dwbase.config import load_settings
from dwbase.node import start_background

from .conftest import DWBASE, TOOLS, call, call_error


def _params(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=DWBASE, args=list(args), env={"NO_COLOR": "1"})


def test_dwbase_mcp_serves_memory_over_stdio_on_an_embedded_store(tmp_path: Path) -> None:
    data = tmp_path / "mem"

    async def scenario() -> str:
        params = _params("--data-dir", str(data), "mcp", "--worker", "claude")
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            info = await s.initialize()
            assert info.server_info.name == "dwbase"
            assert info.instructions and "remember" in info.instructions
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert set(tools) == TOOLS
            for t in tools.values():  # an LLM can act on each: a description and a schema
                assert t.description and len(t.description) > 40, t.name
                assert t.input_schema["type"] == "object"
            assert tools["ask"].input_schema["required"] == ["world", "question"]

            first = await call(
                s,
                "remember",
                world="ops",
                text="checkout latency 820ms",
                importance=0.9,
                labels=["latency"],
            )
            assert first["held"] is False
            fix = await call(
                s,
                "remember",
                world="ops",
                text="checkout latency back to 90ms",
                kind="observation",
                links=[{"target": first["id"], "kind": "supersedes"}],
            )
            ans = await call(s, "ask", world="ops", question="why is checkout slow?")
            assert {h["atom"]["id"] for h in ans["hits"]} == {first["id"], fix["id"]}
            assert all(h["atom"]["worker"] == "claude" for h in ans["hits"])
            current = await call(s, "ask", world="ops", question="checkout", current_only=True)
            assert [h["atom"]["id"] for h in current["hits"]] == [fix["id"]]
            labelled = await call(s, "replay", world="ops", labels=["latency"])
            assert [a["id"] for a in labelled["atoms"]] == [first["id"]]
            atom = (await call(s, "inspect", id=fix["id"]))["atom"]
            assert atom["links"] == [{"target": first["id"], "kind": "supersedes"}]
            assert atom["payload"] == {"text": "checkout latency back to 90ms"}
            assert (await call(s, "list_worlds")) == {"worlds": ["ops"]}

            now = await call(s, "observe_poll", world="ops")  # from now: a cursor, no atoms
            assert now == {"world": "ops", "atoms": [], "cursor": fix["id"], "more": False}
            page = await call(s, "observe_poll", world="ops", cursor="start", max=1)
            assert [a["id"] for a in page["atoms"]] == [first["id"]] and page["more"]
            page = await call(s, "observe_poll", world="ops", cursor=page["cursor"])
            assert [a["id"] for a in page["atoms"]] == [fix["id"]] and not page["more"]
            idle = await call(s, "observe_poll", world="ops", cursor=page["cursor"])
            assert idle["atoms"] == [] and idle["cursor"] == fix["id"]
            new = await call(s, "remember", world="ops", text="deploy 42 rolled back")
            later = await call(s, "observe_poll", world="ops", cursor=now["cursor"])
            assert [a["id"] for a in later["atoms"]] == [new["id"]]
            empty = await call(s, "observe_poll", world="new-world")
            assert empty["cursor"] == "start"  # nothing yet: the first atom will be new
            born = await call(s, "remember", world="new-world", text="hello")
            seen = await call(s, "observe_poll", world="new-world", cursor=empty["cursor"])
            assert [a["id"] for a in seen["atoms"]] == [born["id"]]

            err = await call_error(s, "remember", world="ops", text="x", importance=1.7)
            assert err["code"] == "invalid_input" and "importance" in err["message"]
            err = await call_error(s, "inspect", id="no-such-atom")
            assert err["code"] == "not_found"
            err = await call_error(s, "ask", world="ops")  # schema failure: still a code
            assert err["code"] == "invalid_input" and "question" in err["message"]

            listed = await s.read_resource("dwbase://worlds")
            worlds = json.loads(getattr(listed.contents[0], "text", ""))
            assert worlds == {
                "worlds": [
                    {"world": "new-world", "uri": "dwbase://world/new-world"},
                    {"world": "ops", "uri": "dwbase://world/ops"},
                ]
            }
            one = await s.read_resource("dwbase://world/ops")
            body = json.loads(getattr(one.contents[0], "text", ""))
            assert [a["id"] for a in body["atoms"]][-1] == new["id"]
            return str(fix["id"])

    fix_id = anyio.run(scenario)
    with dwbase.open(data) as db:  # the server wrote the store durably, as the client's worker
        assert db.get(fix_id).worker == "claude"


def test_dwbase_mcp_over_stdio_speaks_to_a_node_with_the_tokens_rights(tmp_path: Path) -> None:
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "node"), "access_log": False}, environ={}
    )
    with start_background(settings) as node:
        secret, _ = node.tokens.create("agent-7", read=["team/*"], write=["team/*"])
        node.engine.remember("secret", "owner", text="the launch code")

        async def scenario() -> None:
            params = _params("--api", node.url, "--token", secret, "mcp", "--worker", "claimed")
            async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                made = await call(s, "remember", world="team/a", text="standup moved to 10:00")
                atom = (await call(s, "inspect", id=made["id"]))["atom"]
                assert atom["worker"] == "agent-7"  # the token's worker, not --worker
                assert (await call(s, "list_worlds"))["worlds"] == ["team/a"]
                denied = await call_error(s, "ask", world="secret", question="launch code")
                assert denied["code"] == "capability_denied"
                denied = await call_error(s, "remember", world="secret", text="x")
                assert denied["code"] == "capability_denied"

        anyio.run(scenario)
