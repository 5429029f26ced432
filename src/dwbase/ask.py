"""``ask``: gather candidates from three paths, rank them, summarise the best.

Candidate paths, all under the question's filter and the world's read scope:

* **recency** — the newest ``recency_window`` atoms (the reflex window);
* **lexical** — FTS5/BM25 over the payload text;
* **semantic** — vector search with the question's embedding (exact cosine, or the world's
  HNSW graph past ``Options.ann_threshold`` vectors);
* **context** — the atoms just before and after the most relevant candidates (an answer often
  has none of the question's words but follows the turn that does).

Every candidate gets its semantic score from the index, whichever path found it. While a
world's vector index is not ready (rebuilding after an embedder change) semantic search is
skipped and the answer says so in ``warnings``.

See :mod:`dwbase.ranking` for the score.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .errors import InvalidInputError
from .indexes import WorldIndex
from .model import Answer, FilterSpec, Hit
from .ranking import RankingWeights, link_effect, recency
from .storage.base import ScoreRow
from .text import query_terms
from .vector import exact as exact_mod
from .vector.exact import NO_TS, Context, Probe

if TYPE_CHECKING:
    from .embed import Embedder
    from .indexes import IndexManager
    from .options import Options
    from .storage.base import Storage


class AskContext(Protocol):
    """What an ask reads: the store, the embedder, the vector indexes and the options."""

    storage: Storage
    embedder: Embedder
    indexes: IndexManager
    options: Options

    def split_world(self, world: str) -> tuple[str, bool]: ...

    def world_dim(self, world: str) -> int: ...


# Part "context" through numpy arrays when numpy is there (the same figures as pure Python;
# tests compare the two by switching this off).
ARRAYS = True

PARTS = ("lexical", "semantic", "context", "recency", "importance", "links", "trust")


def _summary(hits: Sequence[Hit], n: int) -> str:
    lines: list[str] = []
    for hit in hits[:n]:
        text = " ".join(_texts(hit)).strip()
        if len(text) > 240:
            text = text[:237].rstrip() + "..."
        lines.append(f"- {text}" if text else f"- ({hit.atom.kind} {hit.atom.id})")
    return "\n".join(lines)


def _texts(hit: Hit) -> list[str]:
    try:
        payload = hit.atom.payload
    except ValueError:
        return [hit.atom.payload_json]
    if isinstance(payload, dict):
        for key in ("text", "content", "message", "summary"):
            if isinstance(payload.get(key), str):
                return [payload[key]]
    from .model import payload_text

    return [payload_text(payload)]


def run_ask(
    engine: AskContext,
    world: str,
    text: str,
    *,
    spec: FilterSpec,
    limit: int,
    rank: str,
    weights: RankingWeights,
    current_only: bool,
    query_vector: Sequence[float] | None,
) -> Answer:
    storage = engine.storage
    base, quarantined = engine.split_world(world)
    warnings: list[str] = []
    lexical: dict[int, float] = {}
    semantic: dict[int, float] = {}  # the cosine of every scored atom that has a vector
    context: _Neighbours | _NeighbourArrays | None = None
    recent = storage.recent_seqs(
        base,
        spec,
        max(weights.recency_window, limit if rank != "hybrid" else 0),
        quarantined=quarantined,
    )
    # seq -> the paths that found it, in the order they did
    sources: dict[int, list[str]] = {seq: ["recency"] for seq in recent}
    found = sources.setdefault

    idx: WorldIndex | None = None
    qvec: list[float] | None = None
    if rank == "hybrid":
        terms = query_terms(text)
        if terms:
            for seq, rel in storage.search_text(
                base, terms, weights.candidates, spec=spec, quarantined=quarantined
            ):
                lexical[seq] = rel
                found(seq, []).append("lexical")
        qvec = _query_vector(engine, base, text, query_vector, warnings)
        if qvec is not None:
            idx = engine.indexes.get(base, quarantined, warnings)
        if idx is not None and qvec is not None:
            probe = idx.exact.probe(qvec)
            for seq, score in _semantic(
                engine, idx, probe, base, quarantined, qvec, spec, weights, limit
            ):
                semantic[seq] = score
                found(seq, []).append("semantic")
            semantic.update(probe.scores([q for q in sources if q not in semantic]))
            if weights.context_prev or weights.context_next:
                context = _add_context(
                    engine, idx, probe, base, quarantined, spec, weights, lexical, semantic, sources
                )

    # Score from a few light columns; decode whole atoms only for the hits returned.
    rows = storage.score_rows([*sources, *(context.seqs() if context is not None else ())])
    cands = [
        r
        for q in sources
        if (r := rows.get(q)) is not None
        # Policy and lifecycle atoms are bookkeeping: only a match, never recency, brings them.
        and not (r.system and sources[q] == ["recency"])
    ]
    if not cands:
        return Answer(world=world, text="", supporting_atoms=[], hits=[], warnings=warnings)

    counts = storage.link_counts([r.id for r in cands], as_of_us=spec.as_of_us)
    if current_only:
        cands = [r for r in cands if not counts.get(r.id, {}).get("supersedes")]
    newest = max((r.ts_us for r in cands), default=0)
    best_lex = max(lexical.values(), default=0.0) or 1.0
    w_lex = weights.lexical / best_lex
    w_sem = weights.semantic
    rel_lex = {q: w_lex * v for q, v in lexical.items()}
    rel_sem = {q: w_sem * v for q, v in semantic.items() if v > 0.0}

    # The score's parts as columns, one entry per candidate, in PARTS order.
    half_life = weights.recency_half_life_hours
    trust_of, default_trust = engine.options.trust, engine.options.default_trust
    w_rec, w_imp, w_trust = weights.recency, weights.importance, weights.trust
    parts_rows = list(
        zip(
            [rel_lex.get(r.seq, 0.0) for r in cands],
            [rel_sem.get(r.seq, 0.0) for r in cands],
            (
                context.column(cands, rows, rel_lex, rel_sem, weights)
                if context is not None
                else [0.0] * len(cands)
            ),
            [w_rec * recency(newest - r.ts_us, half_life) for r in cands],
            [w_imp * r.importance for r in cands],
            [link_effect(counts[r.id]) if r.id in counts else 0.0 for r in cands],
            [w_trust * (trust_of.get(r.worker, default_trust) - 0.5) for r in cands],
            strict=True,
        )
    )
    # Best first; ties go to the later seq. Seqs are unique, so the index is never compared.
    if rank == "recency":
        keys: list[tuple[float, ...]] = [(float(r.ts_us), r.seq) for r in cands]
    elif rank == "importance":
        keys = [(r.importance, r.ts_us, r.seq) for r in cands]
    else:
        keys = [(sum(p), r.seq) for p, r in zip(parts_rows, cands, strict=True)]
    best = heapq.nlargest(limit, zip(keys, range(len(cands)), strict=True))
    top = [(cands[i].seq, parts_rows[i]) for _, i in best]
    full = storage.get_seqs([seq for seq, _ in top])
    hits = [
        Hit(
            atom=full[seq].visible_atom(),
            score=round(sum(parts), 6),
            parts={k: round(v, 6) for k, v in zip(PARTS, parts, strict=True)},
            sources=tuple(sources[seq]),
        )
        for seq, parts in top
        if seq in full
    ]
    if rank == "hybrid" and not lexical and not semantic:
        warnings.append(
            "no atom matched the question's words or meaning; hits are the most recent atoms"
        )
    return Answer(
        world=world,
        text=_summary(hits, engine.options.summary_hits),
        supporting_atoms=[h.atom for h in hits],
        hits=hits,
        warnings=warnings,
    )


class _Neighbours:
    """Each candidate's neighbours in the world, for part "context" (pure Python)."""

    def __init__(self, pairs: dict[int, tuple[int | None, int | None]]) -> None:
        self.pairs = pairs

    def seqs(self) -> list[int]:
        """The neighbours, whose score rows :meth:`column` reads."""
        return [n for pair in self.pairs.values() for n in pair if n is not None]

    def column(
        self,
        cands: Sequence[ScoreRow],
        rows: dict[int, ScoreRow],
        rel_lex: dict[int, float],
        rel_sem: dict[int, float],
        weights: RankingWeights,
    ) -> list[float]:
        """Part "context" of each candidate: its neighbours' relevance, if close enough in time."""
        w_prev, w_next = weights.context_prev, weights.context_next
        gap_us = weights.context_gap_hours * 3_600_000_000
        no_pair: tuple[int | None, int | None] = (None, None)
        lex, sem, pairs = rel_lex.get, rel_sem.get, self.pairs
        out: list[float] = []
        for r in cands:
            prev, nxt = pairs.get(r.seq, no_pair)
            total = 0.0
            if prev is not None and w_prev:
                row = rows.get(prev)
                if row is not None and abs(row.ts_us - r.ts_us) <= gap_us:
                    total += w_prev * (lex(prev, 0.0) + sem(prev, 0.0))
            if nxt is not None and w_next:
                row = rows.get(nxt)
                if row is not None and abs(row.ts_us - r.ts_us) <= gap_us:
                    total += w_next * (lex(nxt, 0.0) + sem(nxt, 0.0))
            out.append(total)
        return out


