"""The MCP server in process (the SDK's in-memory client): the parts the stdio and HTTP
tests do not reach."""

from __future__ import annotations

import json

import anyio
from mcp import Client

import dwbase
from dwbase.integrations.mcp_server import RESOURCE_ATOMS, build_server

from .conftest import call, call_error


def test_a_world_resource_holds_its_latest_atoms_oldest_first() -> None:
    with dwbase.open(":memory:") as db:
        ids = [
            db.remember(
                "ops",
                "a",
                text=f"event {i}",
                timestamp=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            )
            for i in range(RESOURCE_ATOMS + 30)
        ]

        async def scenario() -> None:
            async with Client(build_server(lambda: db)) as mcp:
                read = await mcp.read_resource("dwbase://world/ops")
                body = json.loads(getattr(read.contents[0], "text", ""))
                assert [a["id"] for a in body["atoms"]] == ids[-RESOURCE_ATOMS:]

        anyio.run(scenario)


def test_remember_keeps_data_beside_the_text_and_refuses_a_second_text() -> None:
    with dwbase.open(":memory:") as db:

        async def scenario() -> None:
            async with Client(build_server(lambda: db, worker="w")) as mcp:
                session = mcp.session
                made = await call(
                    session,
                    "remember",
                    world="ops",
                    text="disk 91% full",
                    data={"host": "db-1", "pct": 91},
                    kind="observation",
                    labels=["disk"],
                )
                atom = db.get(made["id"])
                assert atom.payload == {"text": "disk 91% full", "host": "db-1", "pct": 91}
                assert (atom.worker, atom.labels) == ("w", ("disk",))
                err = await call_error(
                    session, "remember", world="ops", text="x", data={"text": "y"}
                )
                assert err["code"] == "invalid_input" and err["details"]["field"] == "data"

        anyio.run(scenario)
