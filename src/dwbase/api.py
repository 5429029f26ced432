"""``dwbase.open``: the embedded library entry point, sync and async."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from typing import Any

from .engine import Engine
from .errors import InvalidInputError
from .options import Options
from .storage import MemoryStorage, SQLiteStorage
from .storage.sqlite import sqlite_path


def open(path: str | os.PathLike[str] = "./dwbase-data", **options: Any) -> Engine:
    """Open (or create) a store. ``":memory:"`` gives an in-memory store for tests/notebooks.

    Keyword options are the fields of :class:`dwbase.Options` (``embedder=``, ``clock=``,
    ``durability="normal"|"full"``, ``trust=``, ``gc_interval_s=``, ...).

    >>> import dwbase
    >>> db = dwbase.open(":memory:")
    >>> db.list_worlds()
    []
    >>> db.close()
    """
    known = set(Options.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise InvalidInputError(
            f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    opts = Options(**options)
    target = os.fspath(path)
    if target == ":memory:":
        return Engine(MemoryStorage(), opts)
    if os.path.exists(target) and not os.path.isdir(target):
        raise InvalidInputError(f"{target} exists and is not a directory", field="path")
    storage = SQLiteStorage(sqlite_path(target), durability=opts.durability)
    return Engine(storage, opts)


class AsyncDWBase:
    """Async twin of :class:`Engine`: the same methods, awaited (run on worker threads).

    >>> import asyncio, dwbase
    >>> async def main():
    ...     async with dwbase.open_async(":memory:") as db:
    ...         aid = await db.remember("demo", "a", "observation", {"text": "hi"})
    ...         return (await db.get(aid)).payload
    >>> asyncio.run(main())
    {'text': 'hi'}
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target = getattr(self.engine, name)
        if not callable(target) or name.startswith("_"):
            return target  # type: ignore[no-any-return]

        @functools.wraps(target)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(target, *args, **kwargs)

        return call

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)

    async def __aenter__(self) -> AsyncDWBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def open_async(path: str | os.PathLike[str] = "./dwbase-data", **options: Any) -> AsyncDWBase:
    """Like :func:`open`, returning an :class:`AsyncDWBase`."""
    return AsyncDWBase(open(path, **options))
