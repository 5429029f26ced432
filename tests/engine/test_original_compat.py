"""Where the original DWBase's reading of a value costs nothing in safety, DWBase follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

import dwbase
from dwbase.ids import new_id

from .conftest import FakeClock

DAY = 86_400.0


def test_retention_days_zero_means_no_expiry_as_in_the_original(
    db: dwbase.Engine, clock: FakeClock
) -> None:
    old = db.remember("demo", "agent", payload={"text": "old"}, timestamp="2020-01-01T00:00:00Z")
    now = db.remember("demo", "agent", payload={"text": "now"})
    db.set_policy("demo", retention_days=0)
    clock.advance(400 * DAY)
    report = db.gc()
    assert report.evicted == 0
    assert {old, now} <= {a.id for a in db.replay("demo")}
    assert db.policy("demo").effective_retention_days is None


def test_retention_days_zero_label_with_a_floor_still_expires_nothing(db: dwbase.Engine) -> None:
    old = db.remember("demo", "agent", payload={"text": "old"}, timestamp="2020-01-01T00:00:00Z")
    db.set_policy("policy:demo", retention_min_days=30)
    db.remember("demo", "agent", payload={}, labels=["policy:retention_days=0"])
    assert db.gc().evicted == 0
    assert old in {a.id for a in db.replay("demo")}


def _atom(timestamp: str) -> dict[str, object]:
    return {
        "id": new_id(),
        "world": "demo",
        "worker": "agent",
        "kind": "observation",
        "timestamp": timestamp,
        "importance": 0.5,
        "payload": {"text": "seen, not stored"},
    }


def test_observe_takes_an_empty_timestamp_as_now_like_remember(
    db: dwbase.Engine, clock: FakeClock
) -> None:
    handle = db.observe_start("demo")
    assert db.observe(_atom("")) == 1
    (seen,) = db.observe_poll(handle)
    assert seen.timestamp == "2026-01-01T00:00:00.000000Z"
    assert db.replay("demo") == []  # published, not stored
    # remember takes "" the same way
    aid = db.remember("demo", "agent", payload={}, timestamp="")
    assert db.get(aid).timestamp == "2026-01-01T00:00:00.000000Z"


def test_observe_still_refuses_a_timestamp_that_is_not_an_instant(db: dwbase.Engine) -> None:
    with pytest.raises(dwbase.InvalidInputError, match="timestamp"):
        db.observe(_atom("yesterday"))


def test_health_serves_the_originals_disk_usage_object_next_to_the_flat_fields(
    sqlite_db: dwbase.Engine,
) -> None:
    h = sqlite_db.health()
    usage = h["disk_usage"]
    assert set(usage) == {"used_bytes", "total_bytes", "percent_used"}
    assert usage["used_bytes"] == h["disk_used_bytes"] > 0
    assert usage["total_bytes"] == h["disk_total_bytes"] >= usage["used_bytes"]
    assert usage["percent_used"] == h["disk_used_percent"]


def test_health_disk_usage_is_null_when_the_disk_is_unknown() -> None:
    with dwbase.open(":memory:") as db:
        h = db.health()
    assert h["disk_usage"] is None and h["disk_pressure"] == "unknown"


def test_a_disk_budget_counts_toward_disk_pressure(tmp_path: Path) -> None:
    # A budget of 1 MiB: the store alone (schema, WAL) soon fills most of it.
    with dwbase.open(str(tmp_path / "store"), max_disk_mb=1) as db:
        for i in range(300):
            db.remember("demo", "agent", payload={"text": f"filler {i} " + "x" * 2000})
        h = db.health(warn_pct=99.0, degraded_pct=99.5)
        assert h["disk_budget_bytes"] == 1024 * 1024
        assert h["disk_budget_used_percent"] >= 100.0
        assert h["disk_pressure"] == "degraded" and h["status"] == "degraded"
        assert "disk budget" in h["message"] and "max_disk_mb" in h["message"]
    with dwbase.open(str(tmp_path / "store")) as db:  # no budget: the filesystem alone
        h = db.health(warn_pct=99.0, degraded_pct=99.5)
        assert h["disk_budget_bytes"] is None and h["disk_budget_used_percent"] is None
        assert "disk budget" not in h["message"]
