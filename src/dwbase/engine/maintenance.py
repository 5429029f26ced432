"""The operator's side: held atoms, gc (on demand and on a schedule), check, reindex,
compact, vector index administration, stats and health."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from ..background import BackgroundFailures
from ..embed import Embedder
from ..errors import NotFoundError
from ..health import MIN_FREE_MB, engine_health
from ..indexes import IndexManager
from ..model import Atom, StoredAtom, validate_world
from ..options import Options
from ..results import Counters, GcReport
from ..security.caps import FULL_ACCESS, Caller
from ..storage.base import CheckReport, Storage
from ..stream import Hub
from ..timeutil import now_micros
from .worlds import Generation, WorldCache

log = logging.getLogger("dwbase.maintenance")


class Maintenance:
    """Operator actions; each takes ``caller`` and checks its operator capability."""

    def __init__(
        self,
        *,
        storage: Storage,
        options: Options,
        embedder: Embedder,
        indexes: IndexManager,
        worlds: WorldCache,
        hub: Hub,
        counters: Counters,
        background: BackgroundFailures,
        generation: Generation,
        lock: threading.RLock,
        is_closed: Any,
    ) -> None:
        self.storage = storage
        self.options = options
        self.embedder = embedder
        self.indexes = indexes
        self._worlds = worlds
        self.hub = hub
        self.counters = counters
        self.background = background
        self._generation = generation
        self._write_lock = lock
        self._is_closed = is_closed
        self._gc_stop = threading.Event()
        self._gc_thread: threading.Thread | None = None

    def _drop_index(self, world: str) -> None:
        self._generation.bump()
        self.indexes.invalidate(world)

    def _evicted(self, world: str, seqs: Sequence[int]) -> None:
        """gc deleted ``seqs`` of ``world``: a loaded index drops just those."""
        self._generation.bump()
        self.indexes.removed(world, seqs)

    def close(self) -> None:
        """Stop the gc schedule."""
        self._gc_stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join(timeout=5)

    # ------------------------------------------------------------------ quarantine

    def quarantine_list(
        self, world: str | None = None, *, limit: int = 1000, caller: Caller | None = None
    ) -> list[Atom]:
        """Held atoms (of ``world``, or of every world the caller operates on)."""
        who = caller or FULL_ACCESS
        who.require_operate(validate_world(world) if world is not None else None)
        # Another world's held atoms must not use up a scoped operator's limit: read more
        # (doubling) until the caller's own fill it or the store has no more.
        fetch = limit
        while True:
            rows = self.storage.quarantined(world, fetch)
            mine = [s.visible_atom() for s in rows if who.can_operate(s.atom.world)]
            if len(mine) >= limit or len(rows) < fetch:
                return mine[:limit]
            fetch *= 2

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
        now = now_micros(self.options.clock)
        for world in self.storage.worlds():
            if not who.can_operate(world):
                continue
            pol = self._worlds.policy(world)
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
                    self._evicted(world, seqs)
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
                    by_world: dict[str, list[int]] = {}
                    for s in rows.values():
                        by_world.setdefault(s.atom.world, []).append(s.seq)
                    for world, gone in by_world.items():
                        self._evicted(world, gone)
                for s in rows.values():
                    report.add(s.atom.world, "disk_budget", 1)
                if n == 0:
                    break
        self.counters.gc_evictions_total += report.evicted
        return report

    def start_gc_schedule(self, interval: float) -> None:
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
        self._generation.bump()
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
        ``ann_pending`` (loaded, not yet in the graph), ``graph_file`` ("loaded" from the saved
        graph, "not trusted: <why>", or None), ``last_rebuilt``, ``error``.
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
            closed=self._is_closed(),
            disk_path=disk_path,
            warn_pct=warn_pct,
            degraded_pct=degraded_pct,
            min_free_mb=min_free_mb,
            max_disk_mb=self.options.max_disk_mb,
        )
