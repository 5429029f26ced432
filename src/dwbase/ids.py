"""Time-ordered, collision-free atom ids (UUIDv7, RFC 9562).

48 bits of millisecond time, then a 12-bit + 62-bit field holding a per-process monotonic
counter seeded from ``os.urandom``. Ids made in one process sort in creation order even within
one millisecond; random bits keep ids from different processes and nodes apart.
"""

from __future__ import annotations

import os
import threading
import time


class IdGenerator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new_id(self, now_ms: int | None = None) -> str:
        with self._lock:
            ms = int(time.time() * 1000) if now_ms is None else now_ms
            if ms <= self._last_ms:
                # Same (or a backwards-moving) millisecond: keep order by counting on.
                ms = self._last_ms
                self._counter += 1
                if self._counter >= 1 << 74:
                    ms += 1
                    self._counter = int.from_bytes(os.urandom(9), "big") >> 1
            else:
                # Fresh millisecond: random start, top bit clear so the counter has headroom.
                self._counter = int.from_bytes(os.urandom(10), "big") >> 7
            self._last_ms = ms
            rand_a = (self._counter >> 62) & 0xFFF
            rand_b = self._counter & ((1 << 62) - 1)
            value = (ms & ((1 << 48) - 1)) << 80
            value |= 0x7 << 76
            value |= rand_a << 64
            value |= 0b10 << 62
            value |= rand_b
            h = f"{value:032x}"  # str(uuid.UUID(int=value)), without building the UUID
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_default = IdGenerator()


def new_id() -> str:
    return _default.new_id()
