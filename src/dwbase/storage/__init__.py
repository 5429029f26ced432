"""Storage adapters behind the :class:`~dwbase.storage.base.Storage` port.

``SQLiteStorage`` is loaded on first use, so importing the package needs no ``sqlite3`` (the
WASI component's Python has none; it stores atoms with :class:`~dwbase.storage.log.LogStorage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import CheckReport, NewRecord, Storage
from .memory import MemoryStorage

if TYPE_CHECKING:
    from .sqlite import SQLiteStorage


def __getattr__(name: str) -> object:
    if name == "SQLiteStorage":
        from .sqlite import SQLiteStorage

        return SQLiteStorage
    raise AttributeError(f"module 'dwbase.storage' has no attribute {name!r}")


__all__ = ["CheckReport", "MemoryStorage", "NewRecord", "SQLiteStorage", "Storage"]
