"""Filters and cursors, read the same way on every read path (replay, ask, observe).

Every edge builds one :class:`~dwbase.model.AtomFilter` (the node from its request, the CLI
from its options, the client sends its wire form) and the engine takes it, or the mapping of
the same fields a library caller may pass, which :func:`as_filter` turns into one. Only
:func:`spec` reads a filter's meaning: it validates it and makes the storage
:class:`~dwbase.model.FilterSpec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..model import QUARANTINE_PREFIX, AtomFilter, FilterSpec, validate_kind, validate_tags
from ..model import validate_world as _validate_world
from ..storage.base import Storage
from ..timeutil import parse_instant

FILTER_FIELDS = tuple(f.name for f in dataclasses.fields(AtomFilter))
_LISTS = ("kinds", "labels", "flags")


def as_filter(flt: AtomFilter | Mapping[str, Any] | None) -> AtomFilter:
    """``flt`` as an :class:`AtomFilter`: a mapping's unknown keys are refused, its lists
    become tuples (a lone kind string is one kind); values are checked by :func:`spec`."""
    if flt is None:
        return AtomFilter()
    if isinstance(flt, AtomFilter):
        return flt
    if not isinstance(flt, Mapping):
        raise InvalidInputError("filter must be an object", field="filter")
    unknown = set(flt) - set(FILTER_FIELDS)
    if unknown:
        raise InvalidInputError(
            f"unknown filter field(s): {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(FILTER_FIELDS)}",
            field="filter",
        )
    fields = {k: v for k, v in flt.items() if v is not None}
    for key in _LISTS:
        value = fields.get(key)
        if isinstance(value, str) and key == "kinds":
            fields[key] = (value,)
        elif isinstance(value, list | tuple | set | frozenset):
            fields[key] = tuple(value)
        elif value is not None:
            raise InvalidInputError(f"{key} must be a list of strings", field=key)
    return AtomFilter(**fields)


def merge_filter(
    world: str,
    flt: AtomFilter | Mapping[str, Any] | None,
    **fields: Any,
) -> AtomFilter:
    """``flt`` with the keyword ``fields`` that are not ``None`` laid over it; its world, if
    it names one, must be ``world``."""
    base = as_filter(flt)
    if base.world not in (None, "", world):
        raise InvalidInputError(
            f"filter world {base.world!r} differs from world {world!r}", field="filter.world"
        )
    return as_filter({**_set_fields(base), **{k: v for k, v in fields.items() if v is not None}})


def _set_fields(flt: AtomFilter) -> dict[str, Any]:
    return {k: v for k, v in flt.to_dict().items() if v not in (None, [])}


def spec(flt: AtomFilter, as_of: str | None) -> FilterSpec:
    """The storage form of a filter (kinds, labels, flags, event times) and ``as_of``."""
    for k in flt.kinds:
        validate_kind(k)
    since_us = parse_instant(flt.since, field="since") if flt.since else None
    until_us = parse_instant(flt.until, field="until") if flt.until else None
    if since_us is not None and until_us is not None and since_us > until_us:
        raise InvalidInputError("since is after until", field="since")
    return FilterSpec(
        kinds=frozenset(flt.kinds),
        labels=frozenset(validate_tags(flt.labels, "labels")),
        flags=frozenset(validate_tags(flt.flags, "flags")),
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
