"""The SQLite store's queries: atoms by id or seq, filters, candidates for ask, worlds,
counts and gc candidates, with the decoded-atom and score-row caches.

A part of :class:`dwbase.storage.sqlite.SQLiteStorage` (which supplies the connections, the
record cipher and the cache fields declared below); kept apart so each file reads on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ..model import FilterSpec, StoredAtom
from .base import ScoreRow
from .crypto import ErasedRecordError, RecordCipher, aad
from .sqlite_schema import COLS, row_to_stored

_V = TypeVar("_V")


def _from_cache(cache: dict[int, _V], seqs: Sequence[int]) -> tuple[dict[int, _V], list[int]]:
    """The cached entries of ``seqs``, and the other seqs (each once) to read from the store."""
    get = cache.get
    out = {q: v for q in seqs if (v := get(q)) is not None}
    return out, list(dict.fromkeys(q for q in seqs if q not in out))


class SQLiteQueries:
    """The read queries of the SQLite store (see the module docstring)."""

    # supplied by SQLiteStorage
    _cipher: RecordCipher | None
    _atom_cache: dict[int, StoredAtom]
    _atom_version: int
    _score_cache: dict[int, ScoreRow]
    _link_targets: set[str] | None
    _link_targets_known: bool
    _link_seq: int

    if TYPE_CHECKING:  # declared for the type checker; SQLiteStorage defines them

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def max_seq(self) -> int: ...

    def get(self, atom_id: str) -> StoredAtom | None:
        found = self._atoms(self._read(f"SELECT {COLS} FROM atoms WHERE id=?", (atom_id,)))
        return found[0] if found else None

    def get_many(self, atom_ids: Sequence[str]) -> dict[str, StoredAtom]:
        out: dict[str, StoredAtom] = {}
        ids = list(dict.fromkeys(atom_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for s in self._atoms(
                self._read(
                    f"SELECT {COLS} FROM atoms WHERE id IN ({','.join('?' * len(chunk))})", chunk
                )
            ):
                out[s.atom.id] = s
        return out

    ATOM_CACHE_SIZE = 20_000

    def get_seqs(self, seqs: Sequence[int]) -> dict[int, StoredAtom]:
        cache = self._atom_cache
        out, keys = _from_cache(cache, seqs)
        if not keys:
            return out
        version = self._atom_version  # a quarantine change or delete while we read: no caching
        fetched: list[StoredAtom] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for s in self._atoms(
                self._read(
                    f"SELECT {COLS} FROM atoms WHERE seq IN ({','.join('?' * len(chunk))})", chunk
                )
            ):
                out[s.seq] = s
                fetched.append(s)
        if version == self._atom_version:
            if len(cache) + len(fetched) > self.ATOM_CACHE_SIZE:
                cache.clear()
            for s in fetched:
                cache[s.seq] = s
        return out

    def _atoms(self, rows: Sequence[Any]) -> list[StoredAtom]:
        """Decode atom rows (opening encrypted ones); rows of erased subjects are left out."""
        cipher = self._cipher
        if cipher is None:
            return [row_to_stored(r) for r in rows]
        out: list[StoredAtom] = []
        for r in rows:
            try:
                out.append(row_to_stored(r, cipher))
            except ErasedRecordError:
                continue
        return out

    def _atoms_changed(self) -> None:
        """A stored atom's quarantine state changed or atoms left: decoded copies are stale."""
        self._atom_version += 1
        self._atom_cache.clear()

    _SYSTEM = (
        "EXISTS (SELECT 1 FROM tags t WHERE t.seq=a.seq AND ("
        "(t.tag >= 'l:policy:' AND t.tag < 'l:policy;') OR "
        "(t.tag >= 'l:world_meta' AND t.tag < 'l:world_metb')))"
    )

    def recent_seqs(
        self, world: str, spec: FilterSpec, limit: int, *, quarantined: bool = False
    ) -> list[int]:
        where, params = self._where(world, spec, quarantined, None)
        rows = self._read(
            f"SELECT a.seq FROM atoms a WHERE {where} ORDER BY a.seq DESC LIMIT ?",
            [*params, int(limit)],
        )
        return [int(r[0]) for r in rows]

    SCORE_CACHE_SIZE = 200_000

    def score_rows(self, seqs: Sequence[int]) -> dict[int, ScoreRow]:
        cache = self._score_cache
        out, keys = _from_cache(cache, seqs)
        if not keys:
            return out
        if len(cache) + len(keys) > self.SCORE_CACHE_SIZE:
            cache.clear()  # crude but cheap; a store this size re-warms within a few asks
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for seq, aid, worker, ts_us, imp, system in self._read(
                f"SELECT a.seq, a.id, a.worker, a.ts_us, a.importance, {self._SYSTEM} "
                f"FROM atoms a WHERE a.seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[seq] = cache[seq] = ScoreRow(seq, aid, worker, ts_us, imp, bool(system))
        return out

    def filter_seqs(
        self, world: str, seqs: Sequence[int], spec: FilterSpec, *, quarantined: bool = False
    ) -> set[int]:
        where, params = self._where(world, spec, quarantined, None)
        out: set[int] = set()
        keys = list(dict.fromkeys(seqs))
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._read(
                f"SELECT a.seq FROM atoms a WHERE a.seq IN ({','.join('?' * len(chunk))}) "
                f"AND {where}",
                [*chunk, *params],
            )
            out.update(int(r[0]) for r in rows)
        return out

    def _where(
        self, world: str, spec: FilterSpec, quarantined: bool, after_seq: int | None
    ) -> tuple[str, list[Any]]:
        clauses = [
            "a.world=?",
            "a.quarantine IS NOT NULL" if quarantined else "a.quarantine IS NULL",
        ]
        params: list[Any] = [world]
        if spec.kinds:
            clauses.append(f"a.kind IN ({','.join('?' * len(spec.kinds))})")
            params.extend(sorted(spec.kinds))
        if spec.since_us is not None:
            clauses.append("a.ts_us >= ?")
            params.append(spec.since_us)
        if spec.until_us is not None:
            clauses.append("a.ts_us <= ?")
            params.append(spec.until_us)
        if spec.as_of_us is not None:
            clauses.append("a.rec_us <= ?")
            params.append(spec.as_of_us)
        for label in sorted(spec.labels):
            clauses.append("EXISTS (SELECT 1 FROM tags t WHERE t.tag=? AND t.seq=a.seq)")
            params.append("l:" + label)
        for flag in sorted(spec.flags):
            clauses.append("EXISTS (SELECT 1 FROM tags t WHERE t.tag=? AND t.seq=a.seq)")
            params.append("f:" + flag)
        if after_seq is not None:
            clauses.append("a.seq > ?")
            params.append(after_seq)
        return " AND ".join(clauses), params

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
        where, params = self._where(world, spec, quarantined, after_seq)
        direction = "DESC" if descending else "ASC"
        order_by = (
            f"a.ts_us {direction}, a.seq {direction}" if order == "event" else f"a.seq {direction}"
        )
        sql = f"SELECT {COLS} FROM atoms a WHERE {where} ORDER BY {order_by}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._atoms(self._read(sql, params))

    def load_vectors(
        self,
        world: str,
        *,
        quarantined: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, bytes]]:
        q = "a.quarantine IS NOT NULL" if quarantined else "a.quarantine IS NULL"
        cipher = self._cipher
        # the atom's id only where it opens an encrypted vector (a page of rows is held twice
        # at most: as read and as returned)
        rows = self._read(
            f"SELECT v.seq, v.data, {'a.id' if cipher is not None else 'NULL'} "
            "FROM atoms a JOIN vectors v ON v.seq=a.seq "
            f"WHERE a.world=? AND {q} AND a.seq > ? ORDER BY a.seq LIMIT ?",
            (world, after_seq, -1 if limit is None else limit),
        )
        if cipher is None:
            return [(int(s), bytes(d)) for s, d, _ in rows]
        out: list[tuple[int, bytes]] = []
        for s, d, aid in rows:
            try:
                out.append((int(s), cipher.open(bytes(d), aad(aid, "ivec"))))
            except ErasedRecordError:
                continue
        return out

    def link_counts(
        self, targets: Sequence[str], *, as_of_us: int | None = None
    ) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        keys = list(dict.fromkeys(targets))
        linked = self._linked_targets()
        if linked is not None:
            keys = [k for k in keys if k in linked]
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            sql = (
                "SELECT l.target, l.kind, count(*) FROM links l JOIN atoms a ON a.seq=l.seq "
                f"WHERE l.target IN ({','.join('?' * len(chunk))}) AND a.quarantine IS NULL"
            )
            params: list[Any] = list(chunk)
            if as_of_us is not None:
                sql += " AND a.rec_us <= ?"
                params.append(as_of_us)
            for target, kind, n in self._read(sql + " GROUP BY l.target, l.kind", params):
                out.setdefault(target, {})[kind] = int(n)
        return out

    LINK_TARGETS_TRACKED = 1_000_000

    def _linked_targets(self) -> set[str] | None:
        """Every id some atom links to, or ``None`` when there are too many to track.

        Loaded once, then the links of atoms stored since (by this store or another process)
        are read by seq before each use, so the set never misses a stored link.
        """
        top = self.max_seq()  # read first: whatever commits later has a higher seq
        if not self._link_targets_known:
            rows = self._read(
                "SELECT DISTINCT target FROM links LIMIT ?", (self.LINK_TARGETS_TRACKED + 1,)
            )
            self._link_targets = (
                {str(r[0]) for r in rows} if len(rows) <= self.LINK_TARGETS_TRACKED else None
            )
            self._link_targets_known, self._link_seq = True, top
        elif top > self._link_seq:
            targets = self._link_targets
            if targets is not None:
                rows = self._read(  # by the atoms' primary key: the links table has no seq index
                    "SELECT links FROM atoms WHERE seq > ? AND links != '[]'", (self._link_seq,)
                )
                targets.update(str(t) for (raw,) in rows for t, _ in json.loads(raw))
                if len(targets) > self.LINK_TARGETS_TRACKED:
                    self._link_targets = None
            self._link_seq = top
        return self._link_targets

    def with_label_prefix(self, prefix: str, *, world: str | None = None) -> list[StoredAtom]:
        lo = "l:" + prefix
        hi = lo[:-1] + chr(ord(lo[-1]) + 1)
        sql = (
            f"SELECT {', '.join('a.' + c.strip() for c in COLS.split(','))} FROM atoms a "
            "WHERE a.seq IN (SELECT seq FROM tags WHERE tag >= ? AND tag < ?) "
            "AND a.quarantine IS NULL"
        )
        params: list[Any] = [lo, hi]
        if world is not None:
            sql += " AND a.world=?"
            params.append(world)
        return self._atoms(self._read(sql + " ORDER BY a.seq", params))

    def worlds(self) -> list[str]:
        rows = self._read(
            "WITH RECURSIVE w(name) AS (SELECT min(world) FROM atoms UNION ALL "
            "SELECT (SELECT min(world) FROM atoms WHERE world > w.name) FROM w "
            "WHERE w.name IS NOT NULL) SELECT name FROM w WHERE name IS NOT NULL"
        )
        return [r[0] for r in rows]

    def known_ids(self, world: str) -> list[str]:
        rows = self._read(
            "SELECT id FROM atoms WHERE world=? UNION SELECT id FROM tombstones WHERE world=? "
            "ORDER BY 1",
            (world, world),
        )
        return [r[0] for r in rows]

    def count(self, world: str | None = None, *, quarantined: bool | None = None) -> int:
        clauses: list[str] = []
        params: list[Any] = []
        if world is not None:
            clauses.append("world=?")
            params.append(world)
        if quarantined is True:
            clauses.append("quarantine IS NOT NULL")
        elif quarantined is False:
            clauses.append("quarantine IS NULL")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return int(self._read(f"SELECT count(*) FROM atoms{where}", params)[0][0])

    def quarantined(self, world: str | None = None, limit: int = 1000) -> list[StoredAtom]:
        sql = f"SELECT {COLS} FROM atoms WHERE quarantine IS NOT NULL"
        params: list[Any] = []
        if world is not None:
            sql += " AND world=?"
            params.append(world)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return self._atoms(self._read(sql, params))

    _UNPROTECTED = (
        "NOT EXISTS (SELECT 1 FROM tags t WHERE t.seq=a.seq AND ("
        "(t.tag >= 'l:policy:' AND t.tag < 'l:policy;') OR "
        "(t.tag >= 'l:world_meta' AND t.tag < 'l:world_metb') OR "
        "(t.tag >= 'l:world_status:' AND t.tag < 'l:world_status;'))) "
        "AND NOT EXISTS (SELECT 1 FROM links l WHERE l.target=a.id)"
    )

    def gc_candidates(
        self, world: str, *, older_than_us: int | None, below_importance: float | None, limit: int
    ) -> list[int]:
        conds: list[str] = []
        params: list[Any] = [world]
        if older_than_us is not None:
            conds.append("a.ts_us < ?")
            params.append(older_than_us)
        if below_importance is not None:
            conds.append("a.importance < ?")
            params.append(below_importance)
        if not conds:
            return []
        params.append(limit)
        rows = self._read(
            f"SELECT a.seq FROM atoms a WHERE a.world=? AND ({' OR '.join(conds)}) AND "
            f"{self._UNPROTECTED} ORDER BY a.seq LIMIT ?",
            params,
        )
        return [int(r[0]) for r in rows]

    def lowest_value(self, limit: int) -> list[int]:
        rows = self._read(
            f"SELECT a.seq FROM atoms a WHERE {self._UNPROTECTED} "
            "ORDER BY a.importance ASC, a.seq ASC LIMIT ?",
            (limit,),
        )
        return [int(r[0]) for r in rows]
