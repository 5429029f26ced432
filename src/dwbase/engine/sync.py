"""Noticing what other processes changed in the store (DESIGN: several processes, one store)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..background import BackgroundFailures
from ..storage.base import Storage
from ..stream.feed import Feed, StoreWatch
from .worlds import WorldCache

log = logging.getLogger("dwbase.observe")

WATCH_INTERVAL_S = 0.05
"""How often :class:`Watcher` looks for other processes' atoms while a subscription waits."""


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
        # Never waits for a writer (it runs before reads, and on the watcher thread): a busy
        # writer offers what precedes its own atoms, and the next look tries again.
        if self._feed.catch_up(seen.top):
            self._watch.settle(seen)


class Watcher:
    """Runs ``sync`` every :data:`WATCH_INTERVAL_S` on a thread of its own while ``waiting()``
    subscriptions wait on a waker instead of polling.

    Atoms this process stores reach the hub as they are stored; atoms another process stores
    reach it only when this engine looks at the store. A polling consumer looks on each poll;
    a waiting one (an SSE stream) never polls, so this one thread looks for all of them: one
    cheap look per interval for the whole engine, however many streams are open, and none
    while no stream is. The thread ends by itself when the last waiting subscription does.
    """

    def __init__(
        self,
        sync: Callable[[], None],
        waiting: Callable[[], int],
        background: BackgroundFailures,
        *,
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._sync = sync
        self._waiting = waiting
        self._background = background
        self._interval = interval_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def wake(self) -> None:
        """A subscription now waits: make sure the thread runs."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="dwbase-observe", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:  # decided under the lock that wake() starts a thread under
                if not self._waiting():
                    self._thread = None
                    return
            try:
                self._sync()
            except Exception as exc:  # logged and counted; the next look tries again
                self._background.failed("observe", exc, log)
            else:
                self._background.recovered("observe", log)
        with self._lock:
            self._thread = None
