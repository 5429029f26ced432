"""In-memory storage: the test fake and ``dwbase.open(":memory:")``. Same contract as SQLite."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence

from ..errors import StorageError
from ..model import FilterSpec, StoredAtom
from ..text import stem, words
from .base import (
    GENESIS,
    CheckReport,
    NewRecord,
    ScoreRow,
    chain_next,
    is_protected,
    record_checksum,
)

# A record ready to commit: the stored atom, its checksum, its chain link, its index vector.
Staged = tuple[StoredAtom, bytes, bytes, bytes | None]


class MemoryStorage:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_seq: dict[int, StoredAtom] = {}
        self._by_id: dict[str, int] = {}
        self._world_seqs: dict[str, list[int]] = {}
        self._vectors: dict[int, bytes] = {}
        self._terms: dict[int, Counter[str]] = {}
        self._ledger: dict[int, tuple[str, str, bytes, bytes]] = {}  # seq -> world, id, sum, chain
        self._heads: dict[str, bytes] = {}
        self._meta: dict[str, str] = {}
        self._deleted_ids: set[str] = set()
        self._seq = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")

    # ------------------------------------------------------------------ writes

    def append(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        self._check_open()
        with self._lock:
            staged = self._stage(records)
            return self._commit(staged)

    def _stage(self, records: Sequence[NewRecord]) -> list[Staged]:
        """Seqs, checksums and chain links for the new records; changes nothing yet."""
        seen: set[str] = set()
        staged: list[Staged] = []
        heads: dict[str, bytes] = {}
        seq = self._seq
        for rec in records:
            a = rec.atom
            if a.id in self._by_id or a.id in seen or a.id in self._deleted_ids:
                continue
            seen.add(a.id)
            seq += 1
            try:
                checksum = record_checksum(a)
            except (ValueError, TypeError) as exc:
                # Same contract as SQLite: an unstorable record (e.g. an unpaired
                # surrogate) fails the whole batch with StorageError, nothing kept.
                raise StorageError(f"storage write failed, nothing was stored: {exc}") from exc
            prev = heads.get(a.world) or self._heads.get(a.world, GENESIS)
            chain = chain_next(prev, checksum)
            heads[a.world] = chain
            s = StoredAtom(
                atom=a,
                seq=seq,
                ts_us=rec.ts_us,
                recorded_us=rec.recorded_us,
                text=rec.text,
                quarantine=rec.quarantine,
            )
            staged.append((s, checksum, chain, rec.index_vector))
        return staged

    def _commit(self, staged: Sequence[Staged]) -> list[StoredAtom]:
        # Nothing here can fail half-way through.
        out: list[StoredAtom] = []
        for s, checksum, chain, vec in staged:
            self._by_seq[s.seq] = s
            self._by_id[s.atom.id] = s.seq
            self._world_seqs.setdefault(s.atom.world, []).append(s.seq)
            self._ledger[s.seq] = (s.atom.world, s.atom.id, checksum, chain)
            self._heads[s.atom.world] = chain
            self._seq = max(self._seq, s.seq)
            self._terms[s.seq] = Counter(stem(w) for w in words(s.text))
            if vec is not None:
                self._vectors[s.seq] = vec
            out.append(s)
        return out

    def set_quarantine(self, seq: int, reason: str | None) -> None:
        self._check_open()
        with self._lock:
            s = self._by_seq.get(seq)
            if s is None:
                return
            self._by_seq[seq] = StoredAtom(
                atom=s.atom,
                seq=s.seq,
                ts_us=s.ts_us,
                recorded_us=s.recorded_us,
                text=s.text,
                quarantine=reason,
            )

    def delete(self, seqs: Sequence[int]) -> int:
        self._check_open()
        with self._lock:
            n = 0
            for seq in seqs:
                s = self._by_seq.pop(seq, None)
                if s is None:
                    continue
                n += 1
                del self._by_id[s.atom.id]
                self._deleted_ids.add(s.atom.id)
                self._world_seqs[s.atom.world].remove(seq)
                self._vectors.pop(seq, None)
                self._terms.pop(seq, None)
            return n

    def meta_set(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    # ------------------------------------------------------------------ reads

    def get(self, atom_id: str) -> StoredAtom | None:
        self._check_open()
        seq = self._by_id.get(atom_id)
        return self._by_seq.get(seq) if seq is not None else None

    def get_many(self, atom_ids: Sequence[str]) -> dict[str, StoredAtom]:
        self._check_open()
        out: dict[str, StoredAtom] = {}
        for aid in atom_ids:
            s = self.get(aid)
            if s is not None:
                out[aid] = s
        return out

    def get_seqs(self, seqs: Sequence[int]) -> dict[int, StoredAtom]:
        self._check_open()
        return {q: self._by_seq[q] for q in seqs if q in self._by_seq}

    def _world(self, world: str, quarantined: bool) -> list[StoredAtom]:
        with self._lock:
            seqs = list(self._world_seqs.get(world, ()))
            return [
                s for q in seqs if ((s := self._by_seq[q]).quarantine is not None) == quarantined
            ]

    def scan(
        self,
        world: str,
        spec: FilterSpec,
        *,
        quarantined: bool = False,
        after_seq: int | None = None,
        order: str = "append",
        descending: bool = False,
        limit: int | None = None,
    ) -> list[StoredAtom]:
        self._check_open()
        rows = [
            s
            for s in self._world(world, quarantined)
            if spec.matches(s) and (after_seq is None or s.seq > after_seq)
        ]
        if order == "event":
            rows.sort(key=lambda s: (s.ts_us, s.seq))
        if descending:
            rows.reverse()
        return rows[:limit] if limit is not None else rows

    def search_text(
        self,
        world: str,
        terms: Sequence[str],
        limit: int,
        *,
        spec: FilterSpec | None = None,
        quarantined: bool = False,
    ) -> list[tuple[int, float]]:
        self._check_open()
        # Terms are normalised like the indexed text (case, diacritics), as SQLite's FTS does.
        stems = list(dict.fromkeys(stem(w) for t in terms for w in words(t)))
        rows = self._world(world, quarantined)
        docs = [s.seq for s in rows]
        allowed = {s.seq for s in rows if spec is None or spec.matches(s)}
        if not docs or not stems:
            return []
        n = len(docs)
        lengths = {q: sum(self._terms[q].values()) for q in docs}
        avg = sum(lengths.values()) / n or 1.0
        df = {t: sum(1 for q in docs if t in self._terms[q]) for t in stems}
        scores: list[tuple[int, float]] = []
        for q in docs:
            tf = self._terms[q]
            score = 0.0
            for t in stems:
                f = tf.get(t, 0)
                if not f:
                    continue
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * lengths[q] / avg))
            if score > 0 and q in allowed:
                scores.append((q, score))
        scores.sort(key=lambda x: (-x[1], x[0]))
        return scores[:limit]

    def recent_seqs(
        self, world: str, spec: FilterSpec, limit: int, *, quarantined: bool = False
    ) -> list[int]:
        rows = self.scan(world, spec, quarantined=quarantined, descending=True, limit=limit)
        return [r.seq for r in rows]

    def score_rows(self, seqs: Sequence[int]) -> dict[int, ScoreRow]:
        self._check_open()
        out: dict[int, ScoreRow] = {}
        for q in seqs:
            s = self._by_seq.get(q)
            if s is not None:
                system = any(lb.startswith(("policy:", "world_meta")) for lb in s.atom.labels)
                out[q] = ScoreRow(q, s.atom.id, s.atom.worker, s.ts_us, s.atom.importance, system)
        return out

    def filter_seqs(
        self, world: str, seqs: Sequence[int], spec: FilterSpec, *, quarantined: bool = False
    ) -> set[int]:
        self._check_open()
        out: set[int] = set()
        for q in seqs:
            s = self._by_seq.get(q)
            if (
                s is not None
                and s.atom.world == world
                and (s.quarantine is not None) == quarantined
                and spec.matches(s)
            ):
                out.add(q)
        return out

    def load_vectors(
        self,
        world: str,
        *,
        quarantined: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, bytes]]:
        self._check_open()
        out = [
            (s.seq, self._vectors[s.seq])
            for s in self._world(world, quarantined)
            if s.seq > after_seq and s.seq in self._vectors
        ]
        return out if limit is None else out[:limit]

    def link_counts(
        self, targets: Sequence[str], *, as_of_us: int | None = None
    ) -> dict[str, dict[str, int]]:
        self._check_open()
        wanted = set(targets)
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for s in self._by_seq.values():
                if s.quarantine is not None:
                    continue
                if as_of_us is not None and s.recorded_us > as_of_us:
                    continue
                for link in s.atom.links:
                    if link.target in wanted:
                        d = out.setdefault(link.target, {})
                        d[link.kind] = d.get(link.kind, 0) + 1
        return out

    def with_label_prefix(self, prefix: str, *, world: str | None = None) -> list[StoredAtom]:
        self._check_open()
        with self._lock:
            return [
                s
                for q, s in sorted(self._by_seq.items())
                if s.quarantine is None
                and (world is None or s.atom.world == world)
                and any(lb.startswith(prefix) for lb in s.atom.labels)
            ]

    def worlds(self) -> list[str]:
        self._check_open()
        return sorted(w for w, seqs in self._world_seqs.items() if seqs)

    def known_ids(self, world: str) -> list[str]:
        self._check_open()
        with self._lock:
            return sorted(aid for w, aid, _, _ in self._ledger.values() if w == world)

    def count(self, world: str | None = None, *, quarantined: bool | None = None) -> int:
        self._check_open()
        return sum(
            1
            for s in self._by_seq.values()
            if (world is None or s.atom.world == world)
            and (quarantined is None or (s.quarantine is not None) == quarantined)
        )

    def quarantined(self, world: str | None = None, limit: int = 1000) -> list[StoredAtom]:
        self._check_open()
        rows = [
            s
            for _, s in sorted(self._by_seq.items())
            if s.quarantine is not None and (world is None or s.atom.world == world)
        ]
        return rows[:limit]

    def _targets(self) -> set[str]:
        return {link.target for s in self._by_seq.values() for link in s.atom.links}

    def gc_candidates(
        self, world: str, *, older_than_us: int | None, below_importance: float | None, limit: int
    ) -> list[int]:
        self._check_open()
        if older_than_us is None and below_importance is None:
            return []
        targets = self._targets()
        out: list[int] = []
        for q in sorted(self._world_seqs.get(world, ())):
            s = self._by_seq[q]
            old = older_than_us is not None and s.ts_us < older_than_us
            low = below_importance is not None and s.atom.importance < below_importance
            if (old or low) and not is_protected(s.atom.labels) and s.atom.id not in targets:
                out.append(q)
                if len(out) >= limit:
                    break
        return out

    def lowest_value(self, limit: int) -> list[int]:
        self._check_open()
        targets = self._targets()
        rows = [
            s
            for s in self._by_seq.values()
            if not is_protected(s.atom.labels) and s.atom.id not in targets
        ]
        rows.sort(key=lambda s: (s.atom.importance, s.seq))
        return [s.seq for s in rows[:limit]]

    def max_seq(self) -> int:
        self._check_open()
        return self._seq

    def meta_get(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    def look(self) -> tuple[int, int, int]:
        # Nobody but this store's own engine changes an in-memory store.
        return 0, self.max_seq(), 0

    def scan_seqs(self, after_seq: int, upto_seq: int) -> list[StoredAtom]:
        self._check_open()
        with self._lock:
            return [self._by_seq[q] for q in sorted(self._by_seq) if after_seq < q <= upto_seq]

    def used_bytes(self) -> int:
        self._check_open()
        return sum(len(s.atom.payload_json) + len(s.text) + 200 for s in self._by_seq.values())

    def check(self, *, quick: bool = False) -> CheckReport:
        del quick  # nothing slower to skip: the whole store is in memory
        self._check_open()
        report = CheckReport()
        heads: dict[str, bytes] = {}
        with self._lock:
            for seq in sorted(self._ledger):
                world, aid, checksum, chain = self._ledger[seq]
                s = self._by_seq.get(seq)
                if s is not None:
                    report.records += 1
                    if record_checksum(s.atom) != checksum:
                        report.problem(f"atom {aid} (seq {seq}) does not match its checksum")
                if chain_next(heads.get(world, GENESIS), checksum) != chain:
                    report.problem(f"hash chain of world {world!r} breaks at seq {seq} ({aid})")
                heads[world] = chain
            report.worlds = len(heads)
        return report

    def reindex(self) -> int:
        self._check_open()
        with self._lock:
            for q, s in self._by_seq.items():
                self._terms[q] = Counter(stem(w) for w in words(s.text))
            return len(self._by_seq)

    def close(self) -> None:
        self._closed = True