class _NeighbourArrays:
    """:class:`_Neighbours` as numpy arrays from :meth:`Probe.context`: the same figures.

    The neighbours' cosines and event times come with the arrays, so their score rows are
    not read, and the column is a few array operations instead of a loop per candidate.
    """

    def __init__(self, seqs: list[int], ctx: Context) -> None:
        self.srcs = seqs
        self.ctx = ctx

    def seqs(self) -> list[int]:
        return []

    def column(
        self,
        cands: Sequence[ScoreRow],
        rows: dict[int, ScoreRow],
        rel_lex: dict[int, float],
        rel_sem: dict[int, float],
        weights: RankingWeights,
    ) -> list[float]:
        np = exact_mod._np
        ctx, k = self.ctx, len(self.srcs)
        gap_us = weights.context_gap_hours * 3_600_000_000
        # Each array holds the k previous neighbours, then the k next ones.
        own = [r.ts_us if (r := rows.get(q)) is not None else 0 for q in self.srcs]
        ts = np.array(own + own, dtype=np.int64)
        known = ctx.ts != NO_TS  # no neighbour, or not a stored atom
        near = known & (np.abs(np.where(known, ctx.ts, ts) - ts) <= gap_us)
        rel = np.where(ctx.cos > 0.0, weights.semantic * ctx.cos, 0.0)
        if rel_lex:
            rel = np.array([rel_lex.get(q, 0.0) for q in ctx.seqs.tolist()]) + rel
        w = np.repeat([weights.context_prev, weights.context_next], k)
        part = np.where(near, w * rel, 0.0)
        by_seq = dict(zip(self.srcs, (part[:k] + part[k:]).tolist(), strict=True))
        return [by_seq[r.seq] for r in cands]


