"""Token-bucket rate limits, one bucket per (token, action). The clock is injected.

A bucket holds up to ``rate`` tokens (one second's worth, at least 1) and refills at
``rate`` per second. A request costing more than is left is refused with
:class:`~dwbase.errors.RateLimitedError`, whose ``retry_after`` says how long until it fits.

>>> t = [0.0]
>>> rl = RateLimiter(clock=lambda: t[0])
>>> rl.check("tok", "ask", rate=2)
>>> rl.check("tok", "ask", rate=2)
>>> try:
...     rl.check("tok", "ask", rate=2)
... except Exception as e:
...     (e.code, e.retry_after)
('rate_limited', 0.5)
>>> t[0] = 0.5
>>> rl.check("tok", "ask", rate=2)
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RateLimitedError


@dataclass(slots=True)
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float, cost: float) -> float:
        """Take ``cost`` tokens; returns 0 on success, else the seconds until it would fit."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """Per-key buckets; the least recently used are forgotten past ``max_buckets``."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._max = max_buckets

    def check(self, key: str, action: str, *, rate: float | None, cost: int = 1) -> None:
        """Spend ``cost`` from the bucket of ``(key, action)``; no-op when ``rate`` is None/0."""
        if not rate:
            return
        now = self._clock()
        capacity = max(1.0, float(rate))
        need = min(float(cost), capacity)  # a batch larger than a burst waits for a full bucket
        with self._lock:
            bucket = self._buckets.get((key, action))
            if bucket is None or bucket.rate != rate:
                bucket = TokenBucket(
                    rate=float(rate), capacity=capacity, tokens=capacity, updated=now
                )
                self._buckets[(key, action)] = bucket
                while len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end((key, action))
            wait = bucket.take(now, need)
        if wait > 0:
            raise RateLimitedError(
                f"{action} rate limit of {rate:g}/s reached; retry in {wait:.2f}s",
                retry_after=round(wait, 3),
                action=action,
                rate=rate,
            )


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: round up so a client never retries too early."""
    return str(max(1, math.ceil(seconds)))
