"""Reads: get, replay and ask, each checked against the caller's read permission."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..ask import run_ask
from ..embed import Embedder
from ..errors import InvalidInputError, NotFoundError
from ..indexes import IndexManager
from ..model import (
    Answer,
    Atom,
    AtomFilter,
    FilterSpec,
    StoredAtom,
    validate_question,
    validate_vector,
    validate_world,
)
from ..options import Options
from ..ranking import RANK_MODES
from ..results import Counters
from ..security.caps import FULL_ACCESS, Caller
from ..storage.base import Storage
from . import filters
from .worlds import WorldCache

_ANY = FilterSpec()  # every atom


class Reader:
    """The read paths; also what an ask reads (:class:`dwbase.ask.AskContext`)."""

    def __init__(
        self,
        *,
        storage: Storage,
        options: Options,
        embedder: Embedder,
        indexes: IndexManager,
        worlds: WorldCache,
        sync: Callable[[], None],
        counters: Counters,
    ) -> None:
        self.storage = storage
        self.options = options
        self.embedder = embedder
        self.indexes = indexes
        self._worlds = worlds
        self._sync = sync
        self._counters = counters

    def split_world(self, world: str) -> tuple[str, bool]:
        return filters.split_world(world)

    def world_dim(self, world: str) -> int:
        return self._worlds.dim(world)

    def get(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        """The atom with this id; ``NotFoundError`` if absent or not readable by the caller."""
        if not isinstance(atom_id, str) or not atom_id:
            raise InvalidInputError("atom id must be a non-empty string", field="id")
        s = self.storage.get(atom_id)
        atom = s.visible_atom() if s is not None else None
        if atom is None or not (caller or FULL_ACCESS).can_read(atom.world):
            raise NotFoundError(f"no atom {atom_id!r}", id=atom_id)
        return atom

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
        flt = filters.merge_filter(
            world,
            filter,
            kinds=kinds,
            labels=labels,
            flags=flags,
            since=since,
            until=until,
            limit=limit,
        )
        spec = filters.spec(flt, as_of)
        if order not in ("append", "event"):
            raise InvalidInputError("order must be 'append' or 'event'", field="order")
        cap = filters.limit(flt.limit, None, maximum=1_000_000)
        base, quarantined = filters.split_world(world)
        after_seq = None
        if after is not None:
            after_seq = filters.cursor_seq(self.storage, after, base)
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

    def _drop_superseded(self, rows: list[StoredAtom], as_of_us: int | None) -> list[StoredAtom]:
        counts = self.storage.link_counts([s.atom.id for s in rows], as_of_us=as_of_us)
        return [s for s in rows if not counts.get(s.atom.id, {}).get("supersedes")]

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

        >>> import dwbase
        >>> db = dwbase.open(":memory:")
        >>> _ = db.remember("demo", "a", "observation", {"text": "checkout latency 820ms"})
        >>> db.ask("demo", "why is checkout slow?").hits[0].atom.payload["text"]
        'checkout latency 820ms'
        """
        self._counters.asks_total += 1
        validate_world(world)
        (caller or FULL_ACCESS).require_read(world)
        self._sync()
        validate_question(text)
        if rank not in RANK_MODES:
            raise InvalidInputError(f"rank must be one of {', '.join(RANK_MODES)}", field="rank")
        flt = filters.merge_filter(
            world, filter, kinds=kinds, labels=labels, flags=flags, since=since, until=until
        )
        spec = filters.spec(flt, as_of)
        cap = filters.limit(flt.limit, None)
        n = filters.limit(limit, 10, maximum=1000) or 10
        if cap is not None:
            n = min(n, cap)
        qvec = validate_vector(vector)
        answer = run_ask(
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
        if not answer.hits and not self._holds_atoms(world):
            answer.warnings.append(
                f"world {world!r} holds no atoms: nothing was remembered there "
                "(or all of it was removed)"
            )
        return answer

    def _holds_atoms(self, world: str) -> bool:
        """Whether ``world`` holds any atom at all, held ones included (asked only when an
        ask found nothing, so a world that does not exist can say so)."""
        base, _ = filters.split_world(world)
        return any(
            self.storage.scan(base, _ANY, quarantined=held, limit=1) for held in (False, True)
        )
