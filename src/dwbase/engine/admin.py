"""Worlds and their policy: lifecycle atoms (create, archive, resume), listing, set_policy.

Lifecycle and policy are atoms like any other (``world_meta`` / ``world_status:<s>`` and
``policy:*`` labels), written through the writer so they are validated, permission-checked,
chained and published like every write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .. import policy as policy_mod
from ..errors import CapabilityDeniedError, InvalidInputError, NotFoundError
from ..model import validate_world
from ..results import AtomId
from ..security.caps import FULL_ACCESS, Caller
from ..storage.base import Storage
from .worlds import WorldCache

SYSTEM_WORKER = "dwbase"


class WorldAdmin:
    """World lifecycle and policy; writes go through ``remember`` (the writer's)."""

    def __init__(
        self, *, storage: Storage, worlds: WorldCache, remember: Callable[..., AtomId]
    ) -> None:
        self._storage = storage
        self._worlds = worlds
        self._remember = remember

    def _world_event(
        self,
        world: str,
        status: str,
        description: str | None,
        labels: Sequence[str],
        caller: Caller | None,
    ) -> AtomId:
        validate_world(world)
        payload: dict[str, Any] = {"event": status, "world": world}
        if description is not None:
            payload["description"] = description
        return self._remember(
            world,
            (caller.worker if caller and caller.worker else SYSTEM_WORKER),
            "observation",
            payload,
            labels=["world_meta", f"world_status:{status}", *labels],
            caller=caller,
        )

    def create_world(
        self,
        world: str,
        *,
        description: str | None = None,
        labels: Sequence[str] = (),
        caller: Caller | None = None,
    ) -> AtomId:
        """Record a world's creation (idempotent in effect: the world is active)."""
        return self._world_event(world, "active", description, labels, caller)

    def archive_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        # Permission first: a 404 must not tell a caller which forbidden worlds exist.
        (caller or FULL_ACCESS).require_write(
            validate_world(world), labels=["world_status:archived"]
        )
        if world not in self._storage.worlds():
            raise NotFoundError(f"world {world!r} has no atoms", world=world)
        return self._world_event(world, "archived", None, (), caller)

    def resume_world(self, world: str, *, caller: Caller | None = None) -> AtomId:
        (caller or FULL_ACCESS).require_write(validate_world(world), labels=["world_status:active"])
        if world not in self._storage.worlds():
            raise NotFoundError(f"world {world!r} has no atoms", world=world)
        return self._world_event(world, "active", None, (), caller)

    def list_worlds(
        self, *, include_archived: bool = False, caller: Caller | None = None
    ) -> list[str]:
        who = caller or FULL_ACCESS
        return [
            w
            for w in self._storage.worlds()
            if who.can_read(w) and (include_archived or self._worlds.status(w) != "archived")
        ]

    def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
        caller: Caller | None = None,
    ) -> AtomId:
        """Record a policy for ``world`` as an atom of ``policy:<world>`` (see ``policy.py``).

        The atom goes to ``policy:<world>``, as in the original DWBase, so the world's own
        memory (``replay``, ``ask``) holds only what its agents wrote. A policy world itself
        (``policy:<w>``, ``tenant:<id>/policy``) takes the atom directly. The caller needs the
        policy capability for ``world``.
        """
        labels = policy_mod.policy_labels(
            retention_days=retention_days,
            retention_min_days=retention_min_days,
            min_importance=min_importance,
            replication_allow=list(replication_allow) if replication_allow else None,
            replication_deny=list(replication_deny) if replication_deny else None,
        )
        if not labels:
            raise InvalidInputError("give at least one policy setting", field="policy")
        validate_world(world)
        who = caller or FULL_ACCESS
        if not who.can_set_policy(world):
            raise CapabilityDeniedError(
                f"{who.name} may not change the policy of world {world!r}", world=world
            )
        target = world if policy_mod.is_policy_world(world) else validate_world("policy:" + world)
        return self._remember(
            target,
            caller.worker if caller and caller.worker else SYSTEM_WORKER,
            "observation",
            {"policy": labels, "world": world},
            labels=labels,
            # The policy capability for ``world`` is what lets a caller write its policy world.
            caller=replace(FULL_ACCESS, worker=who.worker, name=who.name),
        )
