"""The DWBase API: one set of methods on every surface (docs/library.md, docs/node.md).

:class:`DWBaseAPI` is what the embedded :class:`dwbase.Engine` and :class:`dwbase.Client`
(a node over HTTP) both offer; :class:`AsyncDWBaseAPI` is the same methods as coroutines,
offered by :class:`dwbase.AsyncDWBase` and :class:`dwbase.AsyncClient`. Code that takes a
``DWBaseAPI`` (the CLI does) runs unchanged on a local store or on a node:

>>> import dwbase
>>> def note(db: dwbase.DWBaseAPI, text: str) -> str:
...     return db.remember("demo", "agent-1", payload={"text": text})
>>> with dwbase.open(":memory:") as db:
...     db.get(note(db, "disk full")).payload
{'text': 'disk full'}

A surface may take more keyword options than these (the engine's ``caller=``); a method
that only one surface can offer (``Engine.check``, ``Client.observe_stream``) stays off
the protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .model import Answer, Atom, AtomFilter
from .results import AtomId, GcReport
from .stream import SubscriptionStats


@runtime_checkable
class DWBaseAPI(Protocol):
    """Remember, ask, replay, observe, worlds, policy, quarantine, indexes, gc and health."""

    # ------------------------------------------------------------------ writes

    def remember(
        self,
        world: str,
        worker: str | None = None,
        kind: str = "observation",
        payload: Mapping[str, Any] | None = None,
        *,
        payload_json: str | None = None,
        text: str | None = None,
        importance: float = 0.5,
        timestamp: str = "",
        vector: Sequence[float] | None = None,
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
    ) -> AtomId:
        """Store one atom durably and return its id (``aid.held`` if it was held).

        The payload is exactly one of ``payload`` (an object), ``payload_json`` (a JSON
        string) or ``text`` (short for ``payload={"text": text}``); none is an error."""
        ...

    def remember_atom(self, new_atom: Mapping[str, Any]) -> AtomId:
        """Store one atom given in its wire form (a NewAtom mapping)."""
        ...

    def remember_batch(self, atoms: Sequence[Mapping[str, Any]]) -> list[AtomId]:
        """Store several atoms: all of them, or none."""
        ...

    # ------------------------------------------------------------------ reads

    def ask(
        self,
        world: str,
        text: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
        as_of: str | None = None,
        rank: str = "hybrid",
        weights: Mapping[str, Any] | None = None,
        current_only: bool = False,
        vector: Sequence[float] | None = None,
    ) -> Answer:
        """The atoms of ``world`` that matter to ``text``, ranked, each with its score.

        ``filter=`` and the keywords ``kinds``, ``labels``, ``flags``, ``since``, ``until``
        select candidates as in :meth:`replay`."""
        ...

    def replay(
        self,
        world: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        as_of: str | None = None,
        order: str = "append",
        current_only: bool = False,
        after: str | None = None,
    ) -> list[Atom]:
        """The atoms of ``world`` in append (or event-time) order, filtered."""
        ...

    def get(self, atom_id: str) -> Atom:
        """The atom with this id; ``NotFoundError`` if absent or not readable."""
        ...

    def inspect(self, atom_id: str) -> Atom:
        """The same as :meth:`get` (the CLI's word)."""
        ...

    def list_worlds(self, *, include_archived: bool = False) -> list[str]:
        """The readable worlds; archived ones only with ``include_archived``."""
        ...

    # ------------------------------------------------------------------ worlds & policy

    def create_world(
        self, world: str, *, description: str | None = None, labels: Sequence[str] = ()
    ) -> AtomId:
        """Record a world's creation (it is active)."""
        ...

    def archive_world(self, world: str) -> AtomId:
        """Archive a world: it leaves default listings and refuses writes."""
        ...

    def resume_world(self, world: str) -> AtomId:
        """Make an archived world active again."""
        ...

    def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
    ) -> AtomId:
        """Record a policy for ``world`` (retention, minimum importance, replication)."""
        ...

    # ------------------------------------------------------------------ observe

    def observe_start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
    ) -> str:
        """Subscribe to new atoms; ``after=<id>`` first delivers stored atoms after it."""
        ...

    def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        """Up to ``max`` atoms queued for ``handle``."""
        ...

    def observe_stop(self, handle: str) -> None:
        """End a subscription."""
        ...

    def observe_stats(self, handle: str) -> SubscriptionStats:
        """Queued and dropped counts of a subscription."""
        ...

    # ------------------------------------------------------------------ operators

    def index_status(self, world: str | None = None) -> list[dict[str, Any]]:
        """Vector index metadata per readable world."""
        ...

    def index_rebuild(self, world: str | None = None) -> dict[str, Any]:
        """Rebuild the vector index of ``world`` (or of every world: an operator action)."""
        ...

    def quarantine_list(self, world: str | None = None, *, limit: int = 1000) -> list[Atom]:
        """Held atoms of the worlds the caller operates on."""
        ...

    def quarantine_release(self, atom_id: str) -> Atom:
        """Move a held atom back into its world."""
        ...

    def quarantine_drop(self, atom_id: str) -> None:
        """Delete a held atom."""
        ...

    def gc(self) -> GcReport:
        """Apply retention, minimum importance and the disk budget now."""
        ...

    def health(self) -> dict[str, Any]:
        """Operator health: storage, disk, indexes, background work, quarantine."""
        ...

    def close(self) -> None:
        """Release the store or the connection."""
        ...


