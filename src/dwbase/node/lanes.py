"""Lanes: the node's own threads for engine calls on the hot routes.

The engine is synchronous, so the event loop hands its calls to threads. A general-purpose
thread pool (anyio's ``to_thread``) costs more per call than a remember itself on a small
machine, and with many threads the GIL is passed around more than work gets done. A lane is a
fixed set of threads fed by one queue; a finished call comes back to the loop with a single
``call_soon_threadsafe``.

* :class:`Lane` runs any call (``ask``, ``get``, ...) on ``threads`` threads, taking the
  callers' calls in turn.
* :class:`WriteLane` is one thread that gathers every single remember waiting in its queue and
  stores them with :meth:`Engine.remember_each` in one transaction (group commit). Each
  request still gets its own answer: its id, or its own error.

Both start their threads on first use and stop them in :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..engine import Engine
from ..errors import UnavailableError
from ..results import AtomId
from ..security.caps import Caller
from .fair import FairQueue

T = TypeVar("T")

_STOP = object()


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():  # the request went away (client disconnected): nobody to tell
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


def _settle_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, error in results:
        _settle(fut, value, error)


class Lane:
    """Blocking calls on ``threads`` dedicated threads, answered on the caller's loop.

    Calls are queued by ``key`` (the principal) in a :class:`FairQueue`: a free thread takes
    the next call of the caller whose turn it is, so one caller's many calls delay another's
    by at most the calls already running.
    """

    def __init__(self, name: str, threads: int) -> None:
        if threads < 1:
            raise ValueError("a lane needs at least one thread")
        self.name = name
        self.size = threads
        self._jobs: FairQueue[Any] = FairQueue()
        self._cond = threading.Condition(threading.Lock())
        self._threads: list[threading.Thread] = []
        self._closed = False

    async def call(self, fn: Callable[..., T], /, *args: Any, key: str = "", **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        job = (functools.partial(fn, *args, **kwargs), fut, loop)
        with self._cond:
            if self._closed:
                raise UnavailableError(f"the node is shutting down ({self.name} lane closed)")
            if not self._threads:
                for i in range(self.size):
                    t = threading.Thread(
                        target=self._work, name=f"dwbase-{self.name}-{i}", daemon=True
                    )
                    t.start()
                    self._threads.append(t)
            self._jobs.push(key, job)
            self._cond.notify()
        return await fut

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if self._closed:
                        return
                    self._cond.wait()
                fn, fut, loop = self._jobs.pop()
            try:
                value, error = fn(), None
            except BaseException as exc:  # handed to the request, which reports it
                value, error = None, exc
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
                loop.call_soon_threadsafe(_settle, fut, value, error)

    def open(self) -> None:
        """Take calls again after :meth:`close` (an app's lifespan may run more than once)."""
        with self._cond:
            self._closed = False

    def close(self, timeout: float = 10.0) -> None:
        """Finish the calls already queued, then stop the threads."""
        with self._cond:
            self._closed = True
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for t in threads:
            t.join(timeout)


class WriteLane:
    """Single remembers, stored in groups: one thread, one transaction per group."""

    name = "write"

    def __init__(self, engine: Engine, max_group: int = 256) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.engine = engine
        self.max_group = max_group
        self.groups = 0  # transactions run, and atoms stored through them (tests read these)
        self.atoms = 0

    def _put(self, job: Any) -> None:
        with self._lock:
            if self._closed:
                raise UnavailableError("the node is shutting down (write lane closed)")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="dwbase-write", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def open(self) -> None:
        """Take calls again after :meth:`close` (an app's lifespan may run more than once)."""
        with self._lock:
            self._closed = False

    def close(self, timeout: float = 10.0) -> None:
        """Store the remembers already queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    async def remember(self, data: Mapping[str, Any], caller: Caller | None) -> AtomId:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[AtomId] = loop.create_future()
        self._put((data, caller, fut, loop))
        return await fut

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            group = [job]
            stop = False
            while len(group) < self.max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                group.append(more)
            self._store(group)
            if stop:
                return

    def _store(self, group: list[Any]) -> None:
        try:
            answers: list[Any] = self.engine.remember_each([(d, c) for d, c, _, _ in group])
        except BaseException as exc:  # an unexpected fault: every request in the group hears it
            answers = [exc] * len(group)
        self.groups += 1
        self.atoms += len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_, _, fut, loop), answer in zip(group, answers, strict=True):
            error = answer if isinstance(answer, BaseException) else None
            by_loop.setdefault(loop, []).append((fut, None if error else answer, error))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, results)
