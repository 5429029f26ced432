"""health() reports what is true now: a store that cannot take writes, index state and lag."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import dwbase
from dwbase.embed import HashingEmbedder
from dwbase.errors import StorageError
from dwbase.storage import sqlite_health

from .conftest import FakeClock


def writer_connection(db: dwbase.Engine) -> sqlite3.Connection:
    """The store's own write connection (where a per-connection page cap must be set)."""
    conn = db.storage._writer  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    return conn


def fill_until_full(db: dwbase.Engine) -> StorageError:
    """Cap the store at its current size (PRAGMA max_page_count) and write until it refuses."""
    conn = writer_connection(db)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    for i in range(1000):
        try:
            db.remember("demo", "a", payload={"text": f"filler {i} " + "x" * 2000})
        except StorageError as exc:
            return exc
    raise AssertionError("the capped store never filled up")


def wait_for(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


# ------------------------------------------------------------------ storage_ok


def test_storage_is_not_ok_after_a_write_fails_because_the_store_is_full(
    sqlite_db: dwbase.Engine,
) -> None:
    db = sqlite_db
    assert db.health()["storage_ok"] is True
    exc = fill_until_full(db)
    assert "full" in str(exc)
    h = db.health()
    assert h["storage_ok"] is False
    assert h["status"] == "degraded"
    assert "database or disk is full" in h["message"]
    assert "database or disk is full" in h["last_write_error"]
    # Room again (the cap lifted): the next write succeeds and storage is ok again.
    writer_connection(db).execute("PRAGMA max_page_count=1073741823")
    db.remember("demo", "a", payload={"text": "fits again"})
    h = db.health()
    assert h["storage_ok"] is True and h["last_write_error"] is None


def test_a_write_failure_is_forgotten_after_the_hold_so_a_node_is_tried_again(
    sqlite_db: dwbase.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_until_full(sqlite_db)
    assert sqlite_db.health()["storage_ok"] is False
    monkeypatch.setattr(sqlite_health, "WRITE_FAILURE_HOLD_S", 0.0)
    h = sqlite_db.health()
    assert h["storage_ok"] is True  # nothing failed within the hold; a new write will tell
    assert "full" in h["last_write_error"]  # still shown to the operator


def test_storage_is_not_ok_when_free_disk_is_below_the_floor(
    sqlite_db: dwbase.Engine, tmp_path: Path
) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / (1024 * 1024)
    ok = sqlite_db.health(min_free_mb=1.0)
    assert ok["storage_ok"] is True
    low = sqlite_db.health(min_free_mb=free_mb + 1024)
    assert low["storage_ok"] is False and low["status"] == "degraded"
    assert "free" in low["message"] and "min_free_mb" in low["message"]


def test_an_in_memory_store_has_no_disk_floor_and_no_sync_lag() -> None:
    db = dwbase.open(":memory:")
    h = db.health()
    assert h["storage_ok"] is True
    assert "sync_lag_ms" not in h  # no swarm: the value does not exist, it is not 0
    db.close()


# ------------------------------------------------------------------ indexes


def test_index_freshness_is_the_age_of_the_oldest_vector_not_yet_in_the_index(
    sqlite_db: dwbase.Engine, clock: FakeClock
) -> None:
    db = sqlite_db
    db.remember("demo", "a", payload={"text": "first checkout note"})
    db.ask("demo", "checkout")  # loads the index
    assert db.health()["index_freshness_seconds"] == 0
    db.remember("demo", "a", payload={"text": "second checkout note"})
    clock.advance(42)
    db.remember("demo", "a", payload={"text": "third checkout note"})
    clock.advance(3)
    h = db.health()
    assert h["index_freshness_seconds"] == pytest.approx(45)
    assert h["index_ok"] is True  # lagging between asks is normal: the next ask catches up
    db.ask("demo", "checkout")
    assert db.health()["index_freshness_seconds"] == 0


class GatedEmbedder(HashingEmbedder):
    """A hashing embedder of its own identity that waits for a gate before embedding."""

    version = "gated-1"

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.gate.wait(5)
        return super().embed(texts)


def test_index_is_not_ok_while_a_rebuild_runs_and_its_lag_is_real(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "store")
    with dwbase.open(path, clock=clock) as db:
        for i in range(3):
            db.remember("demo", "a", payload={"text": f"note {i} about checkout"})
    clock.advance(30)
    gate = threading.Event()
    db = dwbase.open(path, clock=clock, embedder=GatedEmbedder(gate), reembed=True)
    try:
        h = db.health()
        assert h["index_ok"] is False and h["status"] == "degraded"
        assert "demo" in h["message"] and "rebuil" in h["message"]
        assert h["index_rebuild_lag_ms"] == pytest.approx(30_000)
        assert h["index_freshness_seconds"] == pytest.approx(30)
        gate.set()
        wait_for(lambda: db.index_status("demo")[0]["ready"])
        h = db.health()
        assert h["index_ok"] is True and h["index_rebuild_lag_ms"] == 0
        assert h["status"] == "ready"
    finally:
        gate.set()
        db.close()


class BrokenEmbedder(HashingEmbedder):
    version = "broken-1"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError("embedding service unreachable")


def test_a_failed_rebuild_is_logged_counted_and_makes_the_index_not_ok(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "store")
    with dwbase.open(path) as db:
        db.remember("demo", "a", payload={"text": "note about checkout"})
    with caplog.at_level("WARNING", logger="dwbase"):
        db = dwbase.open(path, embedder=BrokenEmbedder(), reembed=True)
        try:
            wait_for(lambda: db.health()["background_failures"]["index"]["failures"] >= 1)
            h = db.health()
            index = h["background_failures"]["index"]
            assert index["failing"] is True
            assert "embedding service unreachable" in index["last_error"]
            assert h["index_ok"] is False and h["status"] == "degraded"
            assert "index" in h["message"]
        finally:
            db.close()
    assert any(
        r.name.startswith("dwbase.") and "embedding service unreachable" in r.getMessage()
        for r in caplog.records
    )


def test_disk_used_percent_is_of_the_space_the_store_can_use_as_df_shows_it(
    sqlite_db: dwbase.Engine, tmp_path: Path
) -> None:
    # Blocks reserved for root (or held outside this filesystem's quota) are neither used nor
    # free to the store: a disk with 51 GB free of 106 GB usable is 52% full, not 20%.
    du = shutil.disk_usage(tmp_path)
    h = sqlite_db.health()
    assert h["disk_used_percent"] == pytest.approx(100 * du.used / (du.used + du.free), abs=0.5)
