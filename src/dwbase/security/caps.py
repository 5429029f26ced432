"""A caller's capabilities, checked by the engine on every read and write path.

World patterns: ``*`` (everything), ``prefix*`` (a prefix), or an exact world key. A caller
that may read ``W`` may also read ``quarantine:W`` only if a pattern matches that key too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import CapabilityDeniedError


def world_matches(world: str, patterns: Sequence[str]) -> bool:
    for p in patterns:
        if p == "*" or p == world or (p.endswith("*") and world.startswith(p[:-1])):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling and what they may do. ``None`` anywhere means "no limit"."""

    worker: str | None = None
    read: tuple[str, ...] = ("*",)
    write: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    importance_cap: float | None = None
    name: str = "caller"

    def can_read(self, world: str) -> bool:
        return world_matches(world, self.read)

    def can_write(self, world: str) -> bool:
        return world_matches(world, self.write)

    def require_read(self, world: str) -> None:
        if not self.can_read(world):
            raise CapabilityDeniedError(f"{self.name} may not read world {world!r}", world=world)

    def require_write(
        self,
        world: str,
        *,
        kind: str | None = None,
        labels: Sequence[str] = (),
        importance: float | None = None,
    ) -> None:
        if not self.can_write(world):
            raise CapabilityDeniedError(f"{self.name} may not write world {world!r}", world=world)
        if kind is not None and self.kinds is not None and kind not in self.kinds:
            raise CapabilityDeniedError(
                f"{self.name} may not write atoms of kind {kind!r}", kind=kind
            )
        if self.labels is not None:
            for label in labels:
                if label not in self.labels:
                    raise CapabilityDeniedError(
                        f"{self.name} may not use label {label!r}", label=label
                    )
        if (
            importance is not None
            and self.importance_cap is not None
            and importance > self.importance_cap
        ):
            raise CapabilityDeniedError(
                f"importance {importance} is above this caller's cap {self.importance_cap}",
                importance=importance,
                cap=self.importance_cap,
            )


FULL_ACCESS = Caller(name="embedded caller")