def _query_vector(
    engine: AskContext,
    base: str,
    text: str,
    query_vector: Sequence[float] | None,
    warnings: list[str],
) -> list[float] | None:
    """The unit query vector, or ``None`` (with a warning) when semantic search cannot run."""
    dim = engine.world_dim(base)
    if query_vector is not None:
        if len(query_vector) != dim:
            raise InvalidInputError(
                f"query vector has {len(query_vector)} dims, world {base!r} expects {dim}",
                field="vector",
                dims=len(query_vector),
                expected=dim,
            )
        qvec = list(query_vector)
        norm = sum(v * v for v in qvec) ** 0.5 or 1.0
        return [v / norm for v in qvec]
    if not text.strip():
        return None
    if engine.embedder.dim != dim:
        warnings.append(
            f"semantic search skipped: world {base!r} holds {dim}-dim vectors and the "
            f"embedder {engine.embedder.name!r} makes {engine.embedder.dim}; pass vector="
        )
        return None
    return engine.embedder.embed([text])[0]


def _semantic(
    engine: AskContext,
    idx: WorldIndex,
    probe: Probe,
    base: str,
    quarantined: bool,
    qvec: list[float],
    spec: FilterSpec,
    weights: RankingWeights,
    limit: int,
) -> list[tuple[int, float]]:
    """Nearest atoms under the filter: ``(seq, cosine)``, widening the search when it filters."""
    k = weights.candidates
    out: list[tuple[int, float]] = []
    while True:
        # exact search, or the graph's neighbours and every vector it has not taken in yet
        results = idx.top(probe, qvec, k)
        if spec.is_open:
            # The index of (world, quarantined) holds exactly the atoms this ask may see.
            return results
        allowed = engine.storage.filter_seqs(
            base, [q for q, _ in results], spec, quarantined=quarantined
        )
        out = [(q, s) for q, s in results if q in allowed]
        if len(out) >= limit or k >= len(idx.exact):
            return out
        k *= 8


def _add_context(
    engine: AskContext,
    idx: WorldIndex,
    probe: Probe,
    base: str,
    quarantined: bool,
    spec: FilterSpec,
    weights: RankingWeights,
    lexical: dict[int, float],
    semantic: dict[int, float],
    sources: dict[int, list[str]],
) -> _Neighbours | _NeighbourArrays:
    """Bring in the neighbours of the most relevant candidates; everyone's neighbours."""
    best_lex = max(lexical.values(), default=0.0) or 1.0
    w_lex, w_sem = weights.lexical, weights.semantic
    lex_get, sem_get = lexical.get, semantic.get
    rel = {
        q: w_lex * lex_get(q, 0.0) / best_lex + w_sem * max(0.0, sem_get(q, 0.0)) for q in sources
    }
    # Best first; equal relevance keeps the order the paths found them in (a stable sort).
    seeds = sorted(sources, key=rel.__getitem__, reverse=True)[: max(16, weights.candidates // 2)]
    neighbours = idx.exact.neighbours_many(seeds)
    fresh = list(
        dict.fromkeys(n for q in seeds for n in neighbours[q] if n is not None and n not in sources)
    )
    if fresh and not spec.is_open:
        allowed = engine.storage.filter_seqs(base, fresh, spec, quarantined=quarantined)
        fresh = [q for q in fresh if q in allowed]
    for q in fresh:
        sources.setdefault(q, []).append("context")
    if ARRAYS and exact_mod._np is not None:
        storage = engine.storage

        def ts_of(seqs: list[int]) -> dict[int, int]:
            return {q: r.ts_us for q, r in storage.score_rows(seqs).items()}

        semantic.update(probe.scores([q for q in fresh if q not in semantic]))
        srcs = list(sources)
        return _NeighbourArrays(srcs, probe.context(srcs, ts_of))
    neighbours.update(idx.exact.neighbours_many([q for q in sources if q not in neighbours]))
    # Every atom whose relevance is read (candidates and their neighbours) needs its cosine.
    need = {n for pair in neighbours.values() for n in pair if n is not None}
    semantic.update(probe.scores([q for q in (*sources, *need) if q not in semantic]))
    return _Neighbours(neighbours)
