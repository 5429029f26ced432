"""Bounded observe subscriptions.

Each subscription has its own queue of at most ``capacity`` atoms. When it is full, the drop
policy decides: ``drop_oldest`` (default) discards the oldest queued atom, ``drop_newest``
discards the arriving one; either way ``dropped_count`` counts it. A subscription nobody has
polled for ``idle_ttl_s`` seconds expires. Stored atoms carry their ``seq`` so a consumer can
resume from the last id it saw (see ``Engine.observe_start(after=...)``).

A consumer that would rather wait than poll (the node's SSE stream) gives the subscription a
*waker*: a callable the hub calls, from whichever thread published, outside the hub's lock,
when atoms arrive for an empty queue and when the subscription ends. It must not block (the
stream's sets an ``asyncio.Event`` through ``loop.call_soon_threadsafe``). Such a
subscription does not expire while idle: its owner waits on it and stops it when done.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import InvalidHandleError, InvalidInputError, LimitExceededError
from ..model import Atom
from ..timeutil import Clock

DROP_POLICIES = ("drop_oldest", "drop_newest")

log = logging.getLogger("dwbase.stream")


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    handle: str
    queued_count: int
    dropped_count: int
    last_event_ms: int | None
    warnings: list[str]
    cursor: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "handle": self.handle,
            "queued_count": self.queued_count,
            "dropped_count": self.dropped_count,
            "last_event_ms": self.last_event_ms,
            "warnings": list(self.warnings),
            "cursor": self.cursor,
        }


@dataclass(slots=True)
class Subscription:
    handle: str
    accepts: Callable[[Atom, int | None], bool]
    capacity: int
    drop_policy: str
    last_poll: float
    queue: deque[tuple[Atom, int | None]] = field(default_factory=deque)
    dropped: int = 0
    last_event: float | None = None
    cursor: str | None = None
    waker: Callable[[], None] | None = None

    def offer(self, atom: Atom, seq: int | None, now: float) -> int:
        """Queue one atom; returns how many atoms were dropped (0 or 1)."""
        self.last_event = now
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            if self.drop_policy == "drop_newest":
                return 1
            self.queue.popleft()
            self.queue.append((atom, seq))
            return 1
        self.queue.append((atom, seq))
        return 0


class Hub:
    def __init__(
        self,
        clock: Clock,
        *,
        default_capacity: int = 10_000,
        idle_ttl_s: float = 600.0,
        max_subscriptions: int = 10_000,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._subs: dict[str, Subscription] = {}
        self.default_capacity = default_capacity
        self.idle_ttl_s = idle_ttl_s
        self.max_subscriptions = max_subscriptions
        self.dropped_total = 0
        self.expired_total = 0

    def subscribe(
        self,
        accepts: Callable[[Atom, int | None], bool],
        *,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
        backlog: Iterable[tuple[Atom, int]] = (),
        waker: Callable[[], None] | None = None,
    ) -> str:
        """A new subscription's handle; ``waker`` (see the module notes) replaces polling."""
        cap = self.default_capacity if capacity is None else capacity
        if not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 1_000_000:
            raise InvalidInputError(
                "capacity must be a whole number in [1, 1000000]", field="capacity"
            )
        if drop_policy not in DROP_POLICIES:
            raise InvalidInputError(
                f"drop_policy {drop_policy!r} is not one of {', '.join(DROP_POLICIES)}",
                field="drop_policy",
            )
        now = self._clock()
        with self._lock:
            self._expire(now)
            if len(self._subs) >= self.max_subscriptions:
                raise LimitExceededError(
                    f"too many observe subscriptions in this process (limit "
                    f"{self.max_subscriptions}); stop some, or let idle ones expire",
                    limit="observe_subscriptions",
                    value=self.max_subscriptions,
                    retry_after=1.0,
                )
            sub = Subscription(
                handle=uuid.uuid4().hex,
                accepts=accepts,
                capacity=cap,
                drop_policy=drop_policy,
                last_poll=now,
                waker=waker,
            )
            for atom, seq in backlog:
                self.dropped_total += sub.offer(atom, seq, now)
            self._subs[sub.handle] = sub
            return sub.handle

    def publish(self, atom: Atom, seq: int | None) -> int:
        """Offer an atom to every matching subscription; returns how many took it."""
        now = self._clock()
        taken = 0
        wake: list[Callable[[], None]] = []
        with self._lock:
            self._expire(now)
            for sub in self._subs.values():
                if sub.accepts(atom, seq):
                    if sub.waker is not None and not sub.queue:
                        wake.append(sub.waker)  # a non-empty queue's waiter is already awake
                    self.dropped_total += sub.offer(atom, seq, now)
                    taken += 1
        _wake(wake)
        return taken

    def _get(self, handle: str) -> Subscription:
        sub = self._subs.get(handle)
        if sub is None:
            raise InvalidHandleError(
                f"observe handle {handle!r} is unknown, stopped or expired; start a new one "
                "(pass after=<last atom id> to resume without gaps)",
                handle=handle,
            )
        return sub

    def poll(self, handle: str, max_items: int = 100) -> list[Atom]:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise InvalidInputError("max must be a whole number of at least 1", field="max")
        now = self._clock()
        with self._lock:
            self._expire(now)
            sub = self._get(handle)
            sub.last_poll = now
            out: list[Atom] = []
            while sub.queue and len(out) < max_items:
                atom, seq = sub.queue.popleft()
                if seq is not None:
                    sub.cursor = atom.id
                out.append(atom)
            return out

    def stop(self, handle: str) -> None:
        with self._lock:
            sub = self._get(handle)
            del self._subs[handle]
        if sub.waker is not None:  # its waiter polls, learns it ended, and says why
            _wake([sub.waker])

    def stats(self, handle: str) -> SubscriptionStats:
        with self._lock:
            self._expire(self._clock())
            sub = self._get(handle)
            warnings: list[str] = []
            if sub.dropped:
                warnings.append(
                    f"{sub.dropped} atoms dropped ({sub.drop_policy}, capacity {sub.capacity}); "
                    "poll more often or resume with after=<cursor>"
                )
            if len(sub.queue) >= sub.capacity * 0.8:
                warnings.append("queue is over 80% full")
            return SubscriptionStats(
                handle=handle,
                queued_count=len(sub.queue),
                dropped_count=sub.dropped,
                last_event_ms=int(sub.last_event * 1000) if sub.last_event is not None else None,
                warnings=warnings,
                cursor=sub.cursor,
            )

    def queue_depth(self) -> int:
        with self._lock:
            return sum(len(s.queue) for s in self._subs.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)

    def waiting(self) -> int:
        """How many subscriptions wait on a waker rather than poll."""
        with self._lock:
            return sum(1 for s in self._subs.values() if s.waker is not None)

    def _expire(self, now: float) -> None:
        dead = [
            h
            for h, s in self._subs.items()
            if s.waker is None and now - s.last_poll > self.idle_ttl_s
        ]
        for h in dead:
            del self._subs[h]
        self.expired_total += len(dead)


def _wake(wakers: list[Callable[[], None]]) -> None:
    for waker in wakers:
        try:
            waker()
        except Exception:  # e.g. its event loop closed; the publish goes on regardless
            log.warning("an observe waker failed; its subscription waits", exc_info=True)
