"""Prometheus metrics of one node, and a JSON snapshot of the same numbers.

Histograms (``dwbase_remember_duration_seconds``, ``dwbase_ask_duration_seconds``,
``dwbase_http_request_duration_seconds``) are observed by the node around each engine call;
counters and gauges that the engine already keeps (atoms, quarantine, gc, observe queues,
disk) are read from it at scrape time, so the two views can never disagree.

>>> import dwbase
>>> m = NodeMetrics(dwbase.open(":memory:"))
>>> m.remember_seconds.observe(0.002)
>>> snap = m.snapshot()
>>> snap["dwbase_remember_duration_seconds"]["count"]
1.0
>>> b"dwbase_atoms_total" in m.render()
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .health import MIN_FREE_MB

if TYPE_CHECKING:
    from .engine import Engine
    from .swarm import Swarm

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# 0.25 ms .. 10 s: a remember on SQLite is ~0.1-1 ms, an ask over 10k atoms a few ms.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class _EngineCollector(Collector):
    """Reads the engine's own counters and gauges at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        engine = self._m.engine
        c = engine.counters
        yield CounterMetricFamily(
            "dwbase_atoms", "Atoms accepted by this node since it started", value=c.atoms_total
        )
        yield CounterMetricFamily(
            "dwbase_quarantine", "Writes held in quarantine", value=c.quarantine_total
        )
        yield CounterMetricFamily(
            "dwbase_gc_evictions", "Atoms removed by garbage collection", value=c.gc_evictions_total
        )
        yield CounterMetricFamily(
            "dwbase_observe_dropped",
            "Atoms dropped by full observe queues",
            value=engine.hub.dropped_total,
        )
        yield GaugeMetricFamily(
            "dwbase_observe_queue_depth",
            "Atoms waiting in observe queues",
            value=engine.hub.queue_depth(),
        )
        yield GaugeMetricFamily(
            "dwbase_observe_subscriptions", "Open observe subscriptions", value=len(engine.hub)
        )
        health = engine.health(
            warn_pct=self._m.disk_warn_pct,
            degraded_pct=self._m.disk_degraded_pct,
            min_free_mb=self._m.disk_min_free_mb,
        )
        yield GaugeMetricFamily(
            "dwbase_quarantined_atoms",
            "Atoms held in quarantine now",
            value=health["quarantine_count"],
        )
        yield GaugeMetricFamily(
            "dwbase_store_bytes", "Bytes used by the store", value=health["store_bytes"]
        )
        for key, name in (
            ("disk_used_bytes", "dwbase_disk_used_bytes"),
            ("disk_free_bytes", "dwbase_disk_free_bytes"),
            ("disk_total_bytes", "dwbase_disk_total_bytes"),
            ("disk_used_percent", "dwbase_disk_used_percent"),
        ):
            value = health[key]
            yield GaugeMetricFamily(
                name,
                f"Disk of the data directory: {key}",
                value=math.nan if value is None else value,
            )
        yield GaugeMetricFamily(
            "dwbase_storage_ok",
            "1 when the store can be read and written (readyz)",
            value=1 if health["storage_ok"] else 0,
        )
        yield CounterMetricFamily(
            "dwbase_storage_write_failures",
            "Writes that failed because the store could not take them (full, I/O, read-only)",
            value=health["storage_write_failures"],
        )
        if health["wal_bytes"] is not None:
            yield GaugeMetricFamily(
                "dwbase_wal_bytes", "Size of the SQLite write-ahead log", value=health["wal_bytes"]
            )
        failures = CounterMetricFamily(
            "dwbase_background_failures",
            "Failed runs of background work (gc, checkpoint, reembed, index)",
            labels=["task"],
        )
        for task, state in sorted(health["background_failures"].items()):
            failures.add_metric([task], state["failures"])
        yield failures
        yield GaugeMetricFamily(
            "dwbase_index_ok",
            "1 when no vector index is rebuilding or failed",
            value=1 if health["index_ok"] else 0,
        )
        yield GaugeMetricFamily(
            "dwbase_index_freshness_seconds",
            "Age of the oldest stored vector not yet in its index (0 when caught up)",
            value=health["index_freshness_seconds"],
        )
        yield GaugeMetricFamily(
            "dwbase_index_rebuild_lag_seconds",
            "Age of the oldest vector a running index rebuild has not reached (0: none)",
            value=health["index_rebuild_lag_ms"] / 1000,
        )
        swarm = self._m.swarm
        if swarm is not None:
            sh = swarm.health()
            health["sync_lag_ms"] = sh["sync_lag_ms"]
            dropped = CounterMetricFamily(
                "dwbase_replication_dropped",
                "Envelopes' atoms (or messages) from peers dropped, by reason",
                labels=["reason"],
            )
            for reason, count in sorted(sh["replication"]["dropped"].items()):
                dropped.add_metric([reason], count)
            yield dropped
            yield GaugeMetricFamily(
                "dwbase_replication_outbox",
                "Local atoms not yet published to the swarm",
                value=sh["replication"]["outbox"],
            )
            yield GaugeMetricFamily(
                "dwbase_replication_connected",
                "1 while the node is connected to NATS",
                value=1 if sh["replication"]["connected"] else 0,
            )
        if "sync_lag_ms" in health:  # absent without a swarm: no value rather than a fake 0
            yield GaugeMetricFamily(
                "dwbase_sync_lag_seconds",
                "Replication lag behind peers",
                value=health["sync_lag_ms"] / 1000,
            )
        sent, received = self._m.replication_sent, self._m.replication_received
        if swarm is not None:
            sent, received = swarm.stats.sent, swarm.stats.received
        yield CounterMetricFamily("dwbase_replication_sent", "Atoms sent to peers", value=sent)
        yield CounterMetricFamily(
            "dwbase_replication_received", "Atoms received from peers", value=received
        )


