"""The engine's operator side: worlds and policy, quarantine, gc and maintenance, health.

A mixin of :class:`dwbase.engine.Engine`, kept in its own module so each stays readable; it
uses only the engine's state and public writes (``remember``), never storage internals.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import policy as policy_mod
from .background import BackgroundFailures
from .errors import CapabilityDeniedError, InvalidInputError, NotFoundError
from .health import MIN_FREE_MB, engine_health
from .model import Atom, StoredAtom, validate_world
from .options import Options
from .policy import Policy
from .results import AtomId, Counters, GcReport
from .security.caps import FULL_ACCESS, Caller
from .storage.base import CheckReport, Storage
from .stream import Hub

if TYPE_CHECKING:
    from .embed import Embedder
    from .indexes import IndexManager

SYSTEM_WORKER = "dwbase"
log = logging.getLogger("dwbase.operations")


class OperationsMixin:
    storage: Storage
    options: Options
    hub: Hub
    counters: Counters
    embedder: Embedder
    indexes: IndexManager
    _write_lock: threading.RLock
    generation: int
    _cache_lock: threading.RLock
    _status: dict[str, str]
    _policies: dict[str, Policy]
    _closed: bool
    _gc_stop: threading.Event
    _gc_thread: threading.Thread | None
    background: BackgroundFailures

    if TYPE_CHECKING:

        def remember(
            self,
            world: str,
            worker: str | None = None,
            kind: str = "observation",
            payload: Mapping[str, Any] | None = None,
            *,
            labels: Sequence[str] = (),
            caller: Caller | None = None,
        ) -> AtomId: ...

        def _now(self) -> int: ...

        def _drop_index(self, world: str) -> None: ...

    # ------------------------------------------------------------------ worlds & policy

    def world_status(self, world: str) -> str:
        with self._cache_lock:
            status = self._status.get(world)
        if status is None:
            status = "active"
            for s in self.storage.with_label_prefix("world_status:", world=world):
                for lb in s.atom.labels:
                    if lb.startswith("world_status:"):
                        status = lb[len("world_status:") :]
            with self._cache_lock:
                self._status[world] = status
        return status

    def _world_event(
        self,
        world: str,
        status: str,
        description: str | None,
        labels: Sequence[str],
        caller: Caller | None,
    ) -> AtomId:
        validate_world(world)
        payload: dict[str, Any] = {"event": status, "world": world}
        if description is not None:
            payload["description"] = description
        return self.remember(
            world,
            (caller.worker if caller and caller.worker else SYSTEM_WORKER),
            "observation",
            payload,
            labels=["world_meta", f"world_status:{status}", *labels],
            caller=caller,
        )

    def create_world(
        self,
        world: str,
        *,
        description: str | None = None,
        labels: Sequence[str] = (),
        caller: Caller | None = None,
    ) -> AtomId:
        """Record a world's creation (idempotent in effect: the world is active)."""
        return self._world_event(world, "active", description, labels, caller)

    def archive_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        # Permission first: a 404 must not tell a caller which forbidden worlds exist.
        (caller or FULL_ACCESS).require_write(
            validate_world(world), labels=["world_status:archived"]
        )
        if world not in self.storage.worlds():
            raise NotFoundError(f"world {world!r} has no atoms", world=world)
        return self._world_event(world, "archived", None, (), caller)

    def resume_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        (caller or FULL_ACCESS).require_write(validate_world(world), labels=["world_status:active"])
        if world not in self.storage.worlds():
            raise NotFoundError(f"world {world!r} has no atoms", world=world)
        return self._world_event(world, "active", None, (), caller)

    def list_worlds(
        self, *, include_archived: bool = False, caller: Caller | None = None
    ) -> list[str]:
        who = caller or FULL_ACCESS
        return [
            w
            for w in self.storage.worlds()
            if who.can_read(w) and (include_archived or self.world_status(w) != "archived")
        ]

    def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
        caller: Caller | None = None,
    ) -> AtomId:
        """Record a policy for ``world`` as an atom of ``policy:<world>`` (see ``policy.py``).

        The atom goes to ``policy:<world>``, as in the original DWBase, so the world's own
        memory (``replay``, ``ask``) holds only what its agents wrote. A policy world itself
        (``policy:<w>``, ``tenant:<id>/policy``) takes the atom directly. The caller needs the
        policy capability for ``world``.
        """
        labels = policy_mod.policy_labels(
            retention_days=retention_days,
            retention_min_days=retention_min_days,
            min_importance=min_importance,
            replication_allow=list(replication_allow) if replication_allow else None,
            replication_deny=list(replication_deny) if replication_deny else None,
        )
        if not labels:
            raise InvalidInputError("give at least one policy setting", field="policy")
        validate_world(world)
        who = caller or FULL_ACCESS
        if not who.can_set_policy(world):
            raise CapabilityDeniedError(
                f"{who.name} may not change the policy of world {world!r}", world=world
            )
        target = world if policy_mod.is_policy_world(world) else validate_world("policy:" + world)
        return self.remember(
            target,
            caller.worker if caller and caller.worker else SYSTEM_WORKER,
            "observation",
            {"policy": labels, "world": world},
            labels=labels,
            # The policy capability for ``world`` is what lets a caller write its policy world.
            caller=replace(FULL_ACCESS, worker=who.worker, name=who.name),
        )

    def policy(self, world: str) -> Policy:
        with self._cache_lock:
            cached = self._policies.get(world)
        if cached is not None:
            return cached
        layers = [
            self.storage.with_label_prefix("policy:", world=src)
            for src in policy_mod.policy_sources(world)
        ]
        merged = policy_mod.merge(layers)
        with self._cache_lock:
            self._policies[world] = merged
        return merged

    # ------------------------------------------------------------------ quarantine

    def quarantine_list(
        self, world: str | None = None, *, limit: int = 1000, caller: Caller | None = None
    ) -> list[Atom]:
        """Held atoms (of ``world``, or of every world the caller operates on)."""
        who = caller or FULL_ACCESS
        who.require_operate(validate_world(world) if world is not None else None)
        return [
            s.visible_atom()
            for s in self.storage.quarantined(world, limit)
            if who.can_operate(s.atom.world)
        ]

    def _quarantined(self, atom_id: str) -> StoredAtom:
        s = self.storage.get(atom_id)
        if s is None or s.quarantine is None:
            raise NotFoundError(f"no quarantined atom {atom_id!r}", id=atom_id)
        return s

    def quarantine_release(self, atom_id: str, *, caller: Caller | None = None) -> Atom:
        """Move a held atom back into its world (it keeps its id and record).

        The caller needs the operator capability over the atom's world.
        """
        s = self._quarantined(atom_id)
        (caller or FULL_ACCESS).require_operate(s.atom.world)
        with self._write_lock:
            self.storage.set_quarantine(s.seq, None)
            self._drop_index(s.atom.world)
        return s.atom

    def quarantine_drop(self, atom_id: str, *, caller: Caller | None = None) -> None:
        """Delete a held atom; the caller needs the operator capability over its world."""
        s = self._quarantined(atom_id)
        (caller or FULL_ACCESS).require_operate(s.atom.world)
        with self._write_lock:
            self.storage.delete([s.seq])
            self._drop_index(s.atom.world)

    # ------------------------------------------------------------------ maintenance

    def gc(self, *, caller: Caller | None = None) -> GcReport:
        """Apply retention, minimum importance and the disk budget now.

        An operator action: a caller gc's only the worlds it operates on, and the store-wide
        disk budget only when it operates on every world (``*``).
        """
        who = caller or FULL_ACCESS
        who.require_operate()
        report = GcReport()
        now = self._now()
        for world in self.storage.worlds():
            if not who.can_operate(world):
                continue
            pol = self.policy(world)
            days = pol.effective_retention_days
            cutoff = now - days * 86_400_000_000 if days is not None else None
            while True:
                seqs = self.storage.gc_candidates(
                    world, older_than_us=cutoff, below_importance=pol.min_importance, limit=1000
                )
                if not seqs:
                    break
                with self._write_lock:
                    n = self.storage.delete(seqs)
                    self._drop_index(world)
                report.add(world, "retention" if cutoff is not None else "min_importance", n)
                if n == 0:
                    break
        budget = self.options.max_disk_mb if who.operates_everywhere else None
        if budget is not None:
            limit_bytes = int(budget * 1024 * 1024)
            while (used := self.storage.used_bytes()) > limit_bytes:
                # Evict about as many atoms as the excess holds, judged by the average size.
                count = max(1, self.storage.count())
                step = max(1, min(500, math.ceil((used - limit_bytes) / (used / count))))
                seqs = self.storage.lowest_value(step)
                if not seqs:
                    break
                rows = self.storage.get_seqs(seqs)
                with self._write_lock:
                    n = self.storage.delete(seqs)
                    for s in rows.values():
                        self._drop_index(s.atom.world)
                for s in rows.values():
                    report.add(s.atom.world, "disk_budget", 1)
                if n == 0:
                    break
        self.counters.gc_evictions_total += report.evicted
        return report

    def _start_gc_schedule(self, interval: float) -> None:
        def loop() -> None:
            while not self._gc_stop.wait(interval):
                try:
                    self.gc()
                except Exception as exc:  # logged, counted, in health; tried again next time
                    self.background.failed("gc", exc, log, where="scheduled gc")
                else:
                    self.background.recovered("gc", log)

        self._gc_thread = threading.Thread(target=loop, name="dwbase-gc", daemon=True)
        self._gc_thread.start()

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify records, hash chains, anchored heads and indexes (see ``storage check``)."""
        return self.storage.check(quick=quick)

    def reindex(self) -> int:
        self.generation += 1
        self.indexes.reset()
        return self.storage.reindex()

    def compact(self) -> dict[str, Any]:
        """Reclaim disk space (SQLite: WAL checkpoint, FTS merge, VACUUM); in memory a no-op."""
        run = getattr(self.storage, "compact", None)
        before = self.storage.used_bytes()
        with self._write_lock:
            detail = run() if callable(run) else {}
        return {
            "used_bytes_before": before,
            "used_bytes_after": self.storage.used_bytes(),
            **detail,
        }

    def index_status(
        self, world: str | None = None, *, caller: Caller | None = None
    ) -> list[dict[str, Any]]:
        """Vector index metadata per readable world (see :mod:`dwbase.indexes`).

        Keys: ``world``, ``kind`` (exact|hnsw), ``version``, ``dim``, ``embedder``,
        ``embedder_version``, ``loaded``, ``vectors``, ``ready``, ``rebuilding``, ``stale``,
        ``progress`` (0..1), ``lag`` (stored vectors not loaded yet), ``ann_building``,
        ``last_rebuilt``, ``error``.
        """
        who = caller or FULL_ACCESS
        if world is not None:
            validate_world(world)
            who.require_read(world)
            worlds = [world] if world in self.storage.worlds() else []
        else:
            worlds = [w for w in self.storage.worlds() if who.can_read(w)]
        return [self.indexes.status(w) for w in worlds]

    def index_rebuild(
        self, world: str | None = None, *, wait: bool = True, caller: Caller | None = None
    ) -> dict[str, Any]:
        """Rebuild the vector index of ``world`` (or every readable world) from storage.

        With ``wait=False`` the rebuild runs in the background; follow it in ``index_status``.
        """
        who = caller or FULL_ACCESS
        if world is not None:
            validate_world(world)
            who.require_read(world)
            worlds = [world]
        else:
            who.require_operate()  # every world at once is an operator's call
            worlds = [w for w in self.storage.worlds() if who.can_read(w)]
        if not wait:
            self.indexes.rebuild_later(worlds)
            return {"worlds": worlds, "vectors": None, "started": True}
        vectors = sum(len(self.indexes.rebuild(w).exact) for w in worlds)
        return {"worlds": worlds, "vectors": vectors}

    def stats(self) -> dict[str, Any]:
        return {
            "atoms": self.storage.count(),
            "quarantined": self.storage.count(quarantined=True),
            "worlds": len(self.storage.worlds()),
            "observers": len(self.hub),
            "observe_dropped_total": self.hub.dropped_total,
            "embedder": f"{self.embedder.name}:{self.embedder.version}",
            "counters": {k: getattr(self.counters, k) for k in Counters.__slots__},
        }

    def health(
        self,
        *,
        disk_path: str | None = None,
        warn_pct: float = 80.0,
        degraded_pct: float = 90.0,
        min_free_mb: float = MIN_FREE_MB,
    ) -> dict[str, Any]:
        """Operator health: storage, disk, indexes, background work, quarantine.

        ``disk_path`` defaults to the directory of the SQLite file; with no path (an
        in-memory store) disk pressure is ``unknown`` and there is no free-disk floor. The
        fields are described in :mod:`dwbase.health`.

        >>> import dwbase
        >>> dwbase.open(":memory:").health()["status"]
        'ready'
        """
        return engine_health(
            storage=self.storage,
            indexes=self.indexes,
            background=self.background,
            closed=self._closed,
            disk_path=disk_path,
            warn_pct=warn_pct,
            degraded_pct=degraded_pct,
            min_free_mb=min_free_mb,
            max_disk_mb=self.options.max_disk_mb,
        )
