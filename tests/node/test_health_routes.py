"""/health, /readyz and /metrics tell the truth: a full store, background failures, lags."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient

from dwbase.engine import Engine

from .conftest import assert_error, new_atom


def cap_store(engine: Engine) -> sqlite3.Connection:
    conn = engine.storage._writer  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    return conn


def test_readyz_is_503_while_the_store_is_full_and_200_once_writes_work(
    http: TestClient, engine: Engine
) -> None:
    assert http.get("/readyz").status_code == 200
    conn = cap_store(engine)
    for i in range(1000):
        resp = http.post("/remember", json=new_atom(text=f"filler {i} " + "x" * 2000))
        if resp.status_code != 200:
            break
    assert_error(resp, 503, "unavailable")
    ready = http.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["storage_ok"] is False and "full" in body["message"]
    assert "full" in http.get("/health").json()["last_write_error"]
    assert http.get("/healthz").status_code == 200  # alive, not ready
    conn.execute("PRAGMA max_page_count=1073741823")
    assert http.post("/remember", json=new_atom()).status_code == 200
    assert http.get("/readyz").status_code == 200


def test_health_and_metrics_report_background_failures_and_no_sync_lag_without_a_swarm(
    http: TestClient,
) -> None:
    http.post("/remember", json=new_atom())
    h = http.get("/health").json()
    assert "sync_lag_ms" not in h
    assert set(h["background_failures"]) == {"gc", "checkpoint", "reembed", "index", "observe"}
    assert h["index_ok"] is True and h["index_rebuild_lag_ms"] == 0
    text = http.get("/metrics").text
    assert 'dwbase_background_failures_total{task="gc"} 0.0' in text
    assert 'dwbase_background_failures_total{task="checkpoint"} 0.0' in text
    assert "dwbase_index_freshness_seconds 0.0" in text
    assert "dwbase_sync_lag_seconds" not in text
    assert "dwbase_storage_write_failures_total 0.0" in text
    snap = http.get("/metrics/snapshot").json()
    assert "dwbase_sync_lag_seconds" not in snap
    spec = http.get("/openapi.json").json()["components"]["schemas"]["Health"]
    assert "sync_lag_ms" not in spec.get("required", [])
    assert "background_failures" in spec["properties"]
