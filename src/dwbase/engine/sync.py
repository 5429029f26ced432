"""Noticing what other processes changed in the store (DESIGN: several processes, one store)."""

from __future__ import annotations

from collections.abc import Callable

from ..storage.base import Storage
from ..stream.feed import Feed, StoreWatch
from .worlds import WorldCache


class StoreSync:
    """Called before reads and writes: cheap when no other connection committed (one
    ``PRAGMA data_version``). Otherwise a moved store generation (a delete, hold, release or
    reindex elsewhere) calls ``forget``; new atoms drop the policy and world-state caches and
    go to this engine's observers."""

    def __init__(
        self, storage: Storage, feed: Feed, worlds: WorldCache, forget: Callable[[], None]
    ) -> None:
        self._watch = StoreWatch(storage)
        self._feed = feed
        self._worlds = worlds
        self._forget = forget

    def __call__(self) -> None:
        seen = self._watch.look()
        if seen is None:
            return
        if seen.generation_moved:
            self._forget()
        self._worlds.saw_upto(seen.top)
        # Never waits for a writer (an SSE stream polls from the event loop): a busy writer
        # offers what precedes its own atoms, and the next look tries again.
        if self._feed.catch_up(seen.top):
            self._watch.settle(seen)