@runtime_checkable
class AsyncDWBaseAPI(Protocol):
    """:class:`DWBaseAPI` with every method a coroutine."""

    # ------------------------------------------------------------------ writes

    async def remember(
        self,
        world: str,
        worker: str | None = None,
        kind: str = "observation",
        payload: Mapping[str, Any] | None = None,
        *,
        payload_json: str | None = None,
        text: str | None = None,
        importance: float = 0.5,
        timestamp: str = "",
        vector: Sequence[float] | None = None,
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
    ) -> AtomId: ...

    async def remember_atom(self, new_atom: Mapping[str, Any]) -> AtomId: ...

    async def remember_batch(self, atoms: Sequence[Mapping[str, Any]]) -> list[AtomId]: ...

    # ------------------------------------------------------------------ reads

    async def ask(
        self,
        world: str,
        text: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
        as_of: str | None = None,
        rank: str = "hybrid",
        weights: Mapping[str, Any] | None = None,
        current_only: bool = False,
        vector: Sequence[float] | None = None,
    ) -> Answer: ...

    async def replay(
        self,
        world: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        as_of: str | None = None,
        order: str = "append",
        current_only: bool = False,
        after: str | None = None,
    ) -> list[Atom]: ...

    async def get(self, atom_id: str) -> Atom: ...

    async def inspect(self, atom_id: str) -> Atom: ...

    async def list_worlds(self, *, include_archived: bool = False) -> list[str]: ...

    # ------------------------------------------------------------------ worlds & policy

    async def create_world(
        self, world: str, *, description: str | None = None, labels: Sequence[str] = ()
    ) -> AtomId: ...

    async def archive_world(self, world: str) -> AtomId: ...

    async def resume_world(self, world: str) -> AtomId: ...

    async def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
    ) -> AtomId: ...

    # ------------------------------------------------------------------ observe

    async def observe_start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
    ) -> str: ...

    async def observe_poll(self, handle: str, max: int = 100) -> list[Atom]: ...

    async def observe_stop(self, handle: str) -> None: ...

    async def observe_stats(self, handle: str) -> SubscriptionStats: ...

    # ------------------------------------------------------------------ operators

    async def index_status(self, world: str | None = None) -> list[dict[str, Any]]: ...

    async def index_rebuild(self, world: str | None = None) -> dict[str, Any]: ...

    async def quarantine_list(
        self, world: str | None = None, *, limit: int = 1000
    ) -> list[Atom]: ...

    async def quarantine_release(self, atom_id: str) -> Atom: ...

    async def quarantine_drop(self, atom_id: str) -> None: ...

    async def gc(self) -> GcReport: ...

    async def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...
