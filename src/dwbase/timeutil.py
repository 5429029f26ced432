"""RFC 3339 time handling. Internally every instant is an int of microseconds since the epoch."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import InvalidInputError

Clock = Callable[[], float]
"""Returns seconds since the epoch, like :func:`time.time`; injected for tests."""

system_clock: Clock = time.time

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_instant(value: str, *, field: str = "timestamp") -> int:
    """Parse an RFC 3339 timestamp (any offset) into UTC microseconds.

    >>> parse_instant("2024-01-01T02:00:00+02:00") == parse_instant("2024-01-01T00:00:00Z")
    True
    """
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise InvalidInputError(
            f"{field} {value!r} is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z",
            field=field,
        )
    text = value.replace("z", "Z").replace("t", "T")
    frac = ""
    m = re.search(r"\.(\d+)", text)
    if m:
        frac = m.group(1)
        text = text.replace("." + frac, "", 1)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"{field} {value!r} is not a valid date: {exc}", field=field
        ) from exc
    micros = int((frac + "000000")[:6]) if frac else 0
    whole = int(dt.timestamp())
    return whole * 1_000_000 + micros


def format_instant(micros: int) -> str:
    """Format UTC microseconds as RFC 3339 with a ``Z`` suffix and microsecond precision."""
    seconds, us = divmod(micros, 1_000_000)
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{us:06d}Z"
    )


def now_micros(clock: Clock) -> int:
    return int(clock() * 1_000_000)
