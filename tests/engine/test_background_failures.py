"""Background work that fails is logged, counted and reported in health, never swallowed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dwbase
from dwbase.engine import Engine
from dwbase.options import Options
from dwbase.storage import SQLiteStorage, sqlite_health
from dwbase.storage.sqlite import sqlite_path


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def logged(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> bool:
    return any(r.name == logger and text in r.getMessage() for r in caplog.records)


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def readers() -> Iterator[list[sqlite3.Connection]]:
    """Plain SQLite connections of a test, closed (their snapshots released) at its end."""
    conns: list[sqlite3.Connection] = []
    yield conns
    for conn in conns:
        conn.close()


def test_a_failing_scheduled_gc_is_logged_counted_and_reported(
    store_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with dwbase.open(store_path) as db:
        low = db.remember("demo", "a", payload={"text": "unimportant"}, importance=0.1)
        keep = db.remember("demo", "a", payload={"text": "important"}, importance=0.9)
        db.set_policy("demo", min_importance=0.5)
    storage = SQLiteStorage(sqlite_path(store_path))
    writer = storage._writer
    writer.execute("PRAGMA query_only=ON")  # the real store now refuses every write
    with caplog.at_level("WARNING", logger="dwbase"):
        db = Engine(storage, Options(gc_interval_s=0.05))
        try:
            wait_for(lambda: db.health()["background_failures"]["gc"]["failures"] >= 2)
            h = db.health()
            gc = h["background_failures"]["gc"]
            assert gc["failing"] is True
            assert "readonly" in gc["last_error"] and gc["last_failure"] is not None
            assert h["status"] == "degraded" and "gc" in h["message"]
            assert logged(caplog, "dwbase.maintenance", "readonly")
            # The store takes writes again: the next scheduled run succeeds and says so.
            writer.execute("PRAGMA query_only=OFF")
            wait_for(lambda: not db.health()["background_failures"]["gc"]["failing"])
            left = [a.id for a in db.replay("demo")]
            assert keep in left and low not in left  # that run did its work
            assert db.health()["background_failures"]["gc"]["failures"] >= 2  # counts stay
        finally:
            db.close()


def test_a_checkpoint_stuck_behind_a_reader_is_logged_counted_and_reported(
    store_path: str,
    readers: list[sqlite3.Connection],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sqlite_health, "STUCK_AFTER_S", 0.0)
    db = dwbase.open(store_path)
    try:
        db.remember("demo", "a", payload={"text": "before the reader"})
        reader = sqlite3.connect(sqlite_path(store_path), isolation_level=None)
        readers.append(reader)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM atoms").fetchone()  # holds this snapshot
        with caplog.at_level("WARNING", logger="dwbase"):
            for i in range(30):
                db.remember("demo", "a", payload={"text": f"after the reader {i}"})
            wait_for(lambda: db.health()["background_failures"]["checkpoint"]["failing"])
            # The checkpoint thread logs just after it marks the task failing.
            wait_for(lambda: logged(caplog, "dwbase.storage", "checkpoint"))
        h = db.health()
        ck = h["background_failures"]["checkpoint"]
        assert ck["failures"] >= 1
        assert "no progress" in ck["last_error"] and "reader" in ck["last_error"]
        assert h["status"] == "degraded" and "checkpoint" in h["message"]
        assert h["wal_bytes"] > 0
        reader.execute("COMMIT")
        reader.close()
        wait_for(lambda: not db.health()["background_failures"]["checkpoint"]["failing"])
        assert db.health()["status"] == "ready"
    finally:
        for r in readers:  # a snapshot left open would make close() wait
            r.close()
        db.close()


def test_a_wal_past_its_limit_gets_a_bounded_truncate_and_reports_when_that_fails(
    store_path: str, readers: list[sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_health, "STUCK_AFTER_S", 3600.0)
    monkeypatch.setattr(sqlite_health, "WAL_LIMIT_BYTES", 1)
    monkeypatch.setattr(sqlite_health, "FALLBACK_EVERY_S", 0.0)
    monkeypatch.setattr(sqlite_health, "FALLBACK_BUSY_S", 0.05)
    db = dwbase.open(store_path)
    try:
        db.remember("demo", "a", payload={"text": "before the reader"})
        reader = sqlite3.connect(sqlite_path(store_path), isolation_level=None)
        readers.append(reader)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM atoms").fetchone()
        for i in range(10):
            db.remember("demo", "a", payload={"text": f"after the reader {i}"})
        wait_for(lambda: db.health()["background_failures"]["checkpoint"]["failing"])
        assert "limit" in db.health()["background_failures"]["checkpoint"]["last_error"]
        reader.execute("COMMIT")
        reader.close()
        db.remember("demo", "a", payload={"text": "reader gone"})
        wait_for(lambda: not db.health()["background_failures"]["checkpoint"]["failing"])
        wait_for(lambda: db.health()["wal_bytes"] == 0)  # the fallback truncated the WAL
    finally:
        for r in readers:  # a snapshot left open would make close() wait
            r.close()
        db.close()


def test_a_reembed_cache_that_cannot_be_opened_is_logged_and_reported(
    store_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with dwbase.open(store_path) as db:
        db.remember("demo", "a", payload={"text": "x"})
    # A directory where the cache file belongs: SQLite cannot open it.
    cache = Path(store_path) / "vectors-reembedded.sqlite"
    cache.unlink()
    cache.mkdir()
    with caplog.at_level("WARNING", logger="dwbase"):
        db = dwbase.open(store_path)
    try:
        re = db.health()["background_failures"]["reembed"]
        assert re["failing"] is True and re["failures"] == 1
        assert "vectors-reembedded.sqlite" in re["last_error"]
        assert "memory" in re["last_error"]
        assert logged(caplog, "dwbase.indexes", "vectors-reembedded.sqlite")
    finally:
        db.close()


def test_every_background_task_is_reported_even_when_quiet() -> None:
    db = dwbase.open(":memory:")
    try:
        bg = db.health()["background_failures"]
        assert set(bg) == {"gc", "checkpoint", "reembed", "index", "observe"}
        assert all(v == {**v, "failures": 0, "failing": False} for v in bg.values())
        assert db.health()["status"] == "ready"
    finally:
        db.close()
