"""SQLite connections are pooled: short-lived reader threads leave no connection behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import dwbase
from dwbase.storage.sqlite import SQLiteStorage


def _open_store_files(path: Path) -> int:
    """File descriptors of this process open on the store's database file."""
    target = str(path / "dwbase.sqlite3")
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                n += 1
        except OSError:
            continue
    return n


def test_two_hundred_short_lived_reader_threads_leave_a_bounded_pool(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        aid = db.remember("demo", "a", "observation", {"text": "checkout latency 820ms"})
        # the background checkpoint opens its one connection at its first tick after a write
        store = db.storage
        assert isinstance(store, SQLiteStorage)
        deadline = time.monotonic() + 10
        while store.wal_watch.wal_frames == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.wal_watch.wal_frames > 0
        baseline = _open_store_files(tmp_path)

        def read() -> None:
            assert db.get(aid).id == aid
            assert db.ask("demo", "checkout").hits

        for _ in range(20):
            threads = [threading.Thread(target=read) for _ in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        grown = _open_store_files(tmp_path) - baseline
        # SQLiteStorage.READERS_IDLE idle readers, plus at most two descriptors SQLite keeps
        # open after closing a connection while another connection of the process held a
        # lock on the file (closing it would drop that lock); it reuses them for the next
        # connection, so they do not add up: a reader left behind per thread would be ~200.
        assert grown <= SQLiteStorage.READERS_IDLE + 2
    assert _open_store_files(tmp_path) == 0  # close releases every connection
