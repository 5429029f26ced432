"""``dwbase.open`` and ``dwbase.open_async``: the embedded library, sync and async.

Both give the one DWBase API (:class:`DWBaseAPI`, :class:`AsyncDWBaseAPI`, defined in
:mod:`dwbase.protocol`) that :class:`dwbase.Client` and :class:`dwbase.AsyncClient` give
over HTTP.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .engine import Engine
from .errors import InvalidInputError
from .health import MIN_FREE_MB
from .model import Answer, Atom, AtomFilter
from .options import Options
from .policy import Policy
from .protocol import AsyncDWBaseAPI, DWBaseAPI
from .results import AtomId, GcReport, IngestResult
from .security.caps import Caller
from .storage.base import CheckReport
from .storage.memory import MemoryStorage
from .stream import SubscriptionStats


def open(path: str | os.PathLike[str] = "./dwbase-data", **options: Any) -> Engine:
    """Open (or create) a store. ``":memory:"`` gives an in-memory store for tests/notebooks.

    Keyword options are the fields of :class:`dwbase.Options` (``embedder=``, ``clock=``,
    ``durability="normal"|"full"``, ``trust=``, ``gc_interval_s=``, ...).

    >>> import dwbase
    >>> db = dwbase.open(":memory:")
    >>> db.list_worlds()
    []
    >>> db.close()
    """
    known = set(Options.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise InvalidInputError(
            f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    opts = Options(**options)
    target = os.fspath(path)
    if target == ":memory:":
        if opts.encryption_key is not None:
            raise InvalidInputError(
                "encryption at rest needs a store on disk, not ':memory:'", field="encryption_key"
            )
        return Engine(MemoryStorage(), opts)
    if os.path.exists(target) and not os.path.isdir(target):
        raise InvalidInputError(f"{target} exists and is not a directory", field="path")
    # SQLite is imported only when a store on disk is opened: the WASI component, whose
    # Python has no sqlite3, imports this module too.
    from .storage.sqlite import SQLiteStorage, sqlite_path

    storage = SQLiteStorage(
        sqlite_path(target),
        durability=opts.durability,
        encryption_key=opts.encryption_key,
        key_provider=opts.key_provider,
    )
    return Engine(storage, opts)


class AsyncDWBase:
    """Async twin of :class:`Engine`: the same methods as coroutines, run on worker threads.

    It implements :class:`dwbase.AsyncDWBaseAPI` (as :class:`dwbase.AsyncClient` does for a
    node), plus the engine's embedded-only methods (``ingest``, ``check``, ``compact`` ...);
    ``db.engine`` is the engine itself.

    >>> import asyncio, dwbase
    >>> async def main():
    ...     async with dwbase.open_async(":memory:") as db:
    ...         aid = await db.remember("demo", "a", "observation", {"text": "hi"})
    ...         return (await db.get(aid)).payload
    >>> asyncio.run(main())
    {'text': 'hi'}
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)

    async def __aenter__(self) -> AsyncDWBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        caller: Caller | None = None,
    ) -> AtomId:
        return await asyncio.to_thread(
            self.engine.remember,
            world,
            worker,
            kind,
            payload,
            payload_json=payload_json,
            text=text,
            importance=importance,
            timestamp=timestamp,
            vector=vector,
            flags=flags,
            labels=labels,
            links=links,
            caller=caller,
        )

    async def remember_atom(
        self, new_atom: Mapping[str, Any], *, caller: Caller | None = None
    ) -> AtomId:
        return await asyncio.to_thread(self.engine.remember_atom, new_atom, caller=caller)

    async def remember_batch(
        self, atoms: Sequence[Mapping[str, Any]], *, caller: Caller | None = None
    ) -> list[AtomId]:
        return await asyncio.to_thread(self.engine.remember_batch, atoms, caller=caller)

    async def ingest(
        self, atoms: Iterable[Atom | Mapping[str, Any]], *, caller: Caller | None = None
    ) -> IngestResult:
        return await asyncio.to_thread(self.engine.ingest, atoms, caller=caller)

    async def observe(self, atom: Atom | Mapping[str, Any], *, caller: Caller | None = None) -> int:
        return await asyncio.to_thread(self.engine.observe, atom, caller=caller)

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
        caller: Caller | None = None,
    ) -> Answer:
        return await asyncio.to_thread(
            self.engine.ask,
            world,
            text,
            filter=filter,
            kinds=kinds,
            labels=labels,
            flags=flags,
            since=since,
            until=until,
            limit=limit,
            as_of=as_of,
            rank=rank,
            weights=weights,
            current_only=current_only,
            vector=vector,
            caller=caller,
        )

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
        caller: Caller | None = None,
    ) -> list[Atom]:
        return await asyncio.to_thread(
            self.engine.replay,
            world,
            filter=filter,
            kinds=kinds,
            labels=labels,
            flags=flags,
            since=since,
            until=until,
            limit=limit,
            as_of=as_of,
            order=order,
            current_only=current_only,
            after=after,
            caller=caller,
        )

    async def get(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        return await asyncio.to_thread(self.engine.get, atom_id, caller=caller)

    inspect = get

    async def list_worlds(
        self, *, include_archived: bool = False, caller: Caller | None = None
    ) -> list[str]:
        return await asyncio.to_thread(
            self.engine.list_worlds, include_archived=include_archived, caller=caller
        )

    # ------------------------------------------------------------------ worlds & policy

    async def world_status(self, world: str) -> str:
        return await asyncio.to_thread(self.engine.world_status, world)

    async def create_world(
        self,
        world: str,
        *,
        description: str | None = None,
        labels: Sequence[str] = (),
        caller: Caller | None = None,
    ) -> AtomId:
        return await asyncio.to_thread(
            self.engine.create_world, world, description=description, labels=labels, caller=caller
        )

    async def archive_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        return await asyncio.to_thread(self.engine.archive_world, world, caller=caller)

    async def resume_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        return await asyncio.to_thread(self.engine.resume_world, world, caller=caller)

    async def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
        caller: Caller | None = None,
    ) -> AtomId:
        return await asyncio.to_thread(
            self.engine.set_policy,
            world,
            retention_days=retention_days,
            retention_min_days=retention_min_days,
            min_importance=min_importance,
            replication_allow=replication_allow,
            replication_deny=replication_deny,
            caller=caller,
        )

    async def policy(self, world: str) -> Policy:
        return await asyncio.to_thread(self.engine.policy, world)

    # ------------------------------------------------------------------ observe

    async def observe_start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
        caller: Caller | None = None,
    ) -> str:
        return await asyncio.to_thread(
            self.engine.observe_start,
            world,
            filter=filter,
            after=after,
            capacity=capacity,
            drop_policy=drop_policy,
            caller=caller,
        )

    async def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        return await asyncio.to_thread(self.engine.observe_poll, handle, max)

    async def observe_stop(self, handle: str) -> None:
        await asyncio.to_thread(self.engine.observe_stop, handle)

    async def observe_stats(self, handle: str) -> SubscriptionStats:
        return await asyncio.to_thread(self.engine.observe_stats, handle)

    # ------------------------------------------------------------------ operators

    async def index_status(
        self, world: str | None = None, *, caller: Caller | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.engine.index_status, world, caller=caller)

    async def index_rebuild(
        self, world: str | None = None, *, wait: bool = True, caller: Caller | None = None
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.index_rebuild, world, wait=wait, caller=caller)

    async def quarantine_list(
        self, world: str | None = None, *, limit: int = 1000, caller: Caller | None = None
    ) -> list[Atom]:
        return await asyncio.to_thread(
            self.engine.quarantine_list, world, limit=limit, caller=caller
        )

    async def quarantine_release(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        return await asyncio.to_thread(self.engine.quarantine_release, atom_id, caller=caller)

    async def quarantine_drop(self, atom_id: str, *, caller: Caller | None = None) -> None:
        await asyncio.to_thread(self.engine.quarantine_drop, atom_id, caller=caller)

    async def gc(self, *, caller: Caller | None = None) -> GcReport:
        return await asyncio.to_thread(self.engine.gc, caller=caller)

    async def check(self, *, quick: bool = False) -> CheckReport:
        return await asyncio.to_thread(self.engine.check, quick=quick)

    async def reindex(self) -> int:
        return await asyncio.to_thread(self.engine.reindex)

    async def compact(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.compact)

    async def encryption_status(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.engine.encryption_status)

    async def rotate_key(self, to: str, *, batch: int = 500) -> dict[str, Any]:
        """Re-encrypt under key ``to`` on a worker thread (see :meth:`Engine.rotate_key`)."""
        return await asyncio.to_thread(self.engine.rotate_key, to, batch=batch)

    async def erase_subject(self, subject: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.erase_subject, subject)

    async def add_erasable_worlds(self, patterns: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self.engine.add_erasable_worlds, patterns)

    async def erase_world(self, world: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.erase_world, world)

    async def stats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.stats)

    async def health(
        self,
        *,
        disk_path: str | None = None,
        warn_pct: float = 80.0,
        degraded_pct: float = 90.0,
        min_free_mb: float = MIN_FREE_MB,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.engine.health,
            disk_path=disk_path,
            warn_pct=warn_pct,
            degraded_pct=degraded_pct,
            min_free_mb=min_free_mb,
        )


__all__ = ["AsyncDWBase", "AsyncDWBaseAPI", "DWBaseAPI", "open", "open_async"]


def open_async(path: str | os.PathLike[str] = "./dwbase-data", **options: Any) -> AsyncDWBase:
    """Like :func:`open`, returning an :class:`AsyncDWBase`."""
    return AsyncDWBase(open(path, **options))
