"""What the engine keeps of its worlds between calls, read from the store and dropped when
the store changes under it: vector dimensions, lifecycle states and merged policies."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .. import policy as policy_mod
from ..model import StoredAtom
from ..policy import Policy
from ..storage.base import NewRecord, Storage


class Generation:
    """Counts changes that reading new appends cannot reveal (gc, quarantine release or drop,
    policy and lifecycle atoms, reindex). The node's ask workers, which read the same store
    in other processes, drop their caches when it moves."""

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class WorldCache:
    """Per-world dimensions, states and policies, cached; thread-safe."""

    def __init__(self, storage: Storage, default_dim: int, generation: Generation) -> None:
        self._storage = storage
        self._default_dim = default_dim
        self._generation = generation
        self._lock = threading.RLock()
        self._dims: dict[str, int] = {}
        self._dims_saved: set[str] = set()
        self._status: dict[str, str] = {}
        self._policies: dict[str, Policy] = {}
        # Atoms up to this seq are known here; atoms past it may be policy or lifecycle atoms
        # another process wrote.
        self.seen_seq = storage.max_seq()

    def dim(self, world: str) -> int:
        """The vector dimension of ``world``: recorded at its first write, else the embedder's."""
        dim = self._dims.get(world)
        if dim is None:
            raw = self._storage.meta_get("dim:" + world)
            dim = int(raw) if raw else self._default_dim
            self._dims[world] = dim
        return dim

    def save_dims(self, records: Sequence[NewRecord]) -> None:
        """Persist a world's vector dimension the first time the world is written."""
        for rec in records:
            w = rec.atom.world
            if w in self._dims_saved:
                continue
            if self._storage.meta_get("dim:" + w) is None:
                # Validation already held every vector to this dimension.
                self._storage.meta_set("dim:" + w, str(self.dim(w)))
            self._dims_saved.add(w)

    def status(self, world: str) -> str:
        """``active`` or ``archived``: the last ``world_status:`` label of the world's atoms."""
        with self._lock:
            status = self._status.get(world)
        if status is None:
            status = "active"
            for s in self._storage.with_label_prefix("world_status:", world=world):
                for lb in s.atom.labels:
                    if lb.startswith("world_status:"):
                        status = lb[len("world_status:") :]
            with self._lock:
                self._status[world] = status
        return status

    def policy(self, world: str) -> Policy:
        """The policy of ``world``, merged from its sources (see :mod:`dwbase.policy`)."""
        with self._lock:
            cached = self._policies.get(world)
        if cached is not None:
            return cached
        layers = [
            self._storage.with_label_prefix("policy:", world=src)
            for src in policy_mod.policy_sources(world)
        ]
        merged = policy_mod.merge(layers)
        with self._lock:
            self._policies[world] = merged
        return merged

    def stored(self, stored: Sequence[StoredAtom]) -> None:
        """This engine stored ``stored``: drop what they (or atoms before them) change."""
        if not stored:
            return
        self.saw_upto(stored[0].seq - 1)  # others' atoms stored before ours
        self.seen_seq = max(self.seen_seq, stored[-1].seq)
        for s in stored:
            if s.quarantine is None and any(
                lb.startswith(("policy:", "world_status:")) for lb in s.atom.labels
            ):
                with self._lock:
                    self._generation.bump()
                    self._policies.clear()
                    self._status.pop(s.atom.world, None)

    def saw_upto(self, top: int) -> None:
        """Atoms up to ``top`` exist; those this engine did not write may be policy or
        lifecycle atoms, so the caches built from those are dropped."""
        if top > self.seen_seq:
            self.seen_seq = top
            with self._lock:
                self._policies.clear()
                self._status.clear()

    def forget_dims(self) -> None:
        with self._lock:
            self._dims.clear()

    def forget(self) -> None:
        with self._lock:
            self._policies.clear()
            self._status.clear()
            self._dims.clear()
