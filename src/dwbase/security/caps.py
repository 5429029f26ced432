"""A caller's capabilities, checked by the engine on every read and write path.

World patterns: ``*`` (everything), ``prefix*`` (a prefix), or an exact world key. A caller
that may read ``W`` may also read ``quarantine:W`` only if a pattern matches that key too.

Besides reading and writing, three capabilities are scoped to worlds of their own:

* ``operate`` — operator actions: list, release and drop held (quarantined) atoms, run gc,
  rebuild every index at once;
* ``policy`` — write policy atoms (labels ``policy:*``, e.g. ``retention_days``);
* ``manage`` — world lifecycle (labels ``world_status:*``: create, archive, resume).

A control label is a write like any other as well, so it needs ``write`` on the world too.

>>> c = Caller(read=("demo*",), write=("demo",), policy=("demo",))
>>> c.can_set_policy("demo"), c.can_manage("demo"), c.can_operate("demo")
(True, False, False)
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
    """Who is calling and what they may do. ``None`` means "no limit"; read and write default
    to every world, the control capabilities (operate, policy, manage) to none."""

    worker: str | None = None
    read: tuple[str, ...] = ("*",)
    write: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    importance_cap: float | None = None
    name: str = "caller"
    # Control capabilities are never implied by read or write: none unless given.
    operate: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()
    manage: tuple[str, ...] = ()

    def can_read(self, world: str) -> bool:
        return world_matches(world, self.read)

    def can_write(self, world: str) -> bool:
        return world_matches(world, self.write)

    def can_operate(self, world: str) -> bool:
        return world_matches(world, self.operate)

    def can_set_policy(self, world: str) -> bool:
        return world_matches(world, self.policy)

    def can_manage(self, world: str) -> bool:
        return world_matches(world, self.manage)

    @property
    def operates_everywhere(self) -> bool:
        """True when operator actions reach every world (e.g. gc's store-wide disk budget)."""
        return "*" in self.operate

    def require_operate(self, world: str | None = None) -> None:
        """Operator rights on ``world``; with no world, on at least one world."""
        if world is None:
            if not self.operate:
                raise CapabilityDeniedError(
                    f"{self.name} has no operator capability (quarantine, gc, index rebuild)"
                )
        elif not self.can_operate(world):
            raise CapabilityDeniedError(
                f"{self.name} may not perform operator actions in world {world!r}", world=world
            )

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
        for label in labels:
            if label.startswith("policy:") and not self.can_set_policy(world):
                raise CapabilityDeniedError(
                    f"{self.name} may not change the policy of world {world!r} "
                    f"(label {label!r} needs the policy capability)",
                    world=world,
                    label=label,
                )
            if label.startswith("world_status:") and not self.can_manage(world):
                raise CapabilityDeniedError(
                    f"{self.name} may not change the lifecycle of world {world!r} "
                    f"(label {label!r} needs the manage capability)",
                    world=world,
                    label=label,
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


FULL_ACCESS = Caller(name="embedded caller", operate=("*",), policy=("*",), manage=("*",))
"""The embedded owner of a store (``caller=None``): every capability in every world."""
