"""Quarantine: suspicious writes are held in ``quarantine:<world>`` instead of their world.

Three rules, each configurable:

* **burst** — one worker writing more than ``burst_count`` atoms to a world within
  ``burst_window_s`` seconds; the atoms past the limit are held. Off by default in the
  embedded library (a bulk import by its owner is not spam); a node enables it in config.
* **impossible numbers** — a payload holding a non-finite *number*: ``NaN``, ``Infinity`` or
  ``-Infinity`` written as JSON numbers (Python's ``json`` accepts them), a number too large
  for a float (``1e999``), or ``float("nan")`` in a ``payload`` mapping. Text is never a
  number: "loss became NaN at step 1200", ``{"loss": "NaN"}`` and "accuracy went to inf"
  are ordinary prose and are stored in their world.
* **low trust** — a worker whose trust is below ``low_trust`` writing with importance above
  ``low_trust_importance``.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .timeutil import Clock


@dataclass(frozen=True, slots=True)
class QuarantineConfig:
    enabled: bool = True
    burst_count: int | None = None
    burst_window_s: float = 1.0
    low_trust: float = 0.2
    low_trust_importance: float = 0.8


def has_impossible_number(value: Any) -> bool:
    """Whether a parsed payload holds a non-finite number anywhere in its structure.

    Strings and keys never count. Payloads reach this check already bounded in depth
    (``dwbase.model.MAX_PAYLOAD_DEPTH``), so the recursion is shallow.
    """
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(has_impossible_number(v) for v in value.values())
    if isinstance(value, list):
        return any(has_impossible_number(v) for v in value)
    return False


class Quarantine:
    def __init__(self, config: QuarantineConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], deque[float]] = {}

    def reason(
        self,
        *,
        world: str,
        worker: str,
        importance: float,
        payload: Any,
        trust: float,
        burst: bool = True,
    ) -> str | None:
        """Why this write should be held, or ``None`` to store it normally.

        ``burst=False`` leaves out the burst rule: for atoms from a peer, whose catch-up
        brings a worker's atoms of many seconds at once (the origin applied the rule)."""
        cfg = self.config
        if not cfg.enabled:
            return None
        if has_impossible_number(payload):
            return "impossible_number"
        if trust < cfg.low_trust and importance > cfg.low_trust_importance:
            return "low_trust"
        if cfg.burst_count is None or not burst:
            return None
        now = self._clock()
        with self._lock:
            q = self._recent.setdefault((world, worker), deque())
            while q and now - q[0] > cfg.burst_window_s:
                q.popleft()
            q.append(now)
            if len(self._recent) > 10_000:
                # Forget idle writers so the table cannot grow without bound.
                for key in [k for k, v in self._recent.items() if now - v[-1] > cfg.burst_window_s]:
                    del self._recent[key]
            if len(q) > cfg.burst_count:
                return "burst"
        return None
