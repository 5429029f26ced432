"""LangChain: ``DWBaseRetriever`` over ask and ``DWBaseChatMessageHistory`` over a world, on
an embedded store and (the retriever) through a node's token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

import dwbase
from dwbase.client import Client
from dwbase.config import load_settings
from dwbase.errors import CapabilityDeniedError
from dwbase.integrations.langchain import DWBaseChatMessageHistory, DWBaseRetriever
from dwbase.node import start_background


def test_the_retriever_returns_the_hits_of_ask_best_first(tmp_path: Path) -> None:
    with dwbase.open(tmp_path / "mem") as db:
        slow = db.remember(
            "ops",
            "a",
            text="checkout latency 820ms after deploy 42",
            importance=0.9,
            labels=["latency"],
        )
        db.remember("ops", "a", text="the office coffee machine is broken")
        plan = db.remember("ops", "a", "plan", {"text": "roll back deploy 42 to fix checkout"})
        fixed = db.remember(
            "ops",
            "a",
            text="checkout latency back to 90ms",
            links=[{"target": slow, "kind": "supersedes"}],
        )

        docs = DWBaseRetriever(db=db, world="ops", k=2, current_only=False).invoke(
            "checkout latency"
        )
        assert len(docs) == 2
        assert {d.metadata["id"] for d in docs} <= {slow, fixed, plan}
        assert docs[0].metadata["score"] >= docs[1].metadata["score"]
        assert all(d.metadata["world"] == "ops" and d.id == d.metadata["id"] for d in docs)

        current = DWBaseRetriever(db=db, world="ops", k=10).invoke("checkout latency")
        assert slow not in {d.id for d in current}  # superseded: hidden by default
        plans = DWBaseRetriever(db=db, world="ops", kinds=["plan"]).invoke("checkout")
        assert [d.page_content for d in plans] == ["roll back deploy 42 to fix checkout"]
        labelled = DWBaseRetriever(db=db, world="ops", labels=["latency"], current_only=False)
        assert [d.id for d in labelled.invoke("checkout")] == [slow]

        async_docs = asyncio.run(DWBaseRetriever(db=db, world="ops").ainvoke("checkout"))
        assert [d.id for d in async_docs] == [d.id for d in current[:4]]


def test_the_retriever_on_a_node_reads_only_what_its_token_may(tmp_path: Path) -> None:
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "n"), "access_log": False}, environ={}
    )
    with start_background(settings) as node:
        node.engine.remember("team/a", "x", text="standup at 10:00")
        node.engine.remember("secret", "x", text="standup passphrase")
        secret, _ = node.tokens.create("agent", read=["team/*"], write=[])
        with Client(node.url, token=secret) as client:
            docs = DWBaseRetriever(db=client, world="team/a").invoke("standup")
            assert [d.page_content for d in docs] == ["standup at 10:00"]
            with pytest.raises(CapabilityDeniedError):
                DWBaseRetriever(db=client, world="secret").invoke("standup")


def test_the_chat_history_keeps_each_session_in_the_world(tmp_path: Path) -> None:
    said = [
        SystemMessage("be brief"),
        HumanMessage("my name is Ada"),
        AIMessage("Hello Ada", additional_kwargs={"note": 1}),
    ]
    with dwbase.open(tmp_path / "mem") as db:
        one = DWBaseChatMessageHistory(db, world="chat:ada", session_id="s1")
        other = DWBaseChatMessageHistory(db, world="chat:ada", session_id="s2")
        one.add_messages(said)
        other.add_user_message("another conversation")
        assert one.messages == said
        assert [m.text for m in other.messages] == ["another conversation"]
        one.clear()
        assert one.messages == []
        one.add_ai_message("fresh start")
        assert [m.text for m in asyncio.run(one.aget_messages())] == ["fresh start"]
        kinds = {a.kind for a in db.replay("chat:ada")}
        assert kinds == {"message"}
        assert len(db.replay("chat:ada")) == 6  # nothing is lost: clear is a marker
    with dwbase.open(tmp_path / "mem") as db:  # and it is all on disk
        again = DWBaseChatMessageHistory(db, world="chat:ada", session_id="s1")
        assert [m.text for m in again.messages] == ["fresh start"]
