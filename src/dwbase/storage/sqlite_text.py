"""SQLite storage: lexical search over the FTS5 index, and the work budget that keeps it fast.

``LexicalSearch`` is a part of :class:`~dwbase.storage.sqlite.SQLiteStorage` (a mixin): it uses
the store's reader connections and filters, and keeps two caches that cannot mislead a query:
porter stems (they depend only on the tokenizer) and per-token document counts, which may lag
the store by 1% because they only steer which very common words a question leaves out.

A small world in a store of many worlds is searched in an index of its own (see
:meth:`LexicalSearch._world_search`), so that its ask costs what its own size costs and ranks
as it would if the world were alone in the store.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..errors import StorageError
from ..model import FilterSpec
from .crypto import RecordCipher
from .sqlite_schema import TEXT_EXPR, fts_query


class _Store(Protocol):
    """What the lexical search uses of the SQLite store it is a part of."""

    WORK_BUDGET: int
    WORLD_INDEX_MAX: int
    WORLD_INDEX_SLOTS: int
    WORLD_INDEX_ATOMS: int
    _stems: dict[str, str]
    _df: dict[str, tuple[int, int]]  # token -> (atoms holding it, max_seq when counted)
    _size_hint: int
    _large_worlds: set[str]  # worlds seen with more than WORLD_INDEX_MAX atoms
    _stemmer_ready: set[int]
    _cipher: RecordCipher | None
    _external_text: bool

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
    def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...
    def max_seq(self) -> int: ...
    def filter_seqs(
        self, world: str, seqs: Sequence[int], spec: FilterSpec, *, quarantined: bool = False
    ) -> set[int]: ...
    def _where(
        self, world: str, spec: FilterSpec, quarantined: bool, after_seq: int | None
    ) -> tuple[str, list[Any]]: ...
    def _prune_common(self, terms: Sequence[str]) -> list[str]: ...
    def _tokens(self, terms: Sequence[str]) -> list[str] | None: ...
    def _world_search(
        self,
        world: str,
        terms: Sequence[str],
        limit: int,
        spec: FilterSpec,
        quarantined: bool,
    ) -> list[tuple[int, float]] | None: ...


class LexicalSearch:
    """FTS5/BM25 search with common-term pruning (see :meth:`_prune_common`)."""

    def search_text(
        self: _Store,
        world: str,
        terms: Sequence[str],
        limit: int,
        *,
        spec: FilterSpec | None = None,
        quarantined: bool = False,
    ) -> list[tuple[int, float]]:
        if not terms:
            return []
        if self._cipher is not None:
            # An encrypted store's index holds keyed tokens of the words, not the words.
            terms = self._cipher.query_tokens(terms)
        spec = spec or FilterSpec()
        own = self._world_search(world, terms, int(limit), spec, quarantined)
        if own is not None:
            return own
        chosen = self._prune_common(terms)
        if not chosen:
            return []
        query = fts_query(chosen)
        # Fast path: rank in the text index alone (no join per match), over-fetch, then keep
        # the rows of this world and filter. The order is global, so if at least ``limit``
        # rows survive they are exactly the best ``limit`` of the filtered set.
        fetch = max(4 * int(limit), 256)
        ranked = self._read(
            "SELECT rowid, rank FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?",
            [query, fetch],
        )
        allowed = self.filter_seqs(world, [r[0] for r in ranked], spec, quarantined=quarantined)
        rows = [r for r in ranked if r[0] in allowed][: int(limit)]
        if len(rows) < int(limit) and len(ranked) == fetch:
            where, params = self._where(world, spec, quarantined, None)
            rows = self._read(
                "SELECT f.rowid, bm25(fts) AS s FROM fts f JOIN atoms a ON a.seq=f.rowid "
                f"WHERE fts MATCH ? AND {where} ORDER BY s LIMIT ?",
                [query, *params, int(limit)],
            )
        return _relevance(rows)

    WORK_BUDGET = 2_000  # postings FTS5 may score for one question before terms are pruned

    def _prune_common(self: _Store, terms: Sequence[str]) -> list[str]:
        """Keep the rarest terms of a lexical query, within a work budget.

        FTS5 scores every atom that holds any query term, so a question made of very common
        words costs time in proportion to the store (about 1 ms per 1,000 matching atoms here)
        while those words add almost nothing to BM25 (their idf is near zero). The budget is
        ``max(WORK_BUDGET, 3% of the store)`` postings:

        * if the terms' document counts add up to no more than the budget, all terms are kept
          (every small world, and any question with a rare word in a large one);
        * otherwise terms are taken rarest first while the total stays within the budget
          (the rarest is always taken);
        * if even the rarest term is in more than ``max(WORK_BUDGET, 10% of the store)`` atoms,
          the question has no discriminating word and the lexical path is skipped (semantic
          search still answers it).

        Document counts are cached per token and recounted once the store has grown by 1%.
        The store's size is the last ``max_seq()`` read or seq written here (every ask reads
        ``max_seq()`` for link targets), so another process's writes show an ask late; the
        size only steers which words are left out.
        """
        total = self._size_hint or self.max_seq()
        if not terms or total * len(terms) <= self.WORK_BUDGET:
            return list(terms)  # cannot exceed the budget: skip the count lookup
        tokens = self._tokens(terms)
        if tokens is None:
            return list(terms)
        df_tok: dict[str, int] = {}
        stale: list[str] = []
        for tok in dict.fromkeys(tokens):
            hit = self._df.get(tok)
            # A count taken when the store was at least 99% of its size is close enough.
            if hit is not None and hit[1] * 100 >= total * 99 and hit[1] <= total:
                df_tok[tok] = hit[0]
            else:
                stale.append(tok)
        if stale:
            fresh = dict(
                self._read(
                    f"SELECT term, doc FROM fts_vocab WHERE term IN ({','.join('?' * len(stale))})",
                    stale,
                )
            )
            if len(self._df) > 100_000:
                self._df.clear()
            for tok in stale:
                df_tok[tok] = int(fresh.get(tok, 0))
                self._df[tok] = (df_tok[tok], total)
        return keep_rarest(terms, [df_tok[tok] for tok in tokens], total, self.WORK_BUDGET)

    WORLD_INDEX_MAX = 1_000  # worlds up to this many atoms are searched in their own index
    WORLD_INDEX_SLOTS = 32  # such indexes kept by each reader connection (least recently used)
    WORLD_INDEX_ATOMS = 20_000  # and the atoms they may hold together, per connection

    def _world_search(
        self: _Store,
        world: str,
        terms: Sequence[str],
        limit: int,
        spec: FilterSpec,
        quarantined: bool,
    ) -> list[tuple[int, float]] | None:
        """Search a small world of a store of many worlds in an index of its own, or ``None``.

        The store's FTS5 index spans every world: bm25() counts each term's documents over the
        whole index and scores every match in any world, so a 100-atom world in a store of
        1,000 such worlds paid for 100,000 atoms, and its words were weighed (and pruned) by
        how common they are in other worlds. A world of at most ``WORLD_INDEX_MAX`` atoms, in
        a store that holds other worlds too, is instead indexed on its own: its index text is
        copied into a contentless FTS5 table in the reader connection's temp schema (memory,
        never the store file: ``temp_store=MEMORY``), kept there for the next ask until the
        world changes, and searched with the same tokenizer, pruning and bm25(). A world is
        therefore ranked exactly as it would be alone in a store. Encrypted stores copy their
        keyed tokens, never the text. A store of one world keeps the store-wide path.
        """
        top_size = self.WORLD_INDEX_MAX
        if top_size <= 0 or world in self._large_worlds:
            return None  # a world only shrinks by a delete, which forgets _large_worlds
        try:
            with self._reading() as conn:
                n, top, others, gen = conn.execute(
                    _WORLD_SIZE, (world, top_size + 1, *[world] * 3)
                ).fetchone()
                if n and n > top_size:
                    if len(self._large_worlds) >= 10_000:
                        self._large_worlds.clear()
                    self._large_worlds.add(world)
                if not n or n > top_size or not others:
                    return None
                name = _world_index(
                    conn,
                    world,
                    f"{n}:{top}:{gen}",
                    int(n),
                    self.WORLD_INDEX_SLOTS,
                    self.WORLD_INDEX_ATOMS,
                    external=self._external_text,
                )
                chosen = list(terms)
                tokens = self._tokens(terms) if n * len(terms) > self.WORK_BUDGET else None
                if tokens is not None:
                    uniq = list(dict.fromkeys(tokens))
                    df = dict(
                        conn.execute(
                            f"SELECT term, doc FROM temp.{name}_vocab "
                            f"WHERE term IN ({','.join('?' * len(uniq))})",
                            uniq,
                        ).fetchall()
                    )
                    chosen = keep_rarest(
                        terms, [int(df.get(t, 0)) for t in tokens], int(n), self.WORK_BUDGET
                    )
                if not chosen:
                    return []
                # As on the shared index: over-fetch, filter, and rank every match only if
                # too few of the best survive the filter.
                query, fetch = fts_query(chosen), max(4 * limit, 256)
                ranked = conn.execute(
                    f"SELECT rowid, rank FROM temp.{name} WHERE {name} MATCH ? ORDER BY rank "
                    "LIMIT ?",
                    (query, fetch),
                ).fetchall()
                allowed = self.filter_seqs(
                    world, [r[0] for r in ranked], spec, quarantined=quarantined
                )
                rows = [r for r in ranked if r[0] in allowed][:limit]
                if len(rows) < limit and len(ranked) == fetch:
                    ranked = conn.execute(
                        f"SELECT rowid, rank FROM temp.{name} WHERE {name} MATCH ? ORDER BY rank",
                        (query,),
                    ).fetchall()
                    allowed = self.filter_seqs(
                        world, [r[0] for r in ranked], spec, quarantined=quarantined
                    )
                    rows = [r for r in ranked if r[0] in allowed][:limit]
        except sqlite3.Error as exc:
            raise StorageError(f"storage read failed: {exc}") from exc
        return _relevance(rows)

    def _tokens(self: _Store, terms: Sequence[str]) -> list[str] | None:
        """The index's own tokens (porter stems) for ``terms``, one per term, or ``None``.

        Asked of SQLite itself, through a one-row FTS5 table with the same tokenizer in this
        connection's temp schema, so the stems always match the index's.
        """
        missing = [t for t in dict.fromkeys(terms) if t not in self._stems]
        if missing:
            try:
                with self._reading() as conn:
                    if id(conn) not in self._stemmer_ready:
                        conn.execute(
                            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.stem USING fts5(t, "
                            "tokenize='porter unicode61 remove_diacritics 2')"
                        )
                        conn.execute(
                            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.stem_vocab "
                            "USING fts5vocab(temp, stem, 'instance')"
                        )
                        self._stemmer_ready.add(id(conn))
                    conn.execute("DELETE FROM temp.stem")
                    conn.execute(
                        "INSERT INTO temp.stem(rowid, t) VALUES(1, ?)", (" ".join(missing),)
                    )
                    rows = conn.execute(
                        "SELECT term FROM temp.stem_vocab ORDER BY offset"
                    ).fetchall()
            except sqlite3.Error:
                return None
            if len(rows) != len(missing):
                return None  # a term split into several tokens: no safe mapping, prune nothing
            if len(self._stems) > 100_000:
                self._stems.clear()
            for t, r in zip(missing, rows, strict=True):
                self._stems[t] = str(r[0])
        return [self._stems[t] for t in terms]


def keep_rarest(terms: Sequence[str], counts: Sequence[int], total: int, floor: int) -> list[str]:
    """The pruning rule of :meth:`LexicalSearch._prune_common`: ``counts[i]`` is the number of
    documents (of ``total``) holding ``terms[i]``, ``floor`` the work budget's least value."""
    budget = max(floor, 0.03 * total)
    df = dict(zip(terms, counts, strict=True))
    if sum(df.values()) <= budget:
        return list(terms)
    ranked = sorted(terms, key=lambda t: df[t])
    if df[ranked[0]] > max(floor, 0.10 * total):
        return []
    kept: list[str] = []
    work = 0
    for t in ranked:
        d = df[t]
        if kept and work + d > budget:
            break
        kept.append(t)
        work += d
    return kept


