"""Writes: validate, check permissions, quarantine, embed, then one transaction, then publish.

The order: everything about an atom is validated first (world, worker, kind,
importance, timestamp, payload JSON and size, vector, links), then the caller's permission,
then the quarantine rules; embeddings are made for the whole batch in one call; the records
go to storage in one transaction, and the stored atoms to the world caches and observers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .. import chosen_ids
from ..embed import Embedder, embedder_id
from ..errors import ConflictError, DWBaseError, InvalidInputError
from ..ids import IdGenerator
from ..links import check_links
from ..model import (
    QUARANTINE_PREFIX,
    Atom,
    StoredAtom,
    validate_atom,
    validate_client_id,
    validate_importance,
    validate_kind,
    validate_links,
    validate_policy_labels,
    validate_tags,
    validate_timestamp,
    validate_vector,
    validate_world,
)
from ..options import Options
from ..payload import read_payload
from ..quarantine import Quarantine
from ..results import AtomId, Counters, IngestResult
from ..security.caps import FULL_ACCESS, Caller
from ..storage.base import NewRecord, Storage
from ..stream.feed import Feed
from ..timeutil import format_instant, now_micros
from ..vector import pack
from ..vector.exact import pack_unit
from .worlds import WorldCache

MAX_BATCH = 10_000


# The fields an atom given as a mapping may carry; an unknown one is refused with this list.
ATOM_FIELDS = (
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
)


_FIELD_SET = frozenset(ATOM_FIELDS)


class _Seen:
    """What the atoms of one batch share, each checked once: worlds (with their vector
    dimension), worker names and tag lists."""

    __slots__ = ("_tags", "names", "worlds")

    def __init__(self) -> None:
        self.worlds: dict[str, int] = {}
        self.names: set[str] = set()
        self._tags: dict[tuple[str, tuple[Any, ...]], tuple[str, ...]] = {}

    def tags(self, values: Any, field: str) -> tuple[str, ...]:
        """``validate_tags`` (and for labels ``validate_policy_labels``), once per list."""
        if values is None:
            return ()
        key = (field, tuple(values)) if type(values) is list or type(values) is tuple else None
        try:
            done = self._tags.get(key) if key is not None else None
        except TypeError:  # an unhashable item: validate_tags names the problem
            key = done = None
        if done is not None:
            return done
        out = validate_tags(values, field)
        if field == "labels":
            validate_policy_labels(out)
        if key is not None:
            self._tags[key] = out
        return out


class _Prepared:
    """An atom checked and ready to store but for its embedding (``embed_text``: still to be
    made, for the whole batch at once) and its quarantine decision (:meth:`record`)."""

    __slots__ = ("atom", "embed_text", "index_vector", "parsed", "recorded_us", "text", "ts_us")

    def __init__(
        self,
        atom: Atom,
        ts_us: int,
        recorded_us: int,
        text: str,
        index_vector: bytes | None,
        parsed: Any,
        embed_text: str,
    ) -> None:
        self.atom = atom
        self.ts_us = ts_us
        self.recorded_us = recorded_us
        self.text = text
        self.index_vector = index_vector
        self.parsed = parsed  # for quarantine's number rule; None when known finite
        self.embed_text = embed_text

    def record(self, quarantine: str | None = None) -> NewRecord:
        return NewRecord(
            self.atom, self.ts_us, self.recorded_us, self.text, self.index_vector, quarantine
        )


class EmbedderRecord:
    """The store records its embedder at the first write (opening never writes), or when
    re-embedding is asked for; ``on_change`` then re-embeds stored atoms in the background."""

    def __init__(
        self, storage: Storage, embedder: Embedder, on_change: Callable[[str | None], None]
    ) -> None:
        self._storage = storage
        self._ident = embedder_id(embedder)
        self._on_change = on_change
        self.recorded = storage.meta_get("embedder") == self._ident

    def ensure(self) -> None:
        if self.recorded:
            return
        previous = self._storage.meta_get("embedder")
        if previous != self._ident:
            self._storage.meta_set("embedder", self._ident)
            self._on_change(previous)
        self.recorded = True


class Writer:
    """remember, remember_batch, remember_each (group commit) and ingest (from peers)."""

    def __init__(
        self,
        *,
        storage: Storage,
        options: Options,
        embedder: Embedder,
        worlds: WorldCache,
        feed: Feed,
        sync: Callable[[], None],
        counters: Counters,
        lock: threading.RLock,
        embedder_record: EmbedderRecord,
        on_stored: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self.storage = storage
        self.options = options
        self.embedder = embedder
        self.clock = options.clock
        self.worlds = worlds
        self._feed = feed
        self._sync = sync
        self.counters = counters
        self._lock = lock
        self._embedder_record = embedder_record
        self._on_stored = on_stored  # the worlds that just took atoms (vector indexes follow)
        self._ids = IdGenerator()
        self._last_instant: tuple[int, str] = (-1, "")
        self._quarantine = Quarantine(options.quarantine, options.clock)

    def _now(self) -> int:
        return now_micros(self.clock)

    def _instant(self, micros: int) -> str:
        """``format_instant(micros)``, remembering the last one (the batch's record time)."""
        last = self._last_instant
        if last[0] != micros:
            last = self._last_instant = (micros, format_instant(micros))
        return last[1]

    def _prepare(
        self,
        data: Mapping[str, Any],
        caller: Caller,
        now_us: int,
        atom_id: str | None = None,
        recorded_us: int | None = None,
        seen: _Seen | None = None,
    ) -> _Prepared:
        """One atom checked and made into a record; ``seen`` keeps what the atoms of one batch
        share (worlds, workers, tag lists), so each is checked once per batch."""
        if seen is None:
            seen = _Seen()
        if not isinstance(data, Mapping):
            raise InvalidInputError("an atom must be a JSON object")
        if not _FIELD_SET.issuperset(data):
            unknown = set(data).difference(ATOM_FIELDS)
            raise InvalidInputError(
                f"unknown atom field(s): {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(ATOM_FIELDS)}",
                field=sorted(unknown)[0],
            )
        raw_world = data.get("world")
        dim = seen.worlds.get(raw_world) if type(raw_world) is str else None
        if dim is not None:
            world: str = raw_world  # type: ignore[assignment]  # checked earlier in the batch
        else:
            world = validate_world(raw_world)
            if world.startswith(QUARANTINE_PREFIX):
                raise InvalidInputError(
                    "quarantine: worlds are managed by DWBase; write to the world itself",
                    field="world",
                )
            dim = seen.worlds[world] = self.worlds.dim(world)
        worker = data.get("worker") if caller.worker is None else caller.worker
        if type(worker) is not str or worker not in seen.names:
            # an authenticated caller writes as itself (caller.worker)
            if not isinstance(worker, str) or not worker:
                raise InvalidInputError("worker must be a non-empty string", field="worker")
            worker = validate_tags([worker], "worker")[0]
            seen.names.add(worker)
        kind = validate_kind(data.get("kind", "observation"))
        importance = validate_importance(data.get("importance", 0.5))
        ts_us = validate_timestamp(data.get("timestamp", ""), now_us)
        payload = read_payload(
            data.get("payload_json"), data.get("payload"), max_bytes=self.options.max_payload_bytes
        )
        vector = validate_vector(data.get("vector"))
        flags = seen.tags(data.get("flags"), "flags")
        labels = seen.tags(data.get("labels"), "labels")
        links = validate_links(data.get("links"))
        chosen = data.get("id") if atom_id is None else None
        if chosen is not None:
            atom_id = validate_client_id(chosen)  # an id the writer chose (see chosen_ids)
        caller.require_write(world, kind=kind, labels=labels, importance=importance)
        if vector is not None and len(vector) != dim:
            raise InvalidInputError(
                f"vector has {len(vector)} dims, world {world!r} expects {dim}",
                field="vector",
                dims=len(vector),
                expected=dim,
            )
        # The embedding is made later, for a whole batch in one call (see _embed_pending).
        index_vec = pack_unit(vector) if vector is not None else None
        embed_text = payload.text if vector is None and dim == self.embedder.dim else ""
        rec_us = now_us if recorded_us is None else recorded_us
        rec_text = self._instant(rec_us)  # a batch shares one record time: formatted once
        atom = Atom(
            id=atom_id or self._ids.new_id(now_us // 1000),
            world=world,
            worker=worker,
            kind=kind,
            timestamp=rec_text if ts_us == rec_us else format_instant(ts_us),
            importance=importance,
            payload_json=payload.json,
            vector=vector,
            flags=flags,
            labels=labels,
            links=links,
            recorded_at=rec_text,
        )
        return _Prepared(
            atom,
            ts_us,
            rec_us,
            payload.text,
            index_vec,
            # quarantine's number rule reads the payload only when it may hold NaN or infinity
            None if payload.finite else payload.parsed,
            embed_text,
        )

    def _embed_pending(self, prepared: Sequence[_Prepared]) -> list[_Prepared]:
        """Fill in the embeddings ``_prepare`` left to do, with one call to the embedder."""
        waiting = [i for i, p in enumerate(prepared) if p.embed_text]
        out = list(prepared)
        if not waiting:
            return out
        texts = [prepared[i].embed_text for i in waiting]
        # float32 bytes straight from an embedder that makes them (the hashing one, in numpy)
        packed = getattr(self.embedder, "embed_packed", None)
        blobs = (
            packed(texts) if packed is not None else [pack(v) for v in self.embedder.embed(texts)]
        )
        for i, blob in zip(waiting, blobs, strict=True):
            p = out[i]
            p.index_vector, p.embed_text = blob, ""
        return out

    def _check_world_open(self, world: str, labels: Sequence[str]) -> None:
        if any(lb.startswith("world_status:") for lb in labels):
            return
        if self.worlds.status(world) == "archived":
            raise ConflictError(
                f"world {world!r} is archived; resume it before writing", world=world
            )

    def _quarantine_reason(self, prep: _Prepared, *, burst: bool = True) -> str | None:
        a = prep.atom
        if a.labels and any(lb.startswith(("policy:", "world_status:")) for lb in a.labels):
            return None
        trust = self.options.trust.get(a.worker, self.options.default_trust)
        return self._quarantine.reason(
            world=a.world,
            worker=a.worker,
            importance=a.importance,
            payload=prep.parsed,
            trust=trust,
            burst=burst,
        )

    def remember_batch(
        self, atoms: Sequence[Mapping[str, Any]], *, caller: Caller | None = None
    ) -> list[AtomId]:
        """Store several atoms in one transaction: all are stored, or none (on any error)."""
        if isinstance(atoms, Mapping | str) or not isinstance(atoms, Sequence):
            raise InvalidInputError("atoms must be a list of atoms", field="atoms")
        if not atoms:
            return []
        if len(atoms) > MAX_BATCH:
            raise InvalidInputError(f"at most {MAX_BATCH} atoms per batch", field="atoms")
        who = caller or FULL_ACCESS
        self._sync()
        now_us = self._now()
        prepared: list[_Prepared] = []
        seen = _Seen()
        for i, data in enumerate(atoms):
            try:
                prepared.append(self._prepare(data, who, now_us, seen=seen))
            except InvalidInputError as exc:
                if len(atoms) > 1:
                    exc.details.setdefault("index", i)
                    exc.message = f"atom {i}: {exc.message}"
                    exc.args = (exc.message,)
                raise
        batch = [p.atom for p in prepared]
        check_links(self.storage, batch)
        open_worlds: set[str] = set()
        for atom in batch:  # a world found open stays open for the rest of the batch
            if atom.world not in open_worlds:
                self._check_world_open(atom.world, atom.labels)
                if not any(lb.startswith("world_status:") for lb in atom.labels):
                    open_worlds.add(atom.world)
        # Ids the writer chose may exist already: those atoms are answered, not stored again.
        chosen = [i for i, d in enumerate(atoms) if d.get("id") is not None]
        known = chosen_ids.known(self.storage, batch, chosen)
        fresh = [p for i, p in enumerate(prepared) if i not in known] if known else prepared
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
        seen = _Seen()
        for i, (data, caller) in enumerate(items):
            try:
                p = self._prepare(data, caller or FULL_ACCESS, now_us, seen=seen)
                check_links(self.storage, [p.atom])
                self._check_world_open(p.atom.world, p.atom.labels)
                hit = chosen_ids.known(self.storage, [p.atom], [0] if data.get("id") else [])
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

    def _with_quarantine(self, p: _Prepared, *, peer: bool = False) -> NewRecord:
        """``p``'s record, held in quarantine when the quarantine rules say so (for a peer's
        atom, all but the burst rule)."""
        reason = self._quarantine_reason(p, burst=not peer)
        return p.record(reason)

    def _store(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        with self._lock:
            self._embedder_record.ensure()
            self.worlds.save_dims(records)
            stored = self.storage.append(records)
            self.worlds.stored(stored)
            for s in stored:
                self.counters.atoms_total += 1
                if s.quarantine is not None:
                    self.counters.quarantine_total += 1
            self._feed.stored(stored)
        if stored and self._on_stored is not None:
            self._on_stored(s.atom.world for s in stored)
        return stored

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
            if not self.worlds.policy(atom.world).allows_replication(atom.world):
                refused[atom.id] = "replication denied by world policy"
                continue
            prepared.append(p)
        check_links(self.storage, [p.atom for p in prepared], allow_unknown=True)
        for p in prepared:
            self._check_world_open(p.atom.world, p.atom.labels)
        records = [self._with_quarantine(p, peer=True) for p in self._embed_pending(prepared)]
        stored = {s.atom.id for s in self._store(records)}
        ids = [r.atom.id for r in records]
        return IngestResult(
            stored=[i for i in ids if i in stored],
            duplicates=[i for i in ids if i not in stored],
            refused=refused,
        )
