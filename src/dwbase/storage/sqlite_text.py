"""SQLite storage: lexical search over the FTS5 index, and the work budget that keeps it fast.

``LexicalSearch`` is a part of :class:`~dwbase.storage.sqlite.SQLiteStorage` (a mixin): it uses
the store's reader connections and filters, and keeps two caches that cannot mislead a query:
porter stems (they depend only on the tokenizer) and per-token document counts, which may lag
the store by 1% because they only steer which very common words a question leaves out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..model import FilterSpec
from .crypto import RecordCipher
from .sqlite_schema import fts_query


class _Store(Protocol):
    """What the lexical search uses of the SQLite store it is a part of."""

    WORK_BUDGET: int
    _stems: dict[str, str]
    _df: dict[str, tuple[int, int]]  # token -> (atoms holding it, max_seq when counted)
    _size_hint: int
    _stemmer_ready: set[int]
    _cipher: RecordCipher | None

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
        # FTS5's bm25() is "lower is better" and negative; relevance is its negation.
        return [(int(seq), -float(s)) for seq, s in rows if -float(s) > 0] or [
            (int(seq), 1e-6) for seq, _ in rows
        ]

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
        budget = max(self.WORK_BUDGET, 0.03 * total)
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
        df = {t: df_tok[tok] for t, tok in zip(terms, tokens, strict=True)}
        if sum(df.values()) <= budget:
            return list(terms)
        ranked = sorted(terms, key=lambda t: df[t])
        if df[ranked[0]] > max(self.WORK_BUDGET, 0.10 * total):
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