def _relevance(rows: Sequence[Any]) -> list[tuple[int, float]]:
    # FTS5's bm25() is "lower is better" and negative; relevance is its negation.
    return [(int(seq), -float(s)) for seq, s in rows if -float(s) > 0] or [
        (int(seq), 1e-6) for seq, _ in rows
    ]


# The asking world's size (up to a bound), its newest seq, whether other worlds exist and the
# store's generation (a reindex rewrites index text): together they say whether a world's own
# index is still current (seqs are never reused, so a delete or an append changes the first two).
_WORLD_SIZE = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM main.atoms WHERE world=? LIMIT ?)), "
    "(SELECT max(seq) FROM main.atoms WHERE world=?), "
    "EXISTS(SELECT 1 FROM main.atoms WHERE world<?) OR "
    "EXISTS(SELECT 1 FROM main.atoms WHERE world>?), "
    "(SELECT value FROM main.meta WHERE key='generation')"
)
_uses = itertools.count(1)


def _world_index(
    conn: sqlite3.Connection,
    world: str,
    version: str,
    size: int,
    slots: int,
    atoms: int,
    *,
    external: bool,
) -> str:
    """The name of a temp FTS5 table of ``conn`` holding ``world``'s index text at ``version``.

    Which world each table holds is kept in the connection's own temp schema (``world_text``),
    so it lives and dies with the tables. At most ``slots`` worlds and ``atoms`` atoms are
    held; the least recently used worlds are let go first. ``external``: the store's index
    reads its text from ``atoms_text`` (schema 2, plain), else it keeps its own copy.
    """
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS world_text(name TEXT PRIMARY KEY, world TEXT UNIQUE, "
        "version TEXT NOT NULL, atoms INTEGER NOT NULL, used INTEGER NOT NULL)"
    )
    used = next(_uses)
    hit = conn.execute(
        "SELECT name, version FROM temp.world_text WHERE world=?", (world,)
    ).fetchone()
    if hit is not None and hit[1] == version:
        conn.execute("UPDATE temp.world_text SET used=? WHERE name=?", (used, hit[0]))
        return str(hit[0])
    held = [
        (str(n), int(a))
        for n, a in conn.execute(
            "SELECT name, atoms FROM temp.world_text WHERE world<>? ORDER BY used", (world,)
        )
    ]
    # Let the least recently used worlds go until this one fits.
    while held and (len(held) >= slots or sum(a for _, a in held) + size > atoms):
        gone, _ = held.pop(0)
        conn.execute(f"INSERT INTO temp.{gone}({gone}) VALUES('delete-all')")
        conn.execute("DELETE FROM temp.world_text WHERE name=?", (gone,))
    if hit is not None:
        name = str(hit[0])
    else:
        taken = {n for n, _ in held}
        name = next(
            f"world_text_{i}" for i in range(len(taken) + 1) if f"world_text_{i}" not in taken
        )
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name} USING fts5(text, content='', "
            "tokenize='porter unicode61 remove_diacritics 2')"
        )
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name}_vocab "
            f"USING fts5vocab(temp, {name}, 'row')"
        )
    conn.execute("DELETE FROM temp.world_text WHERE name=? OR world=?", (name, world))
    conn.execute(f"INSERT INTO temp.{name}({name}) VALUES('delete-all')")
    conn.execute(
        f"INSERT INTO temp.{name}(rowid, text) SELECT a.seq, {TEXT_EXPR} FROM main.atoms a "
        "WHERE a.world=? ORDER BY a.seq"
        if external
        else f"INSERT INTO temp.{name}(rowid, text) SELECT c.id, c.c0 FROM main.atoms a "
        "JOIN main.fts_content c ON c.id = a.seq WHERE a.world=? ORDER BY a.seq",
        (world,),
    )
    conn.execute(
        "INSERT INTO temp.world_text(name, world, version, atoms, used) VALUES(?, ?, ?, ?, ?)",
        (name, world, version, size, used),
    )
    return name
