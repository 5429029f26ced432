"""Ask workers: asks answered by processes of their own that read the node's SQLite store.

One Python process runs Python on one core at a time, and ``ask`` is mostly Python. With
``ask_workers = N`` the node starts N worker processes; each opens the same store with the
same settings and answers the asks the node hands it, so asks use every core while the node
process keeps doing HTTP, writes, observe and operator work.

What a worker sees is what the node sees:

* appends: SQLite readers see every committed write, and a worker's vector indexes catch up
  on new seqs before each ask;
* everything else (gc, quarantine release or drop, policy and world lifecycle atoms,
  reindex): a worker's engine notices it before each ask as any engine notices what another
  process changed in its store (``engine/sync.py``), and drops the caches it affects.

The node has already authenticated the caller and applied rate limits; the worker's engine
checks the caller's read capability as usual and sends back the answer's JSON, or the error
(class, message, details) to raise again in the node. A worker that dies fails the asks it
held (503 ``unavailable``) and is started again; until a worker is ready, and if one never
starts (a program embedding the node without an ``if __name__ == "__main__"`` guard cannot
start processes), asks are answered in the node process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import multiprocessing
import select
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import orjson

from .. import errors as _errors
from ..config import Settings
from ..errors import DWBaseError, InternalError, UnavailableError
from ..security.caps import Caller
from ..vector.exact import pin_blas_threads
from .fair import FairQueue
from .wireform import payload_fragment

log = logging.getLogger("dwbase.node")

_OK, _ERROR = b"0", b"1"


def _worker_main(settings: Settings, conn: Connection) -> None:
    """A worker process: open the store, then answer asks until the node closes the pipe."""
    pin_blas_threads()
    engine = settings.open_engine()
    conn.send_bytes(b"ready")
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            if request is None:  # the node is stopping
                return
            kwargs, caller = request
            try:
                answer = engine.ask(**kwargs, caller=caller)
                conn.send_bytes(_OK + orjson.dumps(answer.to_wire(payload_fragment)))
            except DWBaseError as exc:
                err = {"class": type(exc).__name__, "message": exc.message, "details": exc.details}
                conn.send_bytes(_ERROR + json.dumps(err, default=str).encode("utf-8"))
            except Exception as exc:  # a fault: reported as internal, the worker goes on
                err = {"class": "InternalError", "message": f"ask failed: {exc!r}", "details": {}}
                conn.send_bytes(_ERROR + json.dumps(err).encode("utf-8"))
    finally:
        engine.close()


def _raise_from(payload: bytes) -> DWBaseError:
    err = json.loads(payload)
    cls = getattr(_errors, str(err.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, DWBaseError)):
        cls = InternalError
    message, details = str(err.get("message", "ask failed")), dict(err.get("details") or {})
    try:
        return cls(message, **details)
    except TypeError:  # a class whose details are not plain keywords: keep the message
        return InternalError(message, **details)


class _Worker:
    """One worker process and its pipe, read by the node's event loop (no thread of its own).

    Every method runs on the loop that started the pool, so sends and answers pair up in
    order without a lock.
    """

    def __init__(self, pool: AskPool, index: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.index = index
        self.loop = loop
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main,
            args=(pool.worker_settings, child),
            name=f"dwbase-ask-{index}",
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.ready = False
        self.was_ready = False
        self.alive = True
        self.waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self.fd = self.conn.fileno()
        self._poll = select.poll()  # one poll object: Connection.poll builds a selector per call
        self._poll.register(self.fd, select.POLLIN)
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            # poll first: a readiness callback may come without a whole message to read
            while self.alive and self._poll.poll(0):
                data = self.conn.recv_bytes()
                if not self.ready:
                    if data != b"ready":
                        raise EOFError
                    self.ready = self.was_ready = True
                    continue
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(data)
        except (EOFError, OSError):
            self._gone()
        self.pool._dispatch()

    def _gone(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self.ready = False
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            self.loop.remove_reader(self.fd)
        waiting, self.waiting = self.waiting, collections.deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(UnavailableError("the ask worker stopped; retry the ask"))
        self.pool._lost(self)

    def send(self, request: Any, fut: asyncio.Future[bytes]) -> None:
        if not self.alive:
            raise UnavailableError("the ask worker stopped; retry the ask")
        try:
            self.conn.send(request)
        except (OSError, ValueError) as exc:
            raise UnavailableError("the ask worker stopped; retry the ask") from exc
        self.waiting.append(fut)

    def stop(self, timeout: float) -> None:
        if self.alive:
            self.alive = False
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                self.loop.remove_reader(self.fd)
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
        with contextlib.suppress(OSError):
            self.conn.close()
        for fut in self.waiting:
            if not fut.done():
                fut.set_exception(UnavailableError("the node is stopping; retry the ask"))
        self.waiting.clear()


class AskPool:
    """``workers`` processes answering asks over the node's store.

    Asks wait in a :class:`FairQueue` by principal and go to a worker when it has fewer than
    :attr:`DEPTH` asks: one it works on and one ready in its pipe, so it never idles while the
    node's loop is busy, and another caller's ask waits behind at most those.
    """

    DEPTH = 2

    def __init__(self, settings: Settings, workers: int) -> None:
        # The settings were validated (ask_workers needs the sqlite backend). Workers only
        # read: no gc schedule of their own (the node runs gc).
        self.worker_settings = replace(settings, storage_gc_interval_s=0.0, reembed=False)
        self.size = workers
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = True
        self.restarts = 0
        self.answered = 0  # asks the workers answered
        self._turn = 0
        self._pending: FairQueue[tuple[Any, asyncio.Future[bytes]]] = FairQueue()

    def start(self) -> None:
        """Start the workers; call on the event loop that will send them asks."""
        self._loop = loop = asyncio.get_running_loop()
        self._closed = False
        if not self._workers:
            self._workers = [_Worker(self, i, loop) for i in range(self.size)]

    @property
    def ready(self) -> bool:
        return any(w.ready for w in self._workers)

    @property
    def ready_count(self) -> int:
        return sum(w.ready for w in self._workers)

    def _lost(self, worker: _Worker) -> None:
        if self._closed or worker not in self._workers or self._loop is None:
            return
        worker.proc.join(0.5)  # its pipe closed: it is exiting; collect its exit code
        if not worker.was_ready:  # it never started: starting more would fail the same way
            log.error(
                "ask worker failed to start; asks stay in the node process",
                extra={"fields": {"worker": worker.index, "exitcode": worker.proc.exitcode}},
            )
            if not any(w.alive for w in self._workers):
                self._fail_pending("no ask worker is running; retry the ask")
            return
        log.warning(
            "ask worker exited; starting another",
            extra={"fields": {"worker": worker.index, "exitcode": worker.proc.exitcode}},
        )
        self._workers[self._workers.index(worker)] = _Worker(self, worker.index, self._loop)
        self.restarts += 1

    async def ask(
        self, kwargs: dict[str, Any], caller: Caller | None, key: str = ""
    ) -> bytes | None:
        """The answer's JSON from a worker, or ``None`` if no worker is ready.

        ``key`` is the principal whose turn this ask waits for (see the class docstring).
        """
        if not self.ready:
            return None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending.push(key, ((kwargs, caller), fut))
        self._dispatch()
        data = await fut
        if data[:1] == _OK:
            self.answered += 1
            return data[1:]
        raise _raise_from(data[1:])

    def _dispatch(self) -> None:
        """Hand pending asks to ready workers with room, least busy first."""
        pending = self._pending
        while pending:
            workers = self._workers
            self._turn = (self._turn + 1) % max(1, len(workers))
            ready = [
                w
                for w in workers[self._turn :] + workers[: self._turn]
                if w.ready and len(w.waiting) < self.DEPTH
            ]
            if not ready:
                return
            worker = min(ready, key=lambda w: len(w.waiting))  # the first in turn among equals
            request, fut = pending.pop()
            if fut.done():  # the request went away while it waited
                continue
            try:
                worker.send(request, fut)
            except UnavailableError as exc:
                fut.set_exception(exc)

    def _fail_pending(self, message: str) -> None:
        for _, fut in self._pending.drain():
            if not fut.done():
                fut.set_exception(UnavailableError(message))

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers; call on the pool's event loop."""
        self._closed = True
        workers, self._workers = self._workers, []
        for w in workers:
            w.stop(timeout)
        self._fail_pending("the node is stopping; retry the ask")
