"""``ask``: gather candidates from three paths, rank them, summarise the best.

Candidate paths, all under the question's filter and the world's read scope:

* **recency** — the newest ``recency_window`` atoms (the reflex window);
* **lexical** — FTS5/BM25 over the payload text;
* **semantic** — vector search with the question's embedding (exact cosine).

See :mod:`dwbase.ranking` for the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .model import Answer, FilterSpec, Hit
from .ranking import RankingWeights, link_effect, recency
from .storage.base import ScoreRow
from .text import query_terms

if TYPE_CHECKING:
    from .engine import Engine


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
    engine: Engine,
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
    base, quarantined = engine._split_world(world)
    warnings: list[str] = []
    lexical: dict[int, float] = {}
    semantic: dict[int, float] = {}
    sources: dict[int, list[str]] = {}

    def note(seq: int, source: str) -> None:
        sources.setdefault(seq, []).append(source)

    recent = storage.recent_seqs(
        base,
        spec,
        max(weights.recency_window, limit if rank != "hybrid" else 0),
        quarantined=quarantined,
    )
    for seq in recent:
        note(seq, "recency")

    if rank == "hybrid":
        terms = query_terms(text)
        if terms:
            for seq, rel in storage.search_text(
                base, terms, weights.candidates, spec=spec, quarantined=quarantined
            ):
                lexical[seq] = rel
                note(seq, "lexical")
        _semantic(
            engine, base, quarantined, text, spec, weights, limit, query_vector, semantic, warnings
        )
        for seq in semantic:
            note(seq, "semantic")

    # Score from a few light columns; decode whole atoms only for the hits returned.
    rows = storage.score_rows(list(sources))
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
    trust_of = engine.options.trust
    default_trust = engine.options.default_trust
    scored: list[tuple[float, int, ScoreRow, dict[str, float]]] = []
    for r in cands:
        parts = {
            "lexical": weights.lexical * (lexical.get(r.seq, 0.0) / best_lex),
            "semantic": weights.semantic * max(0.0, semantic.get(r.seq, 0.0)),
            "recency": weights.recency * recency(newest - r.ts_us, weights.recency_half_life_hours),
            "importance": weights.importance * r.importance,
            "links": link_effect(counts.get(r.id, {})),
            "trust": weights.trust * (trust_of.get(r.worker, default_trust) - 0.5),
        }
        score = sum(parts.values())
        if rank == "recency":
            key = float(r.ts_us)
        elif rank == "importance":
            key = r.importance
        else:
            key = score
        scored.append((key, r.seq, r, {k: round(v, 6) for k, v in parts.items()}))
    if rank == "importance":
        scored.sort(key=lambda x: (-x[0], -x[2].ts_us, -x[1]))
    else:
        scored.sort(key=lambda x: (-x[0], -x[1]))
    top = scored[:limit]
    full = storage.get_seqs([seq for _, seq, _, _ in top])
    hits = [
        Hit(
            atom=full[seq].visible_atom(),
            score=round(sum(parts.values()), 6),
            parts=parts,
            sources=tuple(sources[seq]),
        )
        for _, seq, _, parts in top
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


def _semantic(
    engine: Engine,
    base: str,
    quarantined: bool,
    text: str,
    spec: FilterSpec,
    weights: RankingWeights,
    limit: int,
    query_vector: Sequence[float] | None,
    out: dict[int, float],
    warnings: list[str],
) -> None:
    from .errors import InvalidInputError

    dim = engine._world_dim(base)
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
        qvec = [v / norm for v in qvec]
    elif not text.strip():
        return
    elif engine.embedder.dim != dim:
        warnings.append(
            f"semantic search skipped: world {base!r} holds {dim}-dim vectors and the "
            f"embedder {engine.embedder.name!r} makes {engine.embedder.dim}; pass vector="
        )
        return
    else:
        qvec = engine.embedder.embed([text])[0]
    idx = engine._index(base, quarantined)
    k = weights.candidates
    while True:
        results = idx.search(qvec, k)
        if spec.is_open and not quarantined:
            # The index of (world, quarantined) holds exactly the atoms this ask may see.
            out.update(results)
            return
        allowed = engine.storage.filter_seqs(
            base, [q for q, _ in results], spec, quarantined=quarantined
        )
        for seq, score in results:
            if seq in allowed:
                out[seq] = score
        if len(allowed) >= limit or k >= len(idx):
            return
        k *= 8
