"""Long-term memory for a LangGraph agent: what a user says in one thread is recalled in another.

Runs offline (a fake chat model from langchain_core stands in for an LLM):

    pip install 'dwbase[langchain]'
    python examples/langgraph_memory.py ./agent-memory

The graph's checkpointer keeps each thread's messages; DWBaseStore keeps what should outlive
a thread, one world per namespace (here ``langgraph/memories/<user>``). Run it twice: the
second run recalls the facts of the first, because they are in the store on disk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime

import dwbase
from dwbase.integrations.langgraph import DWBaseStore


@dataclass
class User:
    user_id: str


def build(store: DWBaseStore, model: Any) -> Any:
    """A one-node chat graph that stores "remember ..." facts and recalls the relevant ones."""

    def chat(state: MessagesState, runtime: Runtime[User]) -> dict[str, Any]:
        assert runtime.store is not None
        namespace = ("memories", runtime.context.user_id)
        said = state["messages"][-1].text
        if said.lower().startswith("remember "):
            key = f"fact-{len(runtime.store.search(namespace, limit=1000)) + 1}"
            runtime.store.put(namespace, key, {"fact": said[len("remember ") :]})
        recalled = [m.value["fact"] for m in runtime.store.search(namespace, query=said)]
        print(f"  recalled: {recalled}")
        system = SystemMessage("What you know about the user: " + "; ".join(recalled))
        return {"messages": [model.invoke([system, *state["messages"]])]}

    graph = StateGraph(MessagesState, context_schema=User)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    return graph.compile(checkpointer=InMemorySaver(), store=store)


def main(data_dir: str) -> None:
    replies = iter([AIMessage("Noted, Ada."), AIMessage("You prefer tea, Ada.")])
    model = GenericFakeChatModel(messages=replies)
    with dwbase.open(data_dir) as db:
        app = build(DWBaseStore(db), model)
        for thread, text in [
            ("thread-1", "remember I prefer tea over coffee"),
            ("thread-2", "what do I like to drink, tea or coffee?"),
        ]:
            print(f"[{thread}] user: {text}")
            out = app.invoke(
                {"messages": [HumanMessage(text)]},
                {"configurable": {"thread_id": thread}},
                context=User(user_id="ada"),
            )
            print(f"[{thread}] assistant: {out['messages'][-1].text}")
        history = db.replay("langgraph/memories/ada")
        print(f"world langgraph/memories/ada holds {len(history)} atom(s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "./agent-memory")
