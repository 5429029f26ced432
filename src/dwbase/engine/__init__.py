"""The engine: one façade over small services that each do one job.

Every edge (library, HTTP node, CLI, MCP, WASI component) is a thin translation onto these
methods. ``caller`` (a :class:`~dwbase.security.Caller`) is checked on every read and write;
``None`` means the embedded owner of the store, who may do everything.

The services, each given only what it needs:

* :class:`~dwbase.engine.writer.Writer` — remember, batches, group commit, ingest;
* :class:`~dwbase.engine.reads.Reader` — get, replay, ask (:mod:`dwbase.ask`);
* :class:`~dwbase.engine.observe.Observing` — observe and subscriptions, fed by the store's
  :class:`~dwbase.stream.feed.Feed`;
* :class:`~dwbase.engine.admin.WorldAdmin` — world lifecycle and policy;
* :class:`~dwbase.engine.maintenance.Maintenance` — held atoms, gc, check, reindex, compact,
  index administration, stats and health;
* :class:`~dwbase.engine.worlds.WorldCache` and :class:`~dwbase.engine.sync.StoreSync` —
  what is cached of worlds, and noticing what other processes changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..background import BackgroundFailures
from ..embed import resolve_embedder
from ..errors import DWBaseError
from ..health import MIN_FREE_MB
from ..indexes import IndexHost, IndexManager
from ..model import Answer, Atom, AtomFilter, remember_payload
from ..options import Options
from ..policy import Policy
from ..results import AtomId, Counters, GcReport, IngestResult
from ..security.caps import Caller
from ..storage.base import CheckReport, Storage
from ..stream import Hub, SubscriptionStats
from ..stream.feed import Feed
from ..timeutil import now_micros
from . import keys
from .admin import WorldAdmin
from .maintenance import Maintenance
from .observe import Observing
from .reads import Reader
from .sync import StoreSync, Watcher
from .worlds import Generation, WorldCache
from .writer import EmbedderRecord, Writer

__all__ = ["Engine"]


class Engine:
    """A DWBase store. Thread-safe; use :func:`dwbase.open` to make one."""

    def __init__(self, storage: Storage, options: Options | None = None) -> None:
        self.options = options or Options()
        self.storage = storage
        self.clock = self.options.clock
        self.embedder = resolve_embedder(
            self.options.embedder, storage.meta_get("embedder"), reembed=self.options.reembed
        )
        self.hub = Hub(
            self.clock,
            default_capacity=self.options.observe_capacity,
            idle_ttl_s=self.options.observe_idle_ttl_s,
        )
        self.counters = Counters()
        self.background = BackgroundFailures(self.clock)  # gc, index and re-embed failures
        self._closed = False
        self._lock = threading.RLock()  # one writer at a time in this process
        self._generation = Generation()
        self._worlds = WorldCache(storage, self.embedder.dim, self._generation)
        self.indexes = IndexManager(
            IndexHost(
                storage=storage,
                embedder=self.embedder,
                options=self.options,
                background=self.background,
                world_dim=self._worlds.dim,
                forget_dims=self._worlds.forget_dims,
                now_us=lambda: now_micros(self.clock),
                is_closed=lambda: self._closed,
            )
        )
        self.feed = Feed(storage, self.hub, self._lock)
        self._sync = StoreSync(storage, self.feed, self._worlds, self._forget_for_others)
        self._watcher = Watcher(self._sync, self.hub.waiting, self.background)
        record = EmbedderRecord(storage, self.embedder, self.indexes.embedder_changed)
        self._writer = Writer(
            storage=storage,
            options=self.options,
            embedder=self.embedder,
            worlds=self._worlds,
            feed=self.feed,
            sync=self._sync,
            counters=self.counters,
            lock=self._lock,
            embedder_record=record,
            on_stored=self.indexes.stored,
        )
        self._reader = Reader(
            storage=storage,
            options=self.options,
            embedder=self.embedder,
            indexes=self.indexes,
            worlds=self._worlds,
            sync=self._sync,
            counters=self.counters,
        )
        self._observing = Observing(
            storage=storage,
            options=self.options,
            hub=self.hub,
            feed=self.feed,
            sync=self._sync,
            watch=self._watcher.wake,
        )
        self._admin = WorldAdmin(storage=storage, worlds=self._worlds, remember=self.remember)
        self._maintenance = Maintenance(
            storage=storage,
            options=self.options,
            embedder=self.embedder,
            indexes=self.indexes,
            worlds=self._worlds,
            hub=self.hub,
            counters=self.counters,
            background=self.background,
            generation=self._generation,
            lock=self._lock,
            is_closed=lambda: self._closed,
        )
        if self.options.reembed and not record.recorded:
            record.ensure()  # asked for: re-embed every atom in the background
        if self.options.gc_interval_s:
            self._maintenance.start_gc_schedule(self.options.gc_interval_s)

    def __repr__(self) -> str:
        where = getattr(self.storage, "path", None) or type(self.storage).__name__
        return f"<dwbase.Engine {where} embedder={self.embedder.name}:{self.embedder.dim}>"

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._watcher.close()
        self._maintenance.close()
        self.indexes.close()
        self.storage.close()

    @property
    def generation(self) -> int:
        """Moves with every change that reading new appends cannot reveal (gc, quarantine
        release or drop, policy and lifecycle atoms, reindex); see :class:`Generation`."""
        return self._generation.value

    def forget_caches(self) -> None:
        """Drop what this engine remembers of the store beyond its appends.

        For an engine that reads a store other processes write: policies, world states,
        dimensions, storage read caches and vector indexes are read again from the store
        (indexes resync on their next use).
        """
        self._worlds.forget()
        forget = getattr(self.storage, "forget_caches", None)
        if forget is not None:
            forget()
        self.indexes.invalidate_all()

    def _forget_for_others(self) -> None:
        self._generation.bump()
        self.forget_caches()

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
        caller: Caller | None = None,
    ) -> AtomId:
        """Store one atom durably and return its id.

        The payload is exactly one of ``payload`` (an object), ``payload_json`` (a JSON
        string) or ``text`` (short for ``payload={"text": text}``); none is an error.

        >>> import dwbase
        >>> db = dwbase.open(":memory:")
        >>> aid = db.remember("demo", "agent-1", "observation", {"text": "disk full"})
        >>> db.get(aid).payload["text"]
        'disk full'
        >>> db.get(db.remember("demo", "agent-1", text="disk freed")).payload
        {'text': 'disk freed'}
        """
        payload, payload_json = remember_payload(worker, payload, payload_json, text)
        data: dict[str, Any] = {
            "world": world,
            "worker": worker,
            "kind": kind,
            "importance": importance,
            "timestamp": timestamp,
            "vector": vector,
            "flags": flags,
            "labels": labels,
            "links": links,
        }
        if payload is not None:
            data["payload"] = payload
        if payload_json is not None:
            data["payload_json"] = payload_json
        return self._writer.remember_batch([data], caller=caller)[0]

    def remember_atom(self, new_atom: Mapping[str, Any], *, caller: Caller | None = None) -> AtomId:
        """Store one atom given in its wire form (a NewAtom mapping)."""
        return self._writer.remember_batch([new_atom], caller=caller)[0]

    def remember_batch(
        self, atoms: Sequence[Mapping[str, Any]], *, caller: Caller | None = None
    ) -> list[AtomId]:
        """Store several atoms in one transaction: all are stored, or none (on any error)."""
        return self._writer.remember_batch(atoms, caller=caller)

    def remember_each(
        self, items: Sequence[tuple[Mapping[str, Any], Caller | None]]
    ) -> list[AtomId | DWBaseError]:
        """Group commit: independent atoms, each with its own caller and its own answer."""
        return self._writer.remember_each(items)

    def ingest(
        self, atoms: Iterable[Atom | Mapping[str, Any]], *, caller: Caller | None = None
    ) -> IngestResult:
        """Store atoms from a peer: ids are kept, known ids are skipped (idempotent)."""
        return self._writer.ingest(atoms, caller=caller)

    def observe(self, atom: Atom | Mapping[str, Any], *, caller: Caller | None = None) -> int:
        """Publish an already-built atom to observers without storing it; returns receivers."""
        return self._observing.observe(atom, caller=caller)

    # ------------------------------------------------------------------ reads

    def get(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        """The atom with this id; ``NotFoundError`` if absent or not readable by the caller."""
        return self._reader.get(atom_id, caller=caller)

    inspect = get

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
        caller: Caller | None = None,
    ) -> list[Atom]:
        """Atoms of ``world`` in append order (or event-time order with ``order="event"``)."""
        return self._reader.replay(
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
        caller: Caller | None = None,
    ) -> Answer:
        """Rank the atoms of ``world`` that matter to ``text``; each hit explains its score.

        The filter is ``filter=`` and the keywords ``kinds``, ``labels``, ``flags``,
        ``since``, ``until``, laid over it, as in :meth:`replay`. A world that holds no atoms
        answers no hits and a warning that says so.

        >>> import dwbase
        >>> db = dwbase.open(":memory:")
        >>> _ = db.remember("demo", "a", "observation", {"text": "checkout latency 820ms"})
        >>> db.ask("demo", "why is checkout slow?").hits[0].atom.payload["text"]
        'checkout latency 820ms'
        """
        return self._reader.ask(
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

    # ------------------------------------------------------------------ observe

    def observe_start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
        caller: Caller | None = None,
        waker: Callable[[], None] | None = None,
    ) -> str:
        """Subscribe to new atoms. ``after=<atom id>`` first delivers stored atoms after it.

        ``waker``: instead of polling, wait until it is called (from any thread, never while
        the engine holds a lock) when atoms arrive for the empty queue or the subscription
        ends; then poll. It must not block; such a subscription never expires while idle, so
        stop it when done. The node's SSE stream waits this way.
        """
        return self._observing.start(
            world,
            filter=filter,
            after=after,
            capacity=capacity,
            drop_policy=drop_policy,
            caller=caller,
            waker=waker,
        )

    def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        """Up to ``max`` atoms queued for ``handle``, whichever process stored them."""
        return self._observing.poll(handle, max)

    def observe_stop(self, handle: str) -> None:
        self._observing.stop(handle)

    def observe_stats(self, handle: str) -> SubscriptionStats:
        return self._observing.stats(handle)

    # ------------------------------------------------------------------ worlds and policy

    def world_status(self, world: str) -> str:
        """``active`` or ``archived``."""
        return self._worlds.status(world)

    def policy(self, world: str) -> Policy:
        """The policy that applies to ``world``, merged from its sources."""
        return self._worlds.policy(world)

    def create_world(
        self,
        world: str,
        *,
        description: str | None = None,
        labels: Sequence[str] = (),
        caller: Caller | None = None,
    ) -> AtomId:
        """Record a world's creation (idempotent in effect: the world is active)."""
        return self._admin.create_world(
            world, description=description, labels=labels, caller=caller
        )

    def archive_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        return self._admin.archive_world(world, caller=caller)

    def resume_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        return self._admin.resume_world(world, caller=caller)

    def list_worlds(
        self, *, include_archived: bool = False, caller: Caller | None = None
    ) -> list[str]:
        return self._admin.list_worlds(include_archived=include_archived, caller=caller)

    def set_policy(
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
        """Record a policy for ``world`` as an atom of ``policy:<world>``."""
        return self._admin.set_policy(
            world,
            retention_days=retention_days,
            retention_min_days=retention_min_days,
            min_importance=min_importance,
            replication_allow=replication_allow,
            replication_deny=replication_deny,
            caller=caller,
        )

    # ------------------------------------------------------------------ operators

    def quarantine_list(
        self, world: str | None = None, *, limit: int = 1000, caller: Caller | None = None
    ) -> list[Atom]:
        """Held atoms (of ``world``, or of every world the caller operates on)."""
        return self._maintenance.quarantine_list(world, limit=limit, caller=caller)

    def quarantine_release(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        """Move a held atom back into its world (it keeps its id and record)."""
        return self._maintenance.quarantine_release(atom_id, caller=caller)

    def quarantine_drop(self, atom_id: str, *, caller: Caller | None = None) -> None:
        """Delete a held atom; the caller needs the operator capability over its world."""
        self._maintenance.quarantine_drop(atom_id, caller=caller)

    def gc(self, *, caller: Caller | None = None) -> GcReport:
        """Apply retention, minimum importance and the disk budget now."""
        return self._maintenance.gc(caller=caller)

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify records, hash chains, anchored heads and indexes (see ``storage check``)."""
        return self._maintenance.check(quick=quick)

    def reindex(self) -> int:
        return self._maintenance.reindex()

    def compact(self) -> dict[str, Any]:
        """Reclaim disk space (SQLite: WAL checkpoint, FTS merge, VACUUM); in memory a no-op."""
        return self._maintenance.compact()

    def encryption_status(self) -> dict[str, Any] | None:
        """``{"cipher", "key_id", "keys"}`` of an encrypted store; ``None`` for a plain one."""
        return keys.encryption_status(self.storage)

    def rotate_key(
        self, to: str, *, progress: Callable[[int, int], None] | None = None, batch: int = 500
    ) -> dict[str, Any]:
        """Re-encrypt every record under key ``to`` while reads and writes go on
        (``progress(done, total)`` after each batch); afterwards the old key may be removed."""
        return keys.rotate_key(self.storage, to, progress or (lambda done, total: None), batch)

    def erase_subject(self, subject: str) -> dict[str, Any]:
        """Destroy the key of ``subject`` (atoms labelled ``subject:<subject>``): those atoms
        can no longer be read, here or from any backup; ask and replay skip them."""
        result = keys.erase_subject(self.storage, subject)
        self._forget_for_others()
        return result

    def add_erasable_worlds(self, patterns: Sequence[str]) -> list[str]:
        """Tie atoms written from now on to worlds matching ``patterns`` to a key of their
        world's (unless labelled ``subject:``), so :meth:`erase_world` can erase them."""
        return keys.add_erasable_worlds(self.storage, patterns)

    def erase_world(self, world: str) -> dict[str, Any]:
        """Destroy the key of an erasable world: its atoms written since it became erasable
        can no longer be read (``not_erasable`` counts the older ones, still readable)."""
        result = keys.erase_world(self.storage, world)
        self._forget_for_others()
        return result

    def index_status(
        self, world: str | None = None, *, caller: Caller | None = None
    ) -> list[dict[str, Any]]:
        """Vector index metadata per readable world (see :mod:`dwbase.indexes`)."""
        return self._maintenance.index_status(world, caller=caller)

    def index_rebuild(
        self, world: str | None = None, *, wait: bool = True, caller: Caller | None = None
    ) -> dict[str, Any]:
        """Rebuild the vector index of ``world`` (or every readable world) from storage."""
        return self._maintenance.index_rebuild(world, wait=wait, caller=caller)

    def stats(self) -> dict[str, Any]:
        return self._maintenance.stats()

    def health(
        self,
        *,
        disk_path: str | None = None,
        warn_pct: float = 80.0,
        degraded_pct: float = 90.0,
        min_free_mb: float = MIN_FREE_MB,
    ) -> dict[str, Any]:
        """Operator health: storage, disk, indexes, background work, quarantine.

        >>> import dwbase
        >>> dwbase.open(":memory:").health()["status"]
        'ready'
        """
        return self._maintenance.health(
            disk_path=disk_path,
            warn_pct=warn_pct,
            degraded_pct=degraded_pct,
            min_free_mb=min_free_mb,
        )
