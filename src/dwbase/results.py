"""Small result types the engine returns (kept apart so every engine module can use them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class AtomId(str):
    """An atom id (a ``str``) that also says whether the atom was quarantined and why."""

    quarantined: str | None = None

    @classmethod
    def make(cls, value: str, quarantined: str | None = None) -> AtomId:
        out = cls(value)
        out.quarantined = quarantined
        return out


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: list[str]
    duplicates: list[str]
    refused: dict[str, str]


@dataclass(slots=True)
class GcReport:
    evicted: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_world: dict[str, int] = field(default_factory=dict)

    def add(self, world: str, reason: str, n: int) -> None:
        if n:
            self.evicted += n
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n
            self.by_world[world] = self.by_world.get(world, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "evicted": self.evicted,
            "by_reason": dict(self.by_reason),
            "by_world": dict(self.by_world),
        }


@dataclass(slots=True)
class Counters:
    atoms_total: int = 0
    quarantine_total: int = 0
    gc_evictions_total: int = 0
    asks_total: int = 0
