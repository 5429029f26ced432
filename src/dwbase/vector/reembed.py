"""Vectors of older atoms re-embedded after an embedder change, kept so a reopen need not
make them again (a small SQLite file beside a SQLite store, memory otherwise)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

REEMBED_FILE = "vectors-reembedded.sqlite"
"""Beside a SQLite store: vectors of older atoms re-embedded after an embedder change."""


class ReembedCache:
    """Vectors made for old atoms by a later embedder, keyed by (embedder, seq).

    Atoms are immutable and seqs never reused, so an entry stays valid for that embedder.
    When the cache file cannot be opened, read or written, the vectors are kept in memory
    (the next open re-embeds them) and ``on_failure`` hears why: the engine logs, counts and
    reports it as the ``reembed`` background task.
    """

    def __init__(
        self,
        storage_path: str | None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._mem: dict[tuple[str, int], bytes] = {}
        self._db: Any = None
        self._on_failure = on_failure
        self.path: str | None = None
        if storage_path and storage_path != ":memory:" and os.path.isfile(storage_path):
            self.path = os.path.join(os.path.dirname(storage_path), REEMBED_FILE)
            try:
                import sqlite3
            except ImportError:  # no sqlite3 (WASI): memory is the only place there is
                return
            try:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS reembedded(embedder TEXT NOT NULL, "
                    "seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(embedder, seq)) "
                    "WITHOUT ROWID"
                )
            except Exception as exc:  # a read-only folder, a full disk, a broken file
                self._fall_back("cannot be opened", exc)

    def _fall_back(self, what: str, exc: BaseException) -> None:
        """Keep vectors in memory from now on (lock held or not needed) and report why."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()
        if self._on_failure is not None:
            self._on_failure(
                f"re-embedded vector cache {self.path} {what} ({type(exc).__name__}: {exc}); "
                "re-embedded vectors are kept in memory only and made again on the next open"
            )

    def get(self, embedder: str, seqs: Sequence[int]) -> dict[int, bytes]:
        with self._lock:
            out = {s: d for s in seqs if (d := self._mem.get((embedder, s))) is not None}
            if self._db is None:
                return out
            try:
                for i in range(0, len(seqs), 500):
                    chunk = list(seqs[i : i + 500])
                    marks = ",".join("?" * len(chunk))
                    for seq, data in self._db.execute(
                        f"SELECT seq, data FROM reembedded WHERE embedder=? AND seq IN ({marks})",
                        [embedder, *chunk],
                    ):
                        out[int(seq)] = bytes(data)
            except Exception as exc:
                self._fall_back("cannot be read", exc)
            return out

    def put(self, embedder: str, rows: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT OR REPLACE INTO reembedded(embedder, seq, data) VALUES(?, ?, ?)",
                        [(embedder, s, d) for s, d in rows],
                    )
                    self._db.execute("COMMIT")
                    return
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        self._db.execute("ROLLBACK")
                    self._fall_back("cannot be written", exc)
            self._mem.update(((embedder, s), d) for s, d in rows)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
