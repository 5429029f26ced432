"""Small result types the engine returns (kept apart so every engine module can use them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import QUARANTINE_PREFIX


class AtomId(str):
    """An atom id (a ``str``) that also says whether the write was held in quarantine.

    A held write is stored, but in ``quarantine:<world>``, not in the world it named: asks
    and replays of that world do not see it until an admin releases it.

    >>> import dwbase
    >>> db = dwbase.open(":memory:")
    >>> aid = db.remember("ml", "trainer", payload_json='{"loss": NaN}')
    >>> aid.held, aid.held_reason, aid.held_world
    (True, 'impossible_number', 'quarantine:ml')
    >>> db.remember("ml", "trainer", payload={"text": "loss became NaN"}).held
    False
    """

    quarantined: str | None = None
    """Why the write was held (``impossible_number``, ``low_trust``, ``burst``), or ``None``."""
    world: str | None = None
    """The world the atom was written to (its own, not ``quarantine:<world>``), when known."""

    @classmethod
    def make(cls, value: str, quarantined: str | None = None, world: str | None = None) -> AtomId:
        out = cls(value)
        out.quarantined = quarantined
        out.world = world
        return out

    @property
    def held(self) -> bool:
        """True when the atom was held in quarantine instead of being stored in its world."""
        return self.quarantined is not None

    @property
    def held_reason(self) -> str | None:
        """Why the write was held, or ``None`` for a normal write (same as ``quarantined``)."""
        return self.quarantined

    @property
    def held_world(self) -> str | None:
        """``quarantine:<world>`` for a held write (where readers find it), else ``None``."""
        if self.quarantined is None or not self.world:
            return None
        return QUARANTINE_PREFIX + self.world

    def __repr__(self) -> str:
        if self.quarantined is None:
            return str.__repr__(self)
        where = self.held_world or "quarantine"
        return f"AtomId({str.__repr__(self)}, held in {where}: {self.quarantined})"

    def to_wire(self) -> str | dict[str, Any]:
        """The node's answer for this id: the id string, or an object for a held write."""
        if self.quarantined is None:
            return str(self)
        return {
            "id": str(self),
            "quarantined": True,
            "world": self.held_world,
            "reason": self.quarantined,
        }

    @classmethod
    def from_wire(cls, value: Any) -> AtomId:
        """Read :meth:`to_wire`'s form back (a string, or an object for a held write)."""
        if isinstance(value, dict):
            world = str(value.get("world") or "")
            base = world[len(QUARANTINE_PREFIX) :] if world.startswith(QUARANTINE_PREFIX) else ""
            reason = value.get("reason") if value.get("quarantined") else None
            return cls.make(
                str(value["id"]), str(reason) if reason is not None else None, base or None
            )
        return cls.make(str(value))


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
