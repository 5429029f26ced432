"""Operator health: what is true of one engine's store, indexes and background work.

:func:`engine_health` builds the body of ``Engine.health()``, ``GET /health`` and ``/readyz``:

* ``storage_ok`` — the store can be read *and written* now: it is open and answers, free disk
  on its directory is at least ``min_free_mb``, and no write failed for want of space or a
  writable file since the last good write (see :mod:`dwbase.storage.sqlite_health`).
  ``/readyz`` is 503 while it is false.
* ``index_ok`` — no vector index is being rebuilt or failed its last build.
* ``index_rebuild_lag_ms`` / ``index_freshness_seconds`` — ages of the oldest stored vectors
  not yet in their index (see :meth:`dwbase.indexes.IndexManager.health`); 0 when caught up.
* ``background_failures`` — per background task, failures so far and whether it is failing.
* ``disk_used_bytes`` / ``disk_free_bytes`` / ``disk_total_bytes`` / ``disk_used_percent`` — the
  filesystem holding the store, also served as the original DWBase node's ``disk_usage``
  object ``{used_bytes, total_bytes, percent_used}`` (null when unknown, e.g. in memory).
* ``disk_budget_bytes`` / ``disk_budget_used_percent`` — with a disk budget
  (``max_disk_mb``), the store's bytes against it, as in the original component.
  ``disk_pressure`` is the higher of the filesystem's and the budget's percentages, judged
  against the warn and degraded percentages.
* ``sync_lag_ms`` is absent here: an engine has no swarm. A node whose swarm is on adds it
  and ``replication`` (:func:`dwbase.node.swarm.swarm_health`); without one it stays absent
  rather than a fake 0.

``status`` is ``ready`` only when storage and indexes are ok, the disk is below the degraded
percentage and no background task is failing; ``message`` names every problem.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from .background import BackgroundFailures, merged

if TYPE_CHECKING:
    from .indexes import IndexManager
    from .storage.base import Storage

MIN_FREE_MB = 16.0
"""Default floor of free disk below which writes are not trusted to succeed."""

_MIB = 1024 * 1024


def engine_health(
    *,
    storage: Storage,
    indexes: IndexManager,
    background: BackgroundFailures,
    closed: bool,
    disk_path: str | None,
    warn_pct: float,
    degraded_pct: float,
    min_free_mb: float,
    max_disk_mb: float | None = None,
) -> dict[str, Any]:
    problems: list[str] = []
    storage_ok = not closed
    quarantined = 0
    store_bytes = 0
    if closed:
        problems.append("store is closed")
    else:
        try:
            storage.max_seq()
            quarantined = storage.count(quarantined=True)
            store_bytes = storage.used_bytes()
        except Exception as exc:  # any storage fault means "not usable"
            storage_ok = False
            problems.append(f"storage unusable: {exc}")

    write_state = getattr(storage, "write_state", None)
    last_write_error: str | None = getattr(write_state, "error", None)
    write_failures = int(getattr(write_state, "failures", 0))
    failing_write = write_state.problem() if write_state is not None else None
    if failing_write is not None:
        storage_ok = False
        problems.append(f"writes fail: {failing_write}")

    disk = _disk(storage, disk_path)
    free = disk["disk_free_bytes"]
    if free is not None and free < min_free_mb * _MIB:
        storage_ok = False
        problems.append(
            f"disk nearly full: {free / _MIB:.1f} MiB free, writes need at least "
            f"{min_free_mb:g} MiB (health.min_free_mb)"
        )
    percent = disk["disk_used_percent"]
    budget_bytes = int(max_disk_mb * _MIB) if max_disk_mb else None
    budget_pct = round(100.0 * store_bytes / budget_bytes, 2) if budget_bytes else None
    pressure = "unknown"
    levels = [p for p in (percent, budget_pct) if p is not None]
    if levels:
        pressure = "ok"
        if max(levels) >= degraded_pct:
            pressure = "degraded"
        elif max(levels) >= warn_pct:
            pressure = "warn"
    if percent is not None and percent >= degraded_pct:
        problems.append(f"disk {percent:.1f}% used (degraded at {degraded_pct:g}%)")
    if budget_pct is not None and budget_pct >= degraded_pct:
        problems.append(
            f"disk budget {budget_pct:.1f}% used: the store holds {store_bytes / _MIB:.1f} MiB "
            f"of {max_disk_mb:g} MiB (storage.max_disk_mb; gc evicts down to it, degraded at "
            f"{degraded_pct:g}%)"
        )

    index: dict[str, Any] = {"problems": [], "lag_us": 0, "rebuild_lag_us": 0}
    if not closed:
        try:
            index = indexes.health()
        except Exception as exc:
            index["problems"] = [f"vector index state unknown: {exc}"]
    problems.extend(index["problems"])
    index_ok = not index["problems"]

    wal = getattr(storage, "wal_watch", None)
    bg = merged(
        background.snapshot(),
        wal.failures.snapshot() if wal is not None else {},
    )
    for task, state in bg.items():
        if state["failing"]:
            problems.append(f"background task {task} is failing: {state['last_error']}")

    ready = storage_ok and index_ok and pressure != "degraded"
    ready = ready and not any(state["failing"] for state in bg.values())
    return {
        "status": "ready" if ready else "degraded",
        "message": "; ".join(problems) if problems else "ok",
        "storage_ok": storage_ok,
        "index_ok": index_ok,
        **disk,
        # The original DWBase node's shape of the same figures (null when unknown).
        "disk_usage": (
            {
                "used_bytes": disk["disk_used_bytes"],
                "total_bytes": disk["disk_total_bytes"],
                "percent_used": percent,
            }
            if percent is not None
            else None
        ),
        "disk_budget_bytes": budget_bytes,
        "disk_budget_used_percent": budget_pct,
        "disk_pressure": pressure,
        "disk_min_free_bytes": int(min_free_mb * _MIB),
        "store_bytes": store_bytes,
        "wal_bytes": wal.wal_bytes() if wal is not None else None,
        "last_write_error": last_write_error,
        "storage_write_failures": write_failures,
        "quarantine_count": quarantined,
        "index_rebuild_lag_ms": index["rebuild_lag_us"] / 1000,
        "index_freshness_seconds": index["lag_us"] / 1_000_000,
        "background_failures": bg,
    }


def _disk(storage: Storage, disk_path: str | None) -> dict[str, Any]:
    path = disk_path
    if path is None:
        db_path = getattr(storage, "path", None)
        if isinstance(db_path, str) and db_path != ":memory:":
            path = os.path.dirname(os.path.abspath(db_path))
    out: dict[str, Any] = {
        "disk_used_bytes": None,
        "disk_free_bytes": None,
        "disk_total_bytes": None,
        "disk_used_percent": None,
    }
    # WASI (the component) has no statvfs, so no shutil.disk_usage: the disk is unknown there.
    if path is None or not hasattr(shutil, "disk_usage"):
        return out
    try:
        du = shutil.disk_usage(path)
    except OSError:
        return out
    out["disk_used_bytes"], out["disk_free_bytes"], out["disk_total_bytes"] = (
        du.used,
        du.free,
        du.total,
    )
    # Of the space the store can use, as df shows it: blocks reserved for root (or outside a
    # quota) are neither used nor free to it, so used / total would understate the pressure.
    usable = du.used + du.free
    out["disk_used_percent"] = round(100.0 * du.used / usable, 2) if usable else None
    return out
