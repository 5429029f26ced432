"""LangChain: a retriever over ``ask`` and a chat message history kept in a world.

Both work on any :class:`dwbase.DWBaseAPI` (an embedded store or :class:`dwbase.Client`).
Needs the ``langchain`` extra (``pip install 'dwbase[langchain]'``).

>>> import dwbase
>>> db = dwbase.open(":memory:")
>>> _ = db.remember("ops", "agent", text="checkout latency 820ms after deploy 42")
>>> retriever = DWBaseRetriever(db=db, world="ops", k=3)
>>> [d.page_content for d in retriever.invoke("why is checkout slow?")]
['checkout latency 820ms after deploy 42']
>>> history = DWBaseChatMessageHistory(db, world="chat:ada", session_id="s1")
>>> history.add_user_message("hi"); history.add_ai_message("hello Ada")
>>> [m.text for m in history.messages]
['hi', 'hello Ada']
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ..model import Atom, Hit
from ..protocol import DWBaseAPI

MESSAGE_LABEL = "langchain:message"
CLEAR_LABEL = "langchain:clear"


def atom_text(atom: Atom) -> str:
    """An atom's text for a document: its payload's ``text``, or the payload as JSON."""
    payload = atom.payload
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return str(payload["text"])
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)


def hit_document(hit: Hit) -> Document:
    a = hit.atom
    return Document(
        page_content=atom_text(a),
        id=a.id,
        metadata={
            "id": a.id,
            "world": a.world,
            "worker": a.worker,
            "kind": a.kind,
            "timestamp": a.timestamp,
            "importance": a.importance,
            "labels": list(a.labels),
            "score": hit.score,
        },
    )


class DWBaseRetriever(BaseRetriever):
    """Documents for a question: the hits of ``db.ask(world, question)``, best first.

    ``k`` caps the hits; ``kinds``, ``labels`` and ``current_only`` select candidates as in
    :meth:`dwbase.Engine.ask`. Each document's metadata carries the atom's id, world,
    worker, kind, timestamp, importance, labels and score.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    db: Any  # a DWBaseAPI; Any because pydantic cannot check a Protocol
    world: str
    k: int = 4
    kinds: list[str] | None = None
    labels: list[str] | None = None
    current_only: bool = True

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        db: DWBaseAPI = self.db
        answer = db.ask(
            self.world,
            query,
            limit=self.k,
            kinds=self.kinds,
            labels=self.labels,
            current_only=self.current_only,
        )
        return [hit_document(h) for h in answer.hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await asyncio.to_thread(
            self._get_relevant_documents, query, run_manager=run_manager.get_sync()
        )


class DWBaseChatMessageHistory(BaseChatMessageHistory):
    """A conversation kept as ``message`` atoms of ``world``, one session per ``session_id``.

    Atoms are immutable: :meth:`clear` stores a marker, and :attr:`messages` are those after
    the latest marker; ``replay`` of the world still shows the whole conversation.
    """

    def __init__(
        self, db: DWBaseAPI, *, world: str, session_id: str = "default", worker: str = "langchain"
    ) -> None:
        self.db = db
        self.world = world
        self.session_id = session_id
        self.worker = worker

    @property
    def _session_label(self) -> str:
        return f"langchain:session:{self.session_id}"

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages since it was last cleared, oldest first."""
        atoms = self.db.replay(self.world, labels=[self._session_label])
        kept: list[dict[str, Any]] = []
        for atom in atoms:
            if CLEAR_LABEL in atom.labels:
                kept.clear()
            elif MESSAGE_LABEL in atom.labels:
                kept.append(atom.payload["message"])
        return messages_from_dict(kept)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages in one transaction, in order."""
        if not messages:
            return
        self.db.remember_batch(
            [
                {
                    "world": self.world,
                    "worker": self.worker,
                    "kind": "message",
                    "payload": {"text": m.text, "role": m.type, "message": message_to_dict(m)},
                    "labels": [MESSAGE_LABEL, self._session_label],
                }
                for m in messages
            ]
        )

    def clear(self) -> None:
        """Start the session afresh (earlier messages stay in the world's history)."""
        self.db.remember(
            self.world,
            self.worker,
            "message",
            {"text": "(conversation cleared)", "cleared": True},
            labels=[CLEAR_LABEL, self._session_label],
        )
