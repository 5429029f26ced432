"""Observe limits: how many subscriptions, and how many queued atoms, each token may hold.

Every observe handle and every SSE stream is a subscription that the engine offers each new
atom to, with a queue of up to ``capacity`` atoms. Without a bound, one read token opening
thousands of them makes every write slower and fills memory for everyone. The node counts,
per token and over all tokens, the subscriptions held and the sum of their capacities, and
refuses one more with :class:`~dwbase.errors.LimitExceededError` (429 ``limit_exceeded``)
naming the limit. A slot comes back when its handle is stopped, its stream ends, or the
engine expires it (nobody polled for ``storage.observe_idle_ttl_s``).

>>> from dwbase.config import load_settings
>>> handles: dict[str, str] = {}
>>> limits = ObserveLimits(
...     load_settings(None, {"limits.observe_per_token": 1}, environ={}), handles, lambda h: True
... )
>>> ticket = limits.reserve("token:a", None)
>>> limits.bind(ticket, "h1")
>>> try:
...     limits.reserve("token:a", None)
... except LimitExceededError as exc:
...     exc.details["limit"]
'limits.observe_per_token'
>>> limits.release("h1")
>>> limits.bind(limits.reserve("token:a", None), "h2")
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from ..config import Settings
from ..errors import InvalidInputError, LimitExceededError

_PENDING = "pending:"  # a slot reserved while the engine makes the subscription


class ObserveLimits:
    """Caps on the subscriptions in ``handles`` (observe handle -> principal key).

    ``handles`` is the node's own map of who holds which handle; it is shared, not copied,
    and counts are taken from it on each reservation, so whatever removes a handle from it
    gives the slot back. ``alive(handle)`` says whether the engine still has the
    subscription; handles it expired are forgotten when a limit is reached.
    """

    def __init__(
        self,
        settings: Settings,
        handles: dict[str, str],
        alive: Callable[[str], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_token = settings.limits_observe_per_token
        self.total = settings.limits_observe_total
        self.queue_per_token = settings.limits_observe_queue_per_token
        self.queue_total = settings.limits_observe_queue_total
        self.default_capacity = settings.storage_observe_capacity
        self.handles = handles
        self.capacity: dict[str, int] = {}  # handle (or reservation) -> its queue capacity
        self._alive = alive
        self._clock = clock
        self._next = itertools.count(1).__next__
        self._swept = -1.0e9  # when every handle was last checked with the engine

    def reserve(self, key: str, capacity: int | None) -> str:
        """Hold a slot for ``key`` before the engine subscribes; returns a reservation."""
        cap = self.default_capacity if capacity is None else capacity
        if cap > self.queue_per_token:
            raise InvalidInputError(
                f"capacity {cap} is above limits.observe_queue_per_token "
                f"({self.queue_per_token}), the most one token's queues may hold; ask for less",
                field="capacity",
                limit="limits.observe_queue_per_token",
                value=self.queue_per_token,
            )
        over = self._over(key, cap)
        if over is not None:
            # Forget handles the engine expired, then count again: the key's own handles
            # always, every handle at most once a second (a full node refusing a flood of
            # starts must not check all its handles for each of them).
            now = self._clock()
            everyone = over[0] in ("limits.observe_total", "limits.observe_queue_total")
            if everyone and now - self._swept >= 1.0:
                self._swept = now
                self._forget_dead(None)
            elif not everyone:
                self._forget_dead(key)
            over = self._over(key, cap)
        if over is not None:
            name, value, held = over
            raise LimitExceededError(
                f"observe limit reached: {name} is {value} and {held}; stop a handle or "
                "close a stream (or let an unpolled one expire), then retry",
                retry_after=1.0,
                limit=name,
                value=value,
            )
        ticket = f"{_PENDING}{self._next()}"
        self.handles[ticket] = key
        self.capacity[ticket] = cap
        return ticket

    def bind(self, ticket: str, handle: str) -> None:
        """The engine made subscription ``handle`` for the reservation ``ticket``."""
        key = self.handles.pop(ticket)
        self.handles[handle] = key
        self.capacity[handle] = self.capacity.pop(ticket)

    def release(self, handle: str) -> None:
        """``handle`` (or a reservation the engine refused) no longer holds a slot."""
        self.handles.pop(handle, None)
        self.capacity.pop(handle, None)

    def _over(self, key: str, cap: int) -> tuple[str, int, str] | None:
        mine = [h for h, k in self.handles.items() if k == key]
        if len(mine) + 1 > self.per_token:
            return "limits.observe_per_token", self.per_token, f"this token holds {len(mine)}"
        if len(self.handles) + 1 > self.total:
            return "limits.observe_total", self.total, f"the node holds {len(self.handles)}"
        queued = sum(self.capacity.get(h, self.default_capacity) for h in mine)
        if queued + cap > self.queue_per_token:
            return (
                "limits.observe_queue_per_token",
                self.queue_per_token,
                f"this token's queues hold up to {queued} atoms (this one asks for {cap})",
            )
        queued_all = sum(self.capacity.get(h, self.default_capacity) for h in self.handles)
        if queued_all + cap > self.queue_total:
            return (
                "limits.observe_queue_total",
                self.queue_total,
                f"the node's queues hold up to {queued_all} atoms (this one asks for {cap})",
            )
        return None

    def _forget_dead(self, key: str | None) -> None:
        for h, k in list(self.handles.items()):
            if (key is None or k == key) and not h.startswith(_PENDING) and not self._alive(h):
                self.release(h)
        for h in [h for h in self.capacity if h not in self.handles]:  # removed by others
            del self.capacity[h]
