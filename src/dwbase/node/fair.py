"""A queue that serves its callers in turn: the next job is the oldest of the caller whose
turn it is, not the oldest of all.

The node's read lane and its ask workers take jobs from one of these, keyed by principal.
Every job is queued at once (a free thread or worker never waits for a caller's turn to come
round on the event loop), and a caller who sent a hundred asks delays another caller's ask by
at most the jobs already running, not by its hundred.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Jobs by key, taken in start-time fair order (not thread-safe).

    Each job gets a start tag: the later of the tag being served now and the end of its key's
    previous job (each job counts as one unit). The smallest tag goes first, ties in arrival
    order. So a key that was just served waits for keys that were not, however many jobs it
    queued, and a key that was idle gets no credit for the time it sent nothing.
    """

    __slots__ = ("_ends", "_heap", "_now", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, T]] = []
        self._ends: dict[str, int] = {}  # key -> end tag of its last queued job
        self._now = 0  # start tag of the job taken last
        self._seq = 0

    def push(self, key: str, job: T) -> None:
        start = max(self._now, self._ends.get(key, 0))
        self._ends[key] = start + 1
        self._seq += 1
        heapq.heappush(self._heap, (start, self._seq, key, job))

    def pop(self) -> T:
        """The next job; :class:`IndexError` when there is none."""
        if not self._heap:
            raise IndexError("pop from an empty FairQueue")
        start, _, _, job = heapq.heappop(self._heap)
        self._now = start
        if len(self._ends) > 2 * len(self._heap) + 64:
            # Forget keys with nothing queued that are at most one job ahead: the most such a
            # key gains is one turn, and the table stays as small as the queue.
            queued = {key for _, _, key, _ in self._heap}
            self._ends = {k: end for k, end in self._ends.items() if k in queued or end > start + 1}
        return job

    def drain(self) -> list[T]:
        """Every job left, in the order they would have been taken, and empty the queue."""
        jobs = []
        while self._heap:
            jobs.append(self.pop())
        return jobs

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