class NodeMetrics:
    """The metrics registry of one node (a registry per node, so tests do not share state)."""

    def __init__(
        self,
        engine: Engine,
        *,
        disk_warn_pct: float = 80.0,
        disk_degraded_pct: float = 90.0,
        disk_min_free_mb: float = MIN_FREE_MB,
    ) -> None:
        self.engine = engine
        self.disk_warn_pct = disk_warn_pct
        self.disk_degraded_pct = disk_degraded_pct
        self.disk_min_free_mb = disk_min_free_mb
        self.replication_sent = 0
        self.replication_received = 0
        self.swarm: Swarm | None = None  # the node's swarm, when [node.swarm] is enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.remember_seconds = Histogram(
            "dwbase_remember_duration_seconds",
            "Time to store a remember request (one atom or a batch)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ask_seconds = Histogram(
            "dwbase_ask_duration_seconds",
            "Time to answer an ask",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "dwbase_http_request_duration_seconds",
            "HTTP request time by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "dwbase_http_requests",
            "HTTP requests by route template and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "dwbase_rate_limited",
            "Requests refused by rate limits",
            ["action"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(self))

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The same numbers as :meth:`render`, as JSON-ready data.

        Counters and gauges without labels map to a number; labelled ones to a list of
        ``{"labels", "value"}``; histograms to ``count``, ``sum``, ``buckets`` (upper bound →
        cumulative count) and ``p50``/``p95``/``p99`` estimated from the buckets.
        """
        out: dict[str, Any] = {}
        for family in self.registry.collect():
            if family.type == "histogram":
                out.update(_histograms(family))
                continue
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if not samples:
                continue
            if len(samples) == 1 and not samples[0].labels:
                value = samples[0].value
                out[samples[0].name] = None if math.isnan(value) else value
            else:
                out[samples[0].name] = [
                    {"labels": dict(s.labels), "value": s.value} for s in samples
                ]
        return out


def _histograms(family: Metric) -> dict[str, Any]:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        g = groups.setdefault(labels, {"count": 0.0, "sum": 0.0, "buckets": {}})
        if s.name.endswith("_bucket"):
            g["buckets"][s.labels["le"]] = s.value
        elif s.name.endswith("_count"):
            g["count"] = s.value
        elif s.name.endswith("_sum"):
            g["sum"] = s.value
    for g in groups.values():
        for q in (0.5, 0.95, 0.99):
            g[f"p{round(q * 100)}"] = quantile(g["buckets"], g["count"], q)
    if list(groups) == [()]:
        return {family.name: groups[()]}
    return {family.name: [{"labels": dict(k), **v} for k, v in sorted(groups.items())]}


def quantile(buckets: dict[str, float], count: float, q: float) -> float | None:
    """Estimate a quantile from cumulative buckets (linear inside a bucket, like PromQL)."""
    if not count:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for le, cumulative in sorted(buckets.items(), key=lambda kv: float(kv[0])):
        upper = float(le)
        if cumulative >= rank:
            if math.isinf(upper):
                return lower
            width = cumulative - below
            frac = (rank - below) / width if width else 1.0
            return lower + (upper - lower) * frac
        lower, below = upper, cumulative
    return lower
