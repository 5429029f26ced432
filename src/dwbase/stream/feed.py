"""The store's feed: observers get every stored atom in ``seq`` order, whoever stored it.

Several processes write one store (docs/operations.md). An engine offers its observers the
atoms it stores itself as it stores them, and the atoms other processes stored as it notices
them:

* :class:`StoreWatch` notices with one statement (``Storage.look``) that another connection
  committed (SQLite's ``data_version``), and whether another process changed what appends
  cannot show (a delete, hold, release or reindex elsewhere);
* :class:`Feed` keeps ``published_seq``, the highest seq observers were offered, and offers
  the atoms after it in order, under the engine's write lock, so a remember of this process
  and a catch-up never interleave. A subscription started with a cursor takes its backlog up
  to ``published_seq`` and the live feed after it: no gap, no duplicate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..model import Atom, StoredAtom
from ..storage.base import Storage
from .hub import Hub


@dataclass(frozen=True, slots=True)
class Seen:
    """What :meth:`StoreWatch.look` found: another process moved the generation, and the
    store's highest seq now."""

    changes: int
    generation_moved: bool
    top: int


class StoreWatch:
    """Notices what other processes changed in a store since the last look."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._changes, _, self._foreign = storage.look()

    def look(self) -> Seen | None:
        """``None`` when no other connection committed since the last :meth:`settle`."""
        changes, top, foreign = self._storage.look()  # one statement, whatever it finds
        if changes == self._changes:
            return None
        moved = foreign != self._foreign
        self._foreign = foreign
        return Seen(changes, moved, top)

    def settle(self, seen: Seen) -> None:
        """Everything ``seen`` showed was handled: the next look starts from there."""
        self._changes = seen.changes


class Feed:
    """Offers a hub's subscribers every stored atom once, in seq order."""

    def __init__(self, storage: Storage, hub: Hub, lock: threading.RLock) -> None:
        self._storage = storage
        self.hub = hub
        self._lock = lock
        self.published_seq = storage.max_seq()

    def catch_up(self, top: int) -> bool:
        """Offer atoms up to ``top`` that other processes stored; ``False`` if a writer of
        this process holds the lock (it offers what precedes its own atoms; look again)."""
        if top <= self.published_seq:
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self.catch_up_locked(top)
        finally:
            self._lock.release()
        return True

    def catch_up_locked(self, top: int) -> None:
        if top <= self.published_seq:
            return
        if len(self.hub):
            for s in self._storage.scan_seqs(self.published_seq, top):
                self.hub.publish(s.visible_atom(), s.seq)
        self.published_seq = top

    def stored(self, stored: Sequence[StoredAtom]) -> None:
        """This process stored ``stored`` (under the lock): earlier atoms first, then these."""
        if not stored:
            return
        self.catch_up_locked(stored[0].seq - 1)
        for s in stored:
            self.hub.publish(s.visible_atom(), s.seq)
        self.published_seq = max(self.published_seq, stored[-1].seq)

    def subscribe(
        self,
        accepts: Callable[[Atom, int | None], bool],
        backlog_after: Callable[[int], list[StoredAtom]] | None,
        *,
        capacity: int | None,
        drop_policy: str,
        waker: Callable[[], None] | None = None,
    ) -> str:
        """Subscribe; ``backlog_after(top)`` gives the stored atoms to deliver first, up to
        ``top`` (the feed's position), when the subscriber resumes from a cursor. ``waker``:
        see :mod:`dwbase.stream.hub`."""
        with self._lock:  # no remember can slip between the backlog and the live feed
            self.catch_up_locked(self._storage.max_seq())
            backlog = (
                [(s.visible_atom(), s.seq) for s in backlog_after(self.published_seq)]
                if backlog_after is not None
                else []
            )
            return self.hub.subscribe(
                accepts,
                capacity=capacity,
                drop_policy=drop_policy,
                backlog=backlog,
                waker=waker,
            )
