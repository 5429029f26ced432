"""Storage adapters behind the :class:`~dwbase.storage.base.Storage` port."""

from .base import CheckReport, NewRecord, Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

__all__ = ["CheckReport", "MemoryStorage", "NewRecord", "SQLiteStorage", "Storage"]
