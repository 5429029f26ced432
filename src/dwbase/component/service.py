"""What every WIT function does, on plain dicts shaped like the WIT records (snake_case keys).

The guest glue (:mod:`dwbase.component.guest`) only converts WIT records to and from these
dicts; everything else lives here, where CPython tests reach it too. :meth:`Service.v2` runs a
function and raises :class:`ToolFailure` with a stable code; :meth:`Service.v1` runs the same
function and returns the function's documented empty value on any failure, so v1 never traps.

The store is a :class:`~dwbase.storage.log.LogStorage` in ``DWBASE_DATA_DIR``, opened on the
first call (the component is pre-initialised at build time, before any directory exists).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..engine import Engine
from ..errors import DWBaseError, InvalidInputError
from ..model import Atom, AtomFilter
from ..options import Options
from ..security.caps import Caller
from ..storage.log import LogStorage
from .config import PROTECTED_LABELS, ComponentConfig

log = logging.getLogger("dwbase.component")

Plain = dict[str, Any]

# The stable v2 codes; any other engine code is reported as one of these.
CODES = (
    "capability_denied",
    "payload_too_large",
    "importance_cap",
    "kind_not_allowed",
    "label_not_allowed",
    "invalid_input",
    "invalid_handle",
    "storage_error",
    "internal_error",
)
_CODE_OF = {
    "capability_denied": "capability_denied",
    "payload_too_large": "payload_too_large",
    "invalid_input": "invalid_input",
    "not_found": "invalid_input",
    "limit_exceeded": "invalid_input",
    "rate_limited": "invalid_input",
    "conflict": "storage_error",
    "invalid_handle": "invalid_handle",
    "storage_error": "storage_error",
    "encryption_key": "storage_error",
    "unavailable": "storage_error",
}

EMPTY_HEALTH: Plain = {
    "status": "degraded",
    "message": "",
    "storage_ok": False,
    "index_ok": False,
    "disk_used_bytes": None,
    "disk_free_bytes": None,
    "disk_total_bytes": None,
    "disk_used_percent": None,
    "disk_pressure": "unknown",
    "store_bytes": 0,
    "disk_budget_bytes": None,
    "sync_lag_ms": None,
    "quarantine_count": 0,
    "index_rebuild_lag_ms": 0,
}


def empty_stats(handle: str) -> Plain:
    return {
        "handle": handle,
        "queued_count": 0,
        "dropped_count": 0,
        "last_event_ms": None,
        "warnings": [],
    }


class ToolFailure(Exception):
    """A v2 failure: ``code`` is one of :data:`CODES`."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code if code in CODES else "internal_error"
        self.message = message
        self.details = dict(details or {})

    def to_plain(self) -> Plain:
        return {
            "code": self.code,
            "message": self.message,
            "details_json": json.dumps(self.details, default=str, allow_nan=False),
        }


def failure(exc: BaseException) -> ToolFailure:
    """Any exception as a :class:`ToolFailure`: engine errors keep their meaning."""
    if isinstance(exc, ToolFailure):
        return exc
    if isinstance(exc, DWBaseError):
        code = _CODE_OF.get(exc.code, "internal_error")
        return ToolFailure(code, exc.message, _jsonable(exc.details))
    if isinstance(exc, OSError):  # the data directory: missing, read-only, full
        return ToolFailure("storage_error", f"storage failed: {exc}", {"errno": exc.errno})
    log.exception("component call failed")
    return ToolFailure("internal_error", f"internal error: {type(exc).__name__}: {exc}")


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in details.items():
        out[str(k)] = v if isinstance(v, str | int | bool | None) else str(v)
    return out


def _atom(a: Atom) -> Plain:
    return a.to_dict()


