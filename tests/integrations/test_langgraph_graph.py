"""A compiled LangGraph graph with ``DWBaseStore`` as its long-term memory: what the user says
in one thread is remembered in the store and recalled in another thread, with a fake chat
model from langchain_core (offline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime

import dwbase
from dwbase.integrations.langgraph import DWBaseStore


@dataclass
class UserContext:
    user_id: str


class Prompts(BaseCallbackHandler):
    """Records what the chat model was shown."""

    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.seen.extend(messages)


def build(store: DWBaseStore, model: GenericFakeChatModel) -> Any:
    def chat(state: MessagesState, runtime: Runtime[UserContext]) -> dict[str, Any]:
        assert runtime.store is not None
        namespace = ("memories", runtime.context.user_id)
        last = state["messages"][-1].text
        if last.lower().startswith("remember "):
            key = f"m{len(runtime.store.search(namespace)) + 1}"
            runtime.store.put(namespace, key, {"fact": last[len("remember ") :]})
        facts = [m.value["fact"] for m in runtime.store.search(namespace, query=last)]
        system = SystemMessage("Known facts about the user: " + "; ".join(facts))
        return {"messages": [model.invoke([system, *state["messages"]])]}

    graph = StateGraph(MessagesState, context_schema=UserContext)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    return graph.compile(checkpointer=InMemorySaver(), store=store)


def test_a_graph_recalls_in_one_thread_what_it_stored_in_another(tmp_path: Any) -> None:
    prompts = Prompts()
    model = GenericFakeChatModel(
        messages=iter([AIMessage("Noted."), AIMessage("Your name is Ada."), AIMessage("Hi.")]),
        callbacks=[prompts],
    )
    with dwbase.open(tmp_path / "mem") as db:
        app = build(DWBaseStore(db), model)
        ada = UserContext(user_id="ada")

        def say(thread: str, text: str, who: UserContext = ada) -> str:
            out = app.invoke(
                {"messages": [HumanMessage(text)]},
                {"configurable": {"thread_id": thread}},
                context=who,
            )
            return str(out["messages"][-1].text)

        assert say("thread-1", "remember my name is Ada") == "Noted."
        assert say("thread-2", "what is my name?") == "Your name is Ada."
        # Thread 2 began empty (the checkpointer keeps threads apart) and still knew the fact.
        second = prompts.seen[1]
        assert [type(m).__name__ for m in second] == ["SystemMessage", "HumanMessage"]
        assert "my name is Ada" in second[0].text
        # Another user's memory is another namespace, and so another world.
        assert say("thread-3", "hello", UserContext(user_id="bob")) == "Hi."
        assert "Ada" not in prompts.seen[2][0].text
        assert db.list_worlds() == ["langgraph/memories/ada"]
        assert db.replay("langgraph/memories/ada")[0].payload["value"] == {"fact": "my name is Ada"}
