"""The engine: remember, ask, replay, observe, worlds, policy, quarantine, gc and ingest.

Every edge (library, HTTP node, CLI, MCP, WASI component) is a thin translation onto these
methods. ``caller`` (a :class:`~dwbase.security.Caller`) is checked on every read and write;
``None`` means the embedded owner of the store, who may do everything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import chosen_ids
from .background import BackgroundFailures
from .embed import embedder_id, resolve_embedder
from .errors import (
    ConflictError,
    DWBaseError,
    InvalidInputError,
    NotFoundError,
)
from .ids import IdGenerator
from .indexes import IndexManager
from .links import check_links
from .model import (
    QUARANTINE_PREFIX,
    Answer,
    Atom,
    AtomFilter,
    FilterSpec,
    StoredAtom,
    parse_payload,
    payload_text,
    validate_atom,
    validate_client_id,
    validate_importance,
    validate_kind,
    validate_links,
    validate_policy_labels,
    validate_question,
    validate_tags,
    validate_timestamp,
    validate_vector,
    validate_world,
)
from .operations import OperationsMixin
from .options import Options
from .policy import Policy
from .quarantine import Quarantine
from .ranking import RANK_MODES
from .results import AtomId, Counters, IngestResult
from .security.caps import FULL_ACCESS, Caller
from .storage.base import NewRecord, Storage
from .stream import Hub, SubscriptionStats
from .stream.feed import Feed, StoreWatch
from .timeutil import format_instant, now_micros, parse_instant
from .vector import pack
from .vector.exact import pack_unit


@dataclass(frozen=True, slots=True)
class _Prepared:
    record: NewRecord
    parsed: Any
    embed_text: str = ""  # text whose embedding is still to be put in record.index_vector


def _filter_dict(flt: AtomFilter | Mapping[str, Any] | None) -> dict[str, Any]:
    if flt is None:
        return {}
    if isinstance(flt, AtomFilter):
        return flt.to_dict()
    if not isinstance(flt, Mapping):
        raise InvalidInputError("filter must be an object", field="filter")
    known = {"world", "kinds", "labels", "flags", "since", "until", "limit"}
    unknown = set(flt) - known
    if unknown:
        raise InvalidInputError(
            f"unknown filter field(s): {', '.join(sorted(unknown))}", field="filter"
        )
    return dict(flt)


class Engine(OperationsMixin):
    """A DWBase store. Thread-safe; use :func:`dwbase.open` to make one."""

    def __init__(self, storage: Storage, options: Options | None = None) -> None:
        self.options = options or Options()
        self.storage = storage
        self.clock = self.options.clock
        self.embedder = resolve_embedder(
            self.options.embedder, storage.meta_get("embedder"), reembed=self.options.reembed
        )
        self._ids = IdGenerator()
        self._quarantine = Quarantine(self.options.quarantine, self.clock)
        self.hub = Hub(
            self.clock,
            default_capacity=self.options.observe_capacity,
            idle_ttl_s=self.options.observe_idle_ttl_s,
        )
        self.counters = Counters()
        self.background = BackgroundFailures(self.clock)  # gc, index and re-embed failures
        self._write_lock = threading.RLock()
        self._cache_lock = threading.RLock()
        self.indexes = IndexManager(self)
        self._dims: dict[str, int] = {}
        self._dims_saved: set[str] = set()
        self._status: dict[str, str] = {}
        self._policies: dict[str, Policy] = {}
        # Bumped by every change that reading new appends cannot reveal (gc, quarantine
        # release or drop, policy and world lifecycle atoms, reindex): another process reading
        # the same store (the node's ask workers) calls forget_caches() when it moves.
        self.generation = 0
        self._closed = False
        self._gc_stop = threading.Event()
        self._gc_thread: threading.Thread | None = None
        # What this engine has seen of the store (other processes write it too): the highest
        # seq published to observers, and the store's changes and generation last read.
        self._watch = StoreWatch(storage)
        self.feed = Feed(storage, self.hub, self._write_lock)
        self._cache_seq = self.feed.published_seq
        self._embedder_recorded = storage.meta_get("embedder") == embedder_id(self.embedder)
        if self.options.reembed and not self._embedder_recorded:
            self._record_embedder()  # asked for: re-embed every atom in the background
        if self.options.gc_interval_s:
            self._start_gc_schedule(self.options.gc_interval_s)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._gc_stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join(timeout=5)
        self.indexes.close()
        self.storage.close()

    def _record_embedder(self) -> None:
        """Record this engine's embedder in the store: on the first write, or on purpose
        (``reembed=True``), when every stored atom is re-embedded in the background."""
        ident = embedder_id(self.embedder)
        previous = self.storage.meta_get("embedder")
        if previous != ident:
            self.storage.meta_set("embedder", ident)
            self.indexes.embedder_changed(previous)  # re-embeds in the background
        self._embedder_recorded = True

    # ------------------------------------------------------------------ other processes

    def _sync(self) -> None:
        """Notice what other processes changed in the store since this engine last looked.

        Cheap when nothing changed (one ``PRAGMA data_version``). Otherwise: a moved store
        generation (a delete, quarantine change or reindex elsewhere) drops every cache; new
        atoms drop the policy and world-state caches and go to this engine's observers.
        """
        seen = self._watch.look()
        if seen is None:
            return
        if seen.generation_moved:
            self.generation += 1
            self.forget_caches()
        self._saw_upto(seen.top)
        # Never waits for a writer (an SSE stream polls from the event loop): a busy writer
        # offers what precedes its own atoms, and the next look tries again.
        if self.feed.catch_up(seen.top):
            self._watch.settle(seen)

    def _saw_upto(self, top: int) -> None:
        """Atoms up to ``top`` exist; atoms this engine did not write may be policy or
        lifecycle atoms, so the caches built from those are dropped."""
        if top > self._cache_seq:
            self._cache_seq = top
            with self._cache_lock:
                self._policies.clear()
                self._status.clear()

    def _now(self) -> int:
        return now_micros(self.clock)

    # ------------------------------------------------------------------ validation

    def _world_dim(self, world: str) -> int:
        dim = self._dims.get(world)
        if dim is None:
            raw = self.storage.meta_get("dim:" + world)
            dim = int(raw) if raw else self.embedder.dim
            self._dims[world] = dim
        return dim

    def _prepare(
        self,
        data: Mapping[str, Any],
        caller: Caller,
        now_us: int,
        atom_id: str | None = None,
        recorded_us: int | None = None,
    ) -> _Prepared:
        if not isinstance(data, Mapping):
            raise InvalidInputError("an atom must be a JSON object")
        known = {
            "id",
            "world",
            "worker",
            "kind",
            "timestamp",
            "importance",
            "payload_json",
            "payload",
            "vector",
            "flags",
            "labels",
            "links",
            "recorded_at",
        }
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(
                f"unknown atom field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
            )
        world = validate_world(data.get("world"))
        if world.startswith(QUARANTINE_PREFIX):
            raise InvalidInputError(
                "quarantine: worlds are managed by DWBase; write to the world itself", field="world"
            )
        worker = data.get("worker")
        if caller.worker is not None:
            worker = caller.worker  # an authenticated caller writes as itself
        if not isinstance(worker, str) or not worker:
            raise InvalidInputError("worker must be a non-empty string", field="worker")
        worker = validate_tags([worker], "worker")[0]
        kind = validate_kind(data.get("kind", "observation"))
        importance = validate_importance(data.get("importance", 0.5))
        ts_us = validate_timestamp(data.get("timestamp", ""), now_us)
        payload_json, parsed = parse_payload(
            data.get("payload_json"), data.get("payload"), max_bytes=self.options.max_payload_bytes
        )
        vector = validate_vector(data.get("vector"))
        flags = validate_tags(data.get("flags"), "flags")
        labels = validate_tags(data.get("labels"), "labels")
        validate_policy_labels(labels)
        links = validate_links(data.get("links"))
        chosen = data.get("id") if atom_id is None else None
        if chosen is not None:
            atom_id = validate_client_id(chosen)  # an id the writer chose (see chosen_ids)
        caller.require_write(world, kind=kind, labels=labels, importance=importance)
        dim = self._world_dim(world)
        if vector is not None and len(vector) != dim:
            raise InvalidInputError(
                f"vector has {len(vector)} dims, world {world!r} expects {dim}",
                field="vector",
                dims=len(vector),
                expected=dim,
            )
        text = payload_text(parsed)
        # The embedding is made later, for a whole batch in one call (see _embed_pending).
        index_vec = pack_unit(vector) if vector is not None else None
        embed_text = text if vector is None and dim == self.embedder.dim else ""
        rec_us = now_us if recorded_us is None else recorded_us
        atom = Atom(
            id=atom_id or self._ids.new_id(now_us // 1000),
            world=world,
            worker=worker,
            kind=kind,
            timestamp=format_instant(ts_us),
            importance=importance,
            payload_json=payload_json,
            vector=vector,
            flags=flags,
            labels=labels,
            links=links,
            recorded_at=format_instant(rec_us),
        )
        return _Prepared(
            NewRecord(
                atom=atom, ts_us=ts_us, recorded_us=rec_us, text=text, index_vector=index_vec
            ),
            parsed,
            embed_text,
        )

    def _embed_pending(self, prepared: Sequence[_Prepared]) -> list[_Prepared]:
        """Fill in the embeddings ``_prepare`` left to do, with one call to the embedder."""
        waiting = [i for i, p in enumerate(prepared) if p.embed_text]
        out = list(prepared)
        if not waiting:
            return out
        vectors = self.embedder.embed([prepared[i].embed_text for i in waiting])
        for i, vec in zip(waiting, vectors, strict=True):
            p = out[i]
            out[i] = _Prepared(replace(p.record, index_vector=pack(vec)), p.parsed)
        return out

    def _check_world_open(self, world: str, labels: Sequence[str]) -> None:
        if any(lb.startswith("world_status:") for lb in labels):
            return
        if self.world_status(world) == "archived":
            raise ConflictError(
                f"world {world!r} is archived; resume it before writing", world=world
            )

    def _quarantine_reason(self, prep: _Prepared) -> str | None:
        a = prep.record.atom
        if any(lb.startswith(("policy:", "world_status:")) for lb in a.labels):
            return None
        trust = self.options.trust.get(a.worker, self.options.default_trust)
        return self._quarantine.reason(
            world=a.world,
            worker=a.worker,
            importance=a.importance,
            payload=prep.parsed,
            trust=trust,
        )

    # ------------------------------------------------------------------ writes

    def remember(
        self,
        world: str,
        worker: str | None = None,
        kind: str = "observation",
        payload: Mapping[str, Any] | None = None,
        *,
        payload_json: str | None = None,
        importance: float = 0.5,
        timestamp: str = "",
        vector: Sequence[float] | None = None,
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
        caller: Caller | None = None,
    ) -> AtomId:
        """Store one atom durably and return its id.

        >>> import dwbase
        >>> db = dwbase.open(":memory:")
        >>> aid = db.remember("demo", "agent-1", "observation", {"text": "disk full"})
        >>> db.get(aid).payload["text"]
        'disk full'
        """
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
        return self.remember_batch([data], caller=caller)[0]

    def remember_atom(self, new_atom: Mapping[str, Any], *, caller: Caller | None = None) -> AtomId:
        """Store one atom given in its wire form (a NewAtom mapping)."""
        return self.remember_batch([new_atom], caller=caller)[0]

    def remember_batch(
        self, atoms: Sequence[Mapping[str, Any]], *, caller: Caller | None = None
    ) -> list[AtomId]:
        """Store several atoms in one transaction: all are stored, or none (on any error)."""
        if isinstance(atoms, Mapping | str) or not isinstance(atoms, Sequence):
            raise InvalidInputError("atoms must be a list of atoms", field="atoms")
        if not atoms:
            return []
        if len(atoms) > 10_000:
            raise InvalidInputError("at most 10000 atoms per batch", field="atoms")
        who = caller or FULL_ACCESS
        self._sync()
        now_us = self._now()
        prepared: list[_Prepared] = []
        for i, data in enumerate(atoms):
            try:
                prepared.append(self._prepare(data, who, now_us))
            except InvalidInputError as exc:
                if len(atoms) > 1:
                    exc.details.setdefault("index", i)
                    exc.message = f"atom {i}: {exc.message}"
                    exc.args = (exc.message,)
                raise
        check_links(self.storage, [p.record.atom for p in prepared])
        for p in prepared:
            self._check_world_open(p.record.atom.world, p.record.atom.labels)
        # Ids the writer chose may exist already: those atoms are answered, not stored again.
        chosen = [i for i, d in enumerate(atoms) if d.get("id") is not None]
        known = chosen_ids.known(self.storage, [p.record.atom for p in prepared], chosen)
        fresh = [p for i, p in enumerate(prepared) if i not in known]
        records = [self._with_quarantine(p) for p in self._embed_pending(fresh)]
        settled = iter(chosen_ids.settle(self.storage, records, self._store(records)))
        out: list[AtomId] = []
        for i in range(len(prepared)):
            a = known.get(i) or next(settled)
            if isinstance(a, ConflictError):  # taken since known() looked: a rare race
                raise chosen_ids.taken(a.details["id"], i, stored_others=len(records) > 1)
            out.append(a)
        return out

    def remember_each(
        self, items: Sequence[tuple[Mapping[str, Any], Caller | None]]
    ) -> list[AtomId | DWBaseError]:
        """Store independent atoms (each with its own caller) in one shared transaction.

        This is group commit: a server gathers the single remembers that arrive together and
        pays for one transaction. Each item gets its own answer, in order: its id, or the error
        that refused it (bad input, no permission, an archived world), and a refused item does
        not hold the others back. If the shared transaction fails, each item is retried on its
        own so every answer is that item's own; nothing is acknowledged that is not stored.
        """
        self._sync()
        now_us = self._now()
        answers: list[AtomId | DWBaseError | None] = []  # None: prepared, not answered yet
        ready: list[tuple[int, _Prepared]] = []
        for i, (data, caller) in enumerate(items):
            try:
                p = self._prepare(data, caller or FULL_ACCESS, now_us)
                check_links(self.storage, [p.record.atom])
                self._check_world_open(p.record.atom.world, p.record.atom.labels)
                hit = chosen_ids.known(self.storage, [p.record.atom], [0] if data.get("id") else [])
            except DWBaseError as exc:
                answers.append(exc)
                continue
            if hit:  # an id the writer chose, already stored in this world: answered, not stored
                answers.append(hit[0])
                continue
            answers.append(None)
            ready.append((i, p))
        try:
            embedded = list(zip(ready, self._embed_pending([p for _, p in ready]), strict=True))
        except DWBaseError:  # the embedder refused the group: embed each item on its own
            embedded = []
            for i, p in ready:
                try:
                    embedded.append(((i, p), self._embed_pending([p])[0]))
                except DWBaseError as exc:
                    answers[i] = exc
        pending = [(i, self._with_quarantine(p)) for (i, _), p in embedded]
        if pending:
            stored: list[StoredAtom] = []
            try:
                stored = self._store([rec for _, rec in pending])
            except DWBaseError as exc:
                if len(pending) == 1:
                    answers[pending[0][0]] = exc
                else:
                    for i, rec in pending:
                        try:
                            stored += self._store([rec])
                        except DWBaseError as one:
                            answers[i] = one
            settled = chosen_ids.settle(self.storage, [rec for _, rec in pending], stored)
            for (i, _), answer in zip(pending, settled, strict=True):
                if answers[i] is None:  # stored (or its id taken meanwhile): settle says which
                    answers[i] = answer
        out: list[AtomId | DWBaseError] = []
        for a in answers:
            assert a is not None  # every item was answered above
            out.append(a)
        return out

    def _with_quarantine(self, p: _Prepared) -> NewRecord:
        """``p``'s record, held in quarantine when the quarantine rules say so."""
        reason = self._quarantine_reason(p)
        return p.record if reason is None else replace(p.record, quarantine=reason)

    def _store(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        with self._write_lock:
            if not self._embedder_recorded:
                self._record_embedder()
            self._fix_dims(records)
            stored = self.storage.append(records)
            if stored:
                self._saw_upto(stored[0].seq - 1)  # others' atoms stored before ours
                self._cache_seq = max(self._cache_seq, stored[-1].seq)
            for s in stored:
                self._after_store(s)
            self.feed.stored(stored)
        return stored

    def _fix_dims(self, records: Sequence[NewRecord]) -> None:
        """Persist a world's vector dimension the first time the world is written."""
        for rec in records:
            w = rec.atom.world
            if w in self._dims_saved:
                continue
            if self.storage.meta_get("dim:" + w) is None:
                # _prepare already held every vector to this dimension.
                self.storage.meta_set("dim:" + w, str(self._world_dim(w)))
            self._dims_saved.add(w)

    def _after_store(self, s: StoredAtom) -> None:
        self.counters.atoms_total += 1
        labels = s.atom.labels
        if s.quarantine is not None:
            self.counters.quarantine_total += 1
        elif any(lb.startswith(("policy:", "world_status:")) for lb in labels):
            with self._cache_lock:
                self.generation += 1
                self._policies.clear()
                self._status.pop(s.atom.world, None)

    def ingest(
        self, atoms: Iterable[Atom | Mapping[str, Any]], *, caller: Caller | None = None
    ) -> IngestResult:
        """Store atoms from a peer: ids are kept, known ids are skipped (idempotent).

        Atoms pass the same validation, permission and policy checks as local writes; an
        atom refused by the world's replication policy is reported in ``refused``.
        """
        who = caller or FULL_ACCESS
        now_us = self._now()
        prepared: list[_Prepared] = []
        refused: dict[str, str] = {}
        for item in atoms:
            data = item.to_dict() if isinstance(item, Atom) else dict(item)
            atom = validate_atom(data, max_payload_bytes=self.options.max_payload_bytes)
            wire = atom.to_dict()
            wire.pop("recorded_at")
            # A peer's worker is kept: the peer vouches for its own writers.
            p = self._prepare(
                wire,
                replace(who, worker=None),
                now_us,
                atom_id=atom.id,
            )
            if not self.policy(atom.world).allows_replication(atom.world):
                refused[atom.id] = "replication denied by world policy"
                continue
            prepared.append(p)
        check_links(self.storage, [p.record.atom for p in prepared], allow_unknown=True)
        for p in prepared:
            self._check_world_open(p.record.atom.world, p.record.atom.labels)
        records = [self._with_quarantine(p) for p in self._embed_pending(prepared)]
        stored = {s.atom.id for s in self._store(records)}
        ids = [r.atom.id for r in records]
        return IngestResult(
            stored=[i for i in ids if i in stored],
            duplicates=[i for i in ids if i not in stored],
            refused=refused,
        )

    def observe(self, atom: Atom | Mapping[str, Any], *, caller: Caller | None = None) -> int:
        """Publish an already-built atom to observers without storing it; returns receivers."""
        who = caller or FULL_ACCESS
        built = (
            atom
            if isinstance(atom, Atom)
            else validate_atom(
                atom, max_payload_bytes=self.options.max_payload_bytes, now_us=self._now()
            )
        )
        who.require_write(
            built.world, kind=built.kind, labels=built.labels, importance=built.importance
        )
        return self.hub.publish(built, None)

    # ------------------------------------------------------------------ reads

    def _spec(self, flt: dict[str, Any], as_of: str | None) -> FilterSpec:
        kinds = flt.get("kinds") or ()
        if isinstance(kinds, str):
            kinds = (kinds,)
        if not isinstance(kinds, list | tuple | set | frozenset):
            raise InvalidInputError("kinds must be a list of kinds", field="kinds")
        for k in kinds:
            validate_kind(k)
        since, until = flt.get("since"), flt.get("until")
        since_us = parse_instant(since, field="since") if since else None
        until_us = parse_instant(until, field="until") if until else None
        if since_us is not None and until_us is not None and since_us > until_us:
            raise InvalidInputError("since is after until", field="since")
        return FilterSpec(
            kinds=frozenset(kinds),
            labels=frozenset(validate_tags(flt.get("labels"), "labels")),
            flags=frozenset(validate_tags(flt.get("flags"), "flags")),
            since_us=since_us,
            until_us=until_us,
            as_of_us=parse_instant(as_of, field="as_of") if as_of else None,
        )

    @staticmethod
    def _limit(value: Any, default: int | None, maximum: int = 10_000) -> int | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError("limit must be a whole number of at least 1", field="limit")
        return min(value, maximum)

    @staticmethod
    def _split_world(world: str) -> tuple[str, bool]:
        if world.startswith(QUARANTINE_PREFIX):
            return validate_world(world[len(QUARANTINE_PREFIX) :]), True
        return world, False

    def get(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        """The atom with this id; ``NotFoundError`` if absent or not readable by the caller."""
        if not isinstance(atom_id, str) or not atom_id:
            raise InvalidInputError("atom id must be a non-empty string", field="id")
        s = self.storage.get(atom_id)
        atom = s.visible_atom() if s is not None else None
        if atom is None or not (caller or FULL_ACCESS).can_read(atom.world):
            raise NotFoundError(f"no atom {atom_id!r}", id=atom_id)
        return atom

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
        validate_world(world)
        (caller or FULL_ACCESS).require_read(world)
        self._sync()
        flt = self._merge_filter(world, filter, kinds, labels, flags, since, until, limit)
        spec = self._spec(flt, as_of)
        if order not in ("append", "event"):
            raise InvalidInputError("order must be 'append' or 'event'", field="order")
        cap = self._limit(flt.get("limit"), None, maximum=1_000_000)
        base, quarantined = self._split_world(world)
        after_seq = None
        if after is not None:
            after_seq = self._cursor_seq(after, base)
        rows = self.storage.scan(
            base,
            spec,
            quarantined=quarantined,
            after_seq=after_seq,
            order=order,
            limit=None if current_only else cap,
        )
        if current_only:
            rows = (
                self._drop_superseded(rows, spec.as_of_us)[:cap]
                if cap
                else self._drop_superseded(rows, spec.as_of_us)
            )
        return [s.visible_atom() for s in rows]

    def _cursor_seq(self, after: str, world: str) -> int:
        """The seq of cursor atom ``after``, which must belong to ``world``.

        An id from another world is "not found" like an unknown one, so a cursor cannot be
        used to learn whether an atom exists in a world the caller may not read.
        """
        if not isinstance(after, str) or not after:
            raise InvalidInputError("after must be an atom id", field="after")
        cursor = self.storage.get(after)
        if cursor is None or cursor.atom.world != world:
            raise NotFoundError(f"cursor atom {after!r} does not exist in {world!r}", id=after)
        return cursor.seq

    def _merge_filter(
        self,
        world: str,
        flt: AtomFilter | Mapping[str, Any] | None,
        kinds: Sequence[str] | None,
        labels: Sequence[str] | None,
        flags: Sequence[str] | None,
        since: str | None,
        until: str | None,
        limit: int | None,
    ) -> dict[str, Any]:
        out = _filter_dict(flt)
        fw = out.get("world")
        if fw not in (None, "", world):
            raise InvalidInputError(
                f"filter world {fw!r} differs from world {world!r}", field="filter.world"
            )
        for key, value in (
            ("kinds", kinds),
            ("labels", labels),
            ("flags", flags),
            ("since", since),
            ("until", until),
            ("limit", limit),
        ):
            if value is not None:
                out[key] = value
        return out

    def _drop_superseded(self, rows: list[StoredAtom], as_of_us: int | None) -> list[StoredAtom]:
        counts = self.storage.link_counts([s.atom.id for s in rows], as_of_us=as_of_us)
        return [s for s in rows if not counts.get(s.atom.id, {}).get("supersedes")]

    def _drop_index(self, world: str) -> None:
        self.generation += 1
        self.indexes.invalidate(world)

    def forget_caches(self) -> None:
        """Drop what this engine remembers of the store beyond its appends.

        For an engine that reads a store another engine writes: after the writer's
        ``generation`` moved, policies, world states, dimensions, storage read caches and
        vector indexes are read again from the store (indexes resync on their next use).
        """
        with self._cache_lock:
            self._policies.clear()
            self._status.clear()
            self._dims.clear()
        forget = getattr(self.storage, "forget_caches", None)
        if forget is not None:
            forget()
        self.indexes.invalidate_all()

    def ask(
        self,
        world: str,
        text: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        limit: int = 10,
        as_of: str | None = None,
        rank: str = "hybrid",
        weights: Mapping[str, Any] | None = None,
        current_only: bool = False,
        vector: Sequence[float] | None = None,
        caller: Caller | None = None,
    ) -> Answer:
        """Rank the atoms of ``world`` that matter to ``text``; each hit explains its score.

        >>> import dwbase
        >>> db = dwbase.open(":memory:")
        >>> _ = db.remember("demo", "a", "observation", {"text": "checkout latency 820ms"})
        >>> db.ask("demo", "why is checkout slow?").hits[0].atom.payload["text"]
        'checkout latency 820ms'
        """
        from .ask import run_ask

        self.counters.asks_total += 1
        validate_world(world)
        (caller or FULL_ACCESS).require_read(world)
        self._sync()
        validate_question(text)
        if rank not in RANK_MODES:
            raise InvalidInputError(f"rank must be one of {', '.join(RANK_MODES)}", field="rank")
        flt = self._merge_filter(world, filter, None, None, None, None, None, None)
        spec = self._spec(flt, as_of)
        cap = self._limit(flt.get("limit"), None)
        n = self._limit(limit, 10, maximum=1000) or 10
        if cap is not None:
            n = min(n, cap)
        qvec = validate_vector(vector)
        return run_ask(
            self,
            world,
            text,
            spec=spec,
            limit=n,
            rank=rank,
            weights=self.options.ranking.with_overrides(dict(weights or {})),
            current_only=current_only,
            query_vector=qvec,
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
    ) -> str:
        """Subscribe to new atoms. ``after=<atom id>`` first delivers stored atoms after it."""
        who = caller or FULL_ACCESS
        flt = _filter_dict(filter)
        world = world or flt.get("world") or None
        if world is not None:
            validate_world(world)
            who.require_read(world)
        spec = self._spec(flt, None)

        def accepts(atom: Atom, seq: int | None) -> bool:
            if world is not None and atom.world != world:
                return False
            if not who.can_read(atom.world):
                return False
            fake = StoredAtom(
                atom=atom, seq=seq or 0, ts_us=parse_instant(atom.timestamp), recorded_us=0, text=""
            )
            return spec.matches(fake)

        backlog_after = None
        if after is not None:
            if world is None:
                raise InvalidInputError("after= needs a world", field="after")
            base, quarantined = self._split_world(world)
            cursor_seq = self._cursor_seq(after, base)

            def backlog_after(top: int) -> list[StoredAtom]:
                rows = self.storage.scan(base, spec, quarantined=quarantined, after_seq=cursor_seq)
                return [s for s in rows if s.seq <= top]

        self._sync()
        return self.feed.subscribe(
            accepts, backlog_after, capacity=capacity, drop_policy=drop_policy
        )

    def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        """Up to ``max`` atoms queued for ``handle``, whichever process stored them."""
        self._sync()
        return self.hub.poll(handle, max)

    def observe_stop(self, handle: str) -> None:
        self.hub.stop(handle)

    def observe_stats(self, handle: str) -> SubscriptionStats:
        return self.hub.stats(handle)
