"""Failures of background work, logged, counted and reported in health.

Background tasks (scheduled gc, vector index builds, the re-embedded vector cache, the
observe watcher that looks for other processes' atoms for waiting streams; the SQLite
WAL checkpointer keeps its own :class:`~dwbase.storage.sqlite_health.WalWatch`) report each
failed run with :meth:`BackgroundFailures.failed` and each good run with
:meth:`BackgroundFailures.recovered`. A task is *failing* from a failure until its next good
run; ``health()`` is degraded meanwhile and names the task and its last error. The failure
counts feed ``dwbase_background_failures_total{task}``.

A failure is logged at WARNING when the task starts failing and then at most once a minute
while it keeps failing (each run is still counted), and the recovery is logged at INFO.

>>> import logging
>>> bg = BackgroundFailures()
>>> bg.failed("gc", OSError("disk gone"), logging.getLogger("dwbase.doctest"))
>>> bg.snapshot()["gc"]["failing"], bg.snapshot()["gc"]["failures"]
(True, 1)
>>> bg.recovered("gc", logging.getLogger("dwbase.doctest"))
>>> bg.snapshot()["gc"]["failing"]
False
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .timeutil import format_instant

TASKS = ("gc", "checkpoint", "reembed", "index", "observe")
"""Every background task health reports (all of them, failing or not, so the shape is fixed)."""

LOG_EVERY_S = 60.0


def describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(slots=True)
class TaskState:
    failures: int = 0
    failing: bool = False
    last_error: str | None = None
    last_failure_s: float | None = None  # wall clock, seconds
    logged_s: float | None = None  # monotonic time of the last warning logged

    def to_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "failing": self.failing,
            "last_error": self.last_error,
            "last_failure": (
                format_instant(int(self.last_failure_s * 1_000_000))
                if self.last_failure_s is not None
                else None
            ),
        }


class BackgroundFailures:
    """Per-task failure counts and state of one engine's (or one store's) background work."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskState] = {}

    def failed(
        self,
        task: str,
        error: BaseException | str,
        logger: logging.Logger,
        *,
        where: str | None = None,
    ) -> None:
        """Count one failed run of ``task``, mark it failing and log it (rate-limited).

        ``where`` says what the run was doing (``"rebuild of world 'demo'"``).
        """
        text = describe(error) if where is None else f"{where}: {describe(error)}"
        now = self._monotonic()
        with self._lock:
            st = self._tasks.setdefault(task, TaskState())
            st.failures += 1
            starting = not st.failing
            st.failing = True
            st.last_error = text
            st.last_failure_s = self._clock()
            loud = starting or st.logged_s is None or now - st.logged_s >= LOG_EVERY_S
            if loud:
                st.logged_s = now
            count = st.failures
        if loud:
            logger.warning(
                "background task %s failed (%d failure(s) so far): %s",
                task,
                count,
                text,
                exc_info=error if isinstance(error, BaseException) else None,
            )
        else:
            logger.debug("background task %s failed again: %s", task, text)

    def recovered(self, task: str, logger: logging.Logger) -> None:
        """A run of ``task`` succeeded: it is no longer failing (its count stays)."""
        with self._lock:
            st = self._tasks.get(task)
            if st is None or not st.failing:
                return
            st.failing = False
            st.logged_s = None
        logger.info("background task %s works again", task)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: st.to_dict() for name, st in self._tasks.items()}


def merged(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every task of :data:`TASKS` (and any other reported), with zero counts where quiet."""
    out: dict[str, dict[str, Any]] = {name: TaskState().to_dict() for name in TASKS}
    for part in parts:
        out.update(part)
    return out
