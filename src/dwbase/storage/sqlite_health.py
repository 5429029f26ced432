"""What the SQLite store knows about its own health: failed writes and the WAL checkpointer.

**Writes.** :class:`WriteState` remembers the last write that failed because the store cannot
take writes (``SQLITE_FULL`` "database or disk is full", I/O errors, a read-only or corrupt
file; not lock contention or a constraint). ``health()`` reports ``storage_ok: false`` from
that failure until a write succeeds, or for :data:`WRITE_FAILURE_HOLD_S` seconds without
writes, so a node taken out of rotation by its failing ``/readyz`` is tried again.

**Checkpoints.** The store turns SQLite's automatic checkpoints off and copies the WAL into the
database from a background thread (``SQLiteStorage._checkpoint_loop``), which hands each
attempt to :class:`WalWatch`. A PASSIVE checkpoint never waits, so a reader holding an old
snapshot (a long read transaction, a backup, a stuck process) stops it from finishing and the
WAL grows without bound. The watch counts as a failure an SQLite error, a checkpoint that has
made no progress for :data:`STUCK_AFTER_S` seconds, and a WAL past :data:`WAL_LIMIT_BYTES`
that a bounded ``TRUNCATE`` checkpoint (the fallback: it waits at most
:data:`FALLBACK_BUSY_S` for readers, at most every :data:`FALLBACK_EVERY_S`) could not
empty either (a WAL file past the limit is also truncated after a complete checkpoint: SQLite
reuses the file but never shrinks it). Each is logged to ``dwbase.storage``, counted in
``dwbase_background_failures_total{task="checkpoint"}`` and shown in ``health()``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from ..background import BackgroundFailures

log = logging.getLogger("dwbase.storage")

WRITE_FAILURE_HOLD_S = 10.0
# sqlite3 error names (Python 3.11+) meaning "this store cannot take writes now".
_CANNOT_WRITE = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_CANTOPEN",
)

STUCK_AFTER_S = 30.0
WAL_LIMIT_BYTES = 64 * 1024 * 1024
FALLBACK_BUSY_S = 0.2
FALLBACK_EVERY_S = 5.0
_MIB = 1024 * 1024


class WriteState:
    """The store's last write failure that means it cannot take writes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.error: str | None = None
        self._at: float | None = None  # monotonic

    def failed(self, exc: sqlite3.Error) -> None:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if not name.startswith(_CANNOT_WRITE):
            return  # busy, locked, constraint: the store itself can still take writes
        with self._lock:
            self.failures += 1
            first = self.error is None
            self.error = f"{exc} ({name})"
            self._at = time.monotonic()
        if first:
            log.warning("a write to the store failed: %s", self.error)

    def succeeded(self) -> None:
        if self.error is None:  # the common case, without the lock
            return
        with self._lock:
            was, self.error, self._at = self.error, None, None
        if was is not None:
            log.info("writes to the store work again (last failure: %s)", was)

    def problem(self) -> str | None:
        """The failure that makes the store not writable now, or ``None``."""
        with self._lock:
            if self.error is None or self._at is None:
                return None
            if time.monotonic() - self._at >= WRITE_FAILURE_HOLD_S:
                return None
            return self.error


class WalWatch:
    """Checkpoint attempts of one store: progress, WAL size, failures."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.failures = BackgroundFailures()
        self.wal_frames = 0  # frames in the WAL at the last attempt
        self.checkpointed = 0  # of which copied into the database
        self._page_size = 0
        # Since when checkpoints have been incomplete without copying anything (None: they
        # finish, or the last one made progress).
        self._stalled_since: float | None = None
        self._fallback_at = 0.0

    def wal_bytes(self) -> int | None:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return None

    def failed(self, exc: BaseException | str) -> None:
        self.failures.failed("checkpoint", exc, log)

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One PASSIVE checkpoint (and the fallback when due); True while frames remain.

        Raises ``sqlite3.Error`` as SQLite does; the caller counts it with :meth:`failed`.
        """
        if not self._page_size:
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        _, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        now = time.monotonic()
        complete = frames <= 0 or done >= frames
        if self._stalled_since is None or done > self.checkpointed or frames < self.wal_frames:
            self._stalled_since = now  # first incomplete one, copied more, or WAL restarted
        self.wal_frames, self.checkpointed = frames, done
        size = self.wal_bytes() or 0
        if size > WAL_LIMIT_BYTES and now - self._fallback_at >= FALLBACK_EVERY_S:
            # Also after a complete checkpoint: SQLite reuses a WAL file but never shrinks it.
            self._fallback_at = now
            if self._truncate(conn):
                self._finished(0)
                return False
            if not complete:
                self.failed(
                    f"the WAL holds {size / _MIB:.1f} MiB (limit {WAL_LIMIT_BYTES / _MIB:g} MiB) "
                    f"and a TRUNCATE checkpoint could not finish within {FALLBACK_BUSY_S:g}s: a "
                    "reader holds an old snapshot (a long read transaction, a backup, a stuck "
                    "process)"
                )
                return True
        if complete:
            self._finished(frames)
            return False
        if now - self._stalled_since >= STUCK_AFTER_S:
            pending = (frames - done) * (self._page_size + 24)
            self.failed(
                f"the WAL checkpoint has made no progress for {now - self._stalled_since:.1f}s "
                f"({done} of {frames} frames copied, {pending / _MIB:.1f} MiB waiting): a reader "
                "holds an old snapshot (a long read transaction, a backup, a stuck process)"
            )
        return True

    def _truncate(self, conn: sqlite3.Connection) -> bool:
        """The bounded fallback: wait briefly for readers, copy everything, empty the WAL."""
        (timeout_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
        conn.execute(f"PRAGMA busy_timeout={int(FALLBACK_BUSY_S * 1000)}")
        try:
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
        if not busy and done >= frames:
            log.info("WAL over %g MiB emptied by a TRUNCATE checkpoint", WAL_LIMIT_BYTES / _MIB)
            return True
        return False

    def _finished(self, frames: int) -> None:
        self.wal_frames = self.checkpointed = frames
        self._stalled_since = None
        self.failures.recovered("checkpoint", log)
