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

from .model import Answer, FilterSpec, Hit, StoredAtom
from .ranking import RankingWeights, link_effect, recency
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
    found: dict[int, StoredAtom] = {}
    lexical: dict[int, float] = {}
    semantic: dict[int, float] = {}
    sources: dict[int, list[str]] = {}

    def note(seq: int, source: str) -> None:
        sources.setdefault(seq, []).append(source)

    for s in storage.scan(
        base,
        spec,
        quarantined=quarantined,
        descending=True,
        limit=max(weights.recency_window, limit if rank != "hybrid" else 0),
    ):
        found[s.seq] = s
        note(s.seq, "recency")

    if rank == "hybrid":
        terms = query_terms(text)
        if terms:
            for seq, rel in storage.search_text(
                base, terms, weights.candidates, spec=spec, quarantined=quarantined
            ):
                lexical[seq] = rel
                note(seq, "lexical")
        _semantic(
            engine,
            base,
            quarantined,
            text,
            spec,
            weights,
            limit,
            query_vector,
            semantic,
            found,
            warnings,
        )
        for seq in semantic:
            note(seq, "semantic")

    missing = [q for q in sources if q not in found]
    if missing:
        found.update(storage.get_seqs(missing))
    cands = [found[q] for q in sources if q in found]
    if not cands:
        return Answer(world=world, text="", supporting_atoms=[], hits=[], warnings=warnings)

    counts = storage.link_counts([s.atom.id for s in cands], as_of_us=spec.as_of_us)
    if current_only:
        cands = [s for s in cands if not counts.get(s.atom.id, {}).get("supersedes")]
    newest = max((s.ts_us for s in cands), default=0)
    best_lex = max(lexical.values(), default=0.0) or 1.0
    trust_of = engine.options.trust
    default_trust = engine.options.default_trust
    scored: list[tuple[float, int, StoredAtom, dict[str, float]]] = []
    for s in cands:
        parts = {
            "lexical": weights.lexical * (lexical.get(s.seq, 0.0) / best_lex),
            "semantic": weights.semantic * max(0.0, semantic.get(s.seq, 0.0)),
            "recency": weights.recency * recency(newest - s.ts_us, weights.recency_half_life_hours),
            "importance": weights.importance * s.atom.importance,
            "links": link_effect(counts.get(s.atom.id, {})),
            "trust": weights.trust * (trust_of.get(s.atom.worker, default_trust) - 0.5),
        }
        score = sum(parts.values())
        if rank == "recency":
            key = float(s.ts_us)
        elif rank == "importance":
            key = s.atom.importance
        else:
            key = score
        scored.append((key, s.seq, s, {k: round(v, 6) for k, v in parts.items()}))
    if rank == "importance":
        scored.sort(key=lambda x: (-x[0], -x[2].ts_us, -x[1]))
    else:
        scored.sort(key=lambda x: (-x[0], -x[1]))
    hits = [
        Hit(
            atom=s.visible_atom(),
            score=round(sum(parts.values()), 6),
            parts=parts,
            sources=tuple(sources[seq]),
        )
        for _, seq, s, parts in scored[:limit]
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
    found: dict[int, StoredAtom],
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
        need = [q for q, _ in results if q not in found]
        if need:
            found.update(engine.storage.get_seqs(need))
        passed = 0
        for seq, score in results:
            s = found.get(seq)
            if s is not None and spec.matches(s):
                out[seq] = score
                passed += 1
        if spec.is_open or passed >= limit or k >= len(idx):
            return
        k *= 8
