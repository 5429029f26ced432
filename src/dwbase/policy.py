"""World policy from policy atoms (labels ``policy:key=value``).

Sources, least to most specific: ``tenant:<id>/policy`` (for ``tenant:<id>/…`` worlds),
``policy:<world>``, then the world itself. Within a source the latest atom wins per key;
a more specific source overrides a less specific one. ``retention_min_days`` is a floor: the
largest floor from any source bounds ``retention_days`` from below. ``retention_days=0``
means no expiry (as in the original DWBase), not "expire everything".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import StoredAtom


@dataclass(frozen=True, slots=True)
class Policy:
    retention_days: int | None = None
    retention_min_days: int | None = None
    min_importance: float | None = None
    replication_allow: tuple[str, ...] = ()
    replication_deny: tuple[str, ...] = ()

    @property
    def effective_retention_days(self) -> int | None:
        """Days atoms are kept, or None for no expiry.

        ``retention_days=0`` means no expiry, as in the original DWBase: a label must never
        delete data on a reading other than the original's (there, 0 deleted nothing), so a
        floor does not turn it into an expiry either.
        """
        if not self.retention_days:
            return None
        return max(self.retention_days, self.retention_min_days or 0)

    def allows_replication(self, world: str) -> bool:
        if any(fnmatch.fnmatchcase(world, p) for p in self.replication_deny):
            return False
        if self.replication_allow:
            return any(fnmatch.fnmatchcase(world, p) for p in self.replication_allow)
        return True

    def to_dict(self) -> dict[str, object]:
        return {
            "retention_days": self.retention_days,
            "retention_min_days": self.retention_min_days,
            "min_importance": self.min_importance,
            "replication_allow": list(self.replication_allow),
            "replication_deny": list(self.replication_deny),
        }


def is_policy_world(world: str) -> bool:
    """Whether ``world`` holds policy for other worlds (``policy:<w>``, ``tenant:<id>/policy``).

    >>> is_policy_world("policy:demo"), is_policy_world("tenant:acme/policy")
    (True, True)
    """
    if world.startswith("policy:"):
        return True
    return world.startswith("tenant:") and world.count("/") == 1 and world.endswith("/policy")


def policy_sources(world: str) -> list[str]:
    """Worlds whose policy atoms apply to ``world``, least specific first."""
    sources: list[str] = []
    if world.startswith("tenant:") and "/" in world:
        tenant = world.split("/", 1)[0]
        tenant_policy = tenant + "/policy"
        if tenant_policy != world:
            sources.append(tenant_policy)
    sources.append("policy:" + world)
    sources.append(world)
    return sources


def policy_labels(**values: object) -> list[str]:
    labels: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            labels.extend(f"policy:{key}={v}" for v in value)
        else:
            labels.append(f"policy:{key}={value}")
    return labels


def merge(sources: Sequence[Iterable[StoredAtom]]) -> Policy:
    values: dict[str, object] = {}
    floors: list[int] = []
    for atoms in sources:
        layer: dict[str, object] = {}
        for s in atoms:  # seq order: later atoms override earlier ones
            lists: dict[str, list[str]] = {}
            for label in s.atom.labels:
                if not label.startswith("policy:"):
                    continue
                key, _, raw = label[len("policy:") :].partition("=")
                if key in ("retention_days", "retention_min_days"):
                    layer[key] = int(raw)
                    if key == "retention_min_days":
                        floors.append(int(raw))
                elif key == "min_importance":
                    layer[key] = float(raw)
                elif key in ("replication_allow", "replication_deny"):
                    lists.setdefault(key, []).append(raw)
            for key, pats in lists.items():
                layer[key] = tuple(pats)
        values.update(layer)
    rd = values.get("retention_days")
    mi = values.get("min_importance")
    ra = values.get("replication_allow", ())
    rn = values.get("replication_deny", ())
    return Policy(
        retention_days=rd if isinstance(rd, int) else None,
        retention_min_days=max(floors) if floors else None,
        min_importance=mi if isinstance(mi, float) else None,
        replication_allow=ra if isinstance(ra, tuple) else (),
        replication_deny=rn if isinstance(rn, tuple) else (),
    )
