"""Filters and cursors, read the same way on every read path (replay, ask, observe)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..model import QUARANTINE_PREFIX, AtomFilter, FilterSpec, validate_kind, validate_tags
from ..model import validate_world as _validate_world
from ..storage.base import Storage
from ..timeutil import parse_instant

FILTER_FIELDS = ("world", "kinds", "labels", "flags", "since", "until", "limit")


def filter_dict(flt: AtomFilter | Mapping[str, Any] | None) -> dict[str, Any]:
    """A filter (an :class:`AtomFilter` or its mapping) as a plain dict; unknown keys refused."""
    if flt is None:
        return {}
    if isinstance(flt, AtomFilter):
        return flt.to_dict()
    if not isinstance(flt, Mapping):
        raise InvalidInputError("filter must be an object", field="filter")
    unknown = set(flt) - set(FILTER_FIELDS)
    if unknown:
        raise InvalidInputError(
            f"unknown filter field(s): {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(FILTER_FIELDS)}",
            field="filter",
        )
    return dict(flt)


def merge_filter(
    world: str,
    flt: AtomFilter | Mapping[str, Any] | None,
    **fields: Any,
) -> dict[str, Any]:
    """``flt`` with the keyword ``fields`` that are not ``None`` laid over it; its world, if
    it names one, must be ``world``."""
    out = filter_dict(flt)
    fw = out.get("world")
    if fw not in (None, "", world):
        raise InvalidInputError(
            f"filter world {fw!r} differs from world {world!r}", field="filter.world"
        )
    for key, value in fields.items():
        if value is not None:
            out[key] = value
    return out


def spec(flt: Mapping[str, Any], as_of: str | None) -> FilterSpec:
    """The storage form of a filter dict (kinds, labels, flags, event times) and ``as_of``."""
    kinds = flt.get("kinds") or ()
    if isinstance(kinds, str):
        kinds = (kinds,)
    if not isinstance(kinds, list | tuple | set | frozenset):
        raise InvalidInputError("kinds must be a list of kinds", field="kinds")
    for k in kinds:
        validate_kind(k)
    since, until = flt.get("since"), flt.get("until")
    since_us = parse_instant(since, field="since") if since else None
    until_us = parse_instant(until, field="until") if until else None
    if since_us is not None and until_us is not None and since_us > until_us:
        raise InvalidInputError("since is after until", field="since")
    return FilterSpec(
        kinds=frozenset(kinds),
        labels=frozenset(validate_tags(flt.get("labels"), "labels")),
        flags=frozenset(validate_tags(flt.get("flags"), "flags")),
        since_us=since_us,
        until_us=until_us,
        as_of_us=parse_instant(as_of, field="as_of") if as_of else None,
    )


def limit(value: Any, default: int | None, maximum: int = 10_000) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError("limit must be a whole number of at least 1", field="limit")
    return min(value, maximum)


def split_world(world: str) -> tuple[str, bool]:
    """``("demo", True)`` for ``quarantine:demo`` (its held atoms), ``("demo", False)``."""
    if world.startswith(QUARANTINE_PREFIX):
        return _validate_world(world[len(QUARANTINE_PREFIX) :]), True
    return world, False


def cursor_seq(storage: Storage, after: str, world: str) -> int:
    """The seq of cursor atom ``after``, which must belong to ``world``.

    An id from another world is "not found" like an unknown one, so a cursor cannot be used to
    learn whether an atom exists in a world the caller may not read.
    """
    if not isinstance(after, str) or not after:
        raise InvalidInputError("after must be an atom id", field="after")
    cursor = storage.get(after)
    if cursor is None or cursor.atom.world != world:
        raise NotFoundError(f"cursor atom {after!r} does not exist in {world!r}", id=after)
    return cursor.seq