class Service:
    """The component's state: configuration, the engine (opened on first use), metrics."""

    def __init__(self, env: Mapping[str, str], *, options: Options | None = None) -> None:
        self._env = dict(env)
        self._options = options
        self._config: ComponentConfig | None = None
        self._engine: Engine | None = None
        self.counters: dict[str, float] = {}
        self.histograms: dict[str, tuple[int, float]] = {}

    # ------------------------------------------------------------------ set-up

    @property
    def config(self) -> ComponentConfig:
        if self._config is None:
            self._config = ComponentConfig.from_env(self._env)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            cfg = self.config
            options = self._options or Options(
                max_payload_bytes=max(cfg.max_payload_bytes, 1),
                observe_capacity=cfg.observe_queue_capacity,
                max_disk_mb=cfg.max_disk_mb,
            )
            self._engine = Engine(LogStorage(cfg.data_dir), options)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def caller(self) -> Caller:
        cfg = self.config
        scope = (cfg.namespace + "*",) if cfg.enforce_tenant_namespace else ("*",)
        return Caller(worker=cfg.worker_id, read=scope, write=scope, name="component caller")

    # ------------------------------------------------------------------ checks

    def _allowed(self, world: str, *, write: bool) -> None:
        cfg = self.config
        if not isinstance(world, str) or not world:
            raise ToolFailure("invalid_input", "world must be a non-empty string", {})
        if cfg.enforce_tenant_namespace and not world.startswith(cfg.namespace):
            raise ToolFailure(
                "capability_denied",
                f"world {world!r} is outside this tenant's namespace {cfg.namespace!r}",
                {"world": world, "namespace": cfg.namespace},
            )
        worlds = cfg.allow_write_worlds if write else cfg.allow_read_worlds
        prefixes = cfg.allow_write_prefixes if write else cfg.allow_read_prefixes
        if (worlds or prefixes) and not (
            world in worlds or any(world.startswith(p) for p in prefixes)
        ):
            verb = "write" if write else "read"
            raise ToolFailure(
                "capability_denied",
                f"world {world!r} is not among the worlds this component may {verb}",
                {"world": world},
            )

    def _check_new_atom(self, new: Mapping[str, Any]) -> None:
        cfg = self.config
        self._allowed(new.get("world", ""), write=True)
        payload = new.get("payload_json", "")
        size = len(payload.encode("utf-8", "surrogatepass")) if isinstance(payload, str) else 0
        if size > cfg.max_payload_bytes:
            raise ToolFailure(
                "payload_too_large",
                f"payload is {size} bytes, the limit is {cfg.max_payload_bytes}",
                {"size": size, "limit": cfg.max_payload_bytes},
            )
        importance = new.get("importance")
        # Out of range or NaN is the engine's invalid_input; in range but too high is the cap.
        if isinstance(importance, float | int) and cfg.importance_cap < importance <= 1.0:
            raise ToolFailure(
                "importance_cap",
                f"importance {importance} is above the cap {cfg.importance_cap}",
                {"importance": importance, "cap": cfg.importance_cap},
            )
        kind = new.get("kind")
        if cfg.allowed_kinds and kind not in cfg.allowed_kinds:
            raise ToolFailure(
                "kind_not_allowed",
                f"kind {kind!r} is not allowed; allowed: {', '.join(cfg.allowed_kinds)}",
                {"kind": str(kind), "allowed": ",".join(cfg.allowed_kinds)},
            )
        for label in new.get("labels") or ():
            if not cfg.allow_policy_labels and str(label).startswith(PROTECTED_LABELS):
                raise ToolFailure(
                    "label_not_allowed",
                    f"label {label!r} needs DWBASE_ALLOW_POLICY_LABELS=true",
                    {"label": str(label)},
                )
            if cfg.allowed_labels is not None and label not in cfg.allowed_labels:
                raise ToolFailure(
                    "label_not_allowed",
                    f"label {label!r} is not allowed; allowed: {', '.join(cfg.allowed_labels)}",
                    {"label": str(label)},
                )

    # ------------------------------------------------------------------ the functions

    def remember(self, new: Plain) -> str:
        self._check_new_atom(new)
        data = dict(new)
        data["worker"] = data.get("worker") or self.config.worker_id
        if data.get("vector") is None:
            data.pop("vector", None)
        with self._timed("dwbase_remember_duration_seconds"):
            aid = str(self.engine.remember_atom(data, caller=self.caller))
        self._keep_disk_budget()
        return aid

    def _keep_disk_budget(self) -> None:
        # Nothing runs gc on a schedule in the component (it has no threads to spare): a
        # remember that takes the store past DWBASE_MAX_DISK_MB evicts the least valuable atoms.
        budget = self.config.max_disk_mb
        engine = self.engine
        if budget is not None and engine.storage.used_bytes() > budget * 1024 * 1024:
            report = engine.gc()
            log.info("disk budget of %s MB: gc evicted %d atoms", budget, report.evicted)

    def ask(self, question: Plain) -> Plain:
        world = question.get("world", "")
        self._allowed(world, write=False)
        filt = self._filter(question.get("filter"), world)
        limit = question.get("limit")
        with self._timed("dwbase_ask_duration_seconds"):
            ans = self.engine.ask(
                world,
                str(question.get("text", "")),
                filter=filt,
                limit=int(limit) if limit is not None else 10,
                as_of=question.get("as_of") or None,
                caller=self.caller,
            )
        return {
            "world": ans.world,
            "text": ans.text,
            "supporting_atoms": [_atom(a) for a in ans.supporting_atoms],
            "warnings": list(ans.warnings),
        }

    def observe(self, atom: Plain) -> int:
        self._allowed(atom.get("world", ""), write=True)
        return self.engine.observe(atom, caller=self.caller)

    def replay(self, world: str, filt: Plain) -> list[Plain]:
        self._allowed(world, write=False)
        rows = self.engine.replay(world, filter=self._filter(filt, world), caller=self.caller)
        return [_atom(a) for a in rows]

    def observe_start(self, filt: Plain) -> str:
        world = filt.get("world")
        if not world:
            raise ToolFailure("invalid_input", "observe-start needs filter.world", {})
        self._allowed(world, write=False)
        cfg = self.config
        return self.engine.observe_start(
            world,
            filter=self._filter(filt, world),
            capacity=cfg.observe_queue_capacity,
            drop_policy=cfg.observe_drop_policy,
            caller=self.caller,
        )

    def observe_poll(self, handle: str, max: int) -> list[Plain]:
        return [_atom(a) for a in self.engine.observe_poll(handle, max)]

    def observe_stop(self, handle: str) -> None:
        self.engine.observe_stats(handle)  # an unknown handle is an invalid_handle error
        self.engine.observe_stop(handle)

    def observe_stats(self, handle: str) -> Plain:
        s = self.engine.observe_stats(handle)
        return {
            "handle": s.handle,
            "queued_count": s.queued_count,
            "dropped_count": s.dropped_count,
            "last_event_ms": s.last_event_ms,
            "warnings": list(s.warnings),
        }

    def health(self) -> Plain:
        cfg = self.config
        h = self.engine.health(
            disk_path=cfg.data_dir,
            warn_pct=cfg.health_disk_warn_pct,
            degraded_pct=cfg.health_disk_degraded_pct,
            min_free_mb=0.0,
        )
        out = {k: h.get(k, v) for k, v in EMPTY_HEALTH.items()}
        for key in ("disk_used_bytes", "disk_free_bytes", "disk_total_bytes", "disk_budget_bytes"):
            value = out[key]
            out[key] = int(value) if value is not None else None
        out["index_rebuild_lag_ms"] = int(h.get("index_rebuild_lag_ms") or 0)
        out["store_bytes"] = int(out["store_bytes"] or 0)
        out["quarantine_count"] = int(out["quarantine_count"] or 0)
        return out

    def metrics(self) -> Plain:
        engine = self.engine
        stats = engine.stats()
        counters = [
            *(_sample(f"dwbase_{k}", float(v)) for k, v in sorted(stats["counters"].items())),
            _sample("dwbase_observe_dropped_total", float(stats["observe_dropped_total"])),
            *(_sample(name, value) for name, value in sorted(self.counters.items())),
        ]
        gauges = [
            _sample("dwbase_atoms", float(stats["atoms"])),
            _sample("dwbase_quarantined_atoms", float(stats["quarantined"])),
            _sample("dwbase_observe_subscriptions", float(stats["observers"])),
            _sample("dwbase_worlds", float(stats["worlds"])),
            _sample("dwbase_store_bytes", float(engine.storage.used_bytes())),
        ]
        histograms = [
            {"name": name, "labels": [], "count": count, "sum": total}
            for name, (count, total) in sorted(self.histograms.items())
        ]
        return {"counters": counters, "gauges": gauges, "histograms": histograms}

    # ------------------------------------------------------------------ plumbing

    def _filter(self, filt: Mapping[str, Any] | None, world: str) -> AtomFilter | None:
        if not filt:
            return None
        fields = {k: v for k, v in filt.items() if v not in (None, [], ())}
        other = fields.pop("world", world)
        if other != world:
            raise ToolFailure(
                "invalid_input", f"filter.world {other!r} differs from world {world!r}", {}
            )
        try:
            return AtomFilter(**fields)
        except TypeError as exc:
            raise InvalidInputError(f"bad filter: {exc}") from exc

    def _timed(self, name: str) -> _Timer:
        return _Timer(self, name)

    def count_error(self, code: str) -> None:
        key = f'dwbase_component_errors_total{{code="{code}"}}'
        self.counters[key] = self.counters.get(key, 0.0) + 1

    def v2(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one function; any failure as a :class:`ToolFailure`."""
        try:
            return fn(*args)
        except BaseException as exc:
            f = failure(exc)
            self.count_error(f.code)
            raise f from None

    def v1(self, fn: Callable[..., Any], empty: Any, *args: Any) -> Any:
        """Run one function; its empty value on any failure (v1 never traps)."""
        try:
            return self.v2(fn, *args)
        except ToolFailure as f:
            log.warning("v1 %s failed: %s: %s", getattr(fn, "__name__", "?"), f.code, f.message)
            return empty


def _sample(name: str, value: float) -> Plain:
    labels: list[Plain] = []
    if "{" in name:  # name{k="v"}
        base, _, rest = name.partition("{")
        k, _, v = rest.rstrip("}").partition("=")
        name, labels = base, [{"name": k, "value": v.strip('"')}]
    return {"name": name, "labels": labels, "value": value}


class _Timer:
    def __init__(self, service: Service, name: str) -> None:
        self.service = service
        self.name = name
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        count, total = self.service.histograms.get(self.name, (0, 0.0))
        self.service.histograms[self.name] = (count + 1, total + time.perf_counter() - self.start)
