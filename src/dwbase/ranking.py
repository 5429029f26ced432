"""How ``ask`` scores candidates.

For ``rank="hybrid"`` (the default) each candidate gets a *relevance*

    rel(a) = w_lexical  * lexical      # BM25 relevance, divided by the best in this answer (0..1)
           + w_semantic * semantic     # cosine of question and atom vectors, clipped at 0

and the score

    score = rel(a)                     # parts "lexical" and "semantic"
          + context_prev * rel(prev)   # part "context": the atom just before it in the world
          + context_next * rel(next)   #   and the one just after, if within context_gap_hours
          + w_recency   * recency      # 0.5 ** (age / recency_half_life), age from the newest
                                       #   candidate's event time (0..1)
          + w_importance* importance   # the atom's importance (0..1)
          + links                      # supersedes -1.0, contradicts -0.3 each, confirms +0.2 each
          + w_trust     * (trust - 0.5)  # the writer's configured trust (default 0.5)

and every hit reports each term in ``parts``. The context terms let an atom inherit part of the
relevance of its neighbours in the world's timeline: an answer is usually right after the
question that prompted it, a result right after the action. Defaults were chosen by
measurement (``docs/retrieval.md``). ``rank="recency"`` orders by event time (newest
first), ``rank="importance"`` by importance then event time; their hits still report parts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidInputError

RANK_MODES = ("hybrid", "recency", "importance")

LINK_EFFECTS = {"supersedes": -1.0, "contradicts": -0.3, "confirms": 0.2}


@dataclass(frozen=True, slots=True)
class RankingWeights:
    lexical: float = 0.6
    semantic: float = 0.4
    context_prev: float = 0.5
    context_next: float = 0.2
    context_gap_hours: float = 2.0
    recency: float = 0.02
    importance: float = 0.05
    trust: float = 0.2
    recency_half_life_hours: float = 24.0 * 7
    recency_window: int = 32
    candidates: int = 64

    def with_overrides(self, overrides: dict[str, Any] | None) -> RankingWeights:
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in known:
                raise InvalidInputError(
                    f"unknown ranking weight {key!r}; known: {', '.join(sorted(known))}",
                    field="weights",
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise InvalidInputError(f"ranking weight {key} must be a number", field="weights")
            if value < 0:
                raise InvalidInputError(
                    f"ranking weight {key} must not be negative", field="weights"
                )
            clean[key] = int(value) if key in ("recency_window", "candidates") else float(value)
        return replace(self, **clean)


def link_effect(counts: dict[str, int]) -> float:
    effect = 0.0
    if counts.get("supersedes"):
        effect += LINK_EFFECTS["supersedes"]
    effect += LINK_EFFECTS["contradicts"] * counts.get("contradicts", 0)
    effect += LINK_EFFECTS["confirms"] * counts.get("confirms", 0)
    return effect


def recency(age_us: int, half_life_hours: float) -> float:
    if half_life_hours <= 0:
        return 0.0
    age_h = max(0, age_us) / 3_600_000_000
    return float(0.5 ** (age_h / half_life_hours))
