"""Encryption at rest, as the engine offers it: status, key rotation, erasure by subject.

The work is the store's (:mod:`dwbase.storage.sqlite_keys`); a store that cannot encrypt
(in memory) answers as a plain one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from ..errors import InvalidInputError
from ..storage.base import Storage

Progress = Callable[[int, int], None]


class _KeyStore(Protocol):
    def encryption_status(self) -> dict[str, Any] | None: ...
    def rotate_key(self, to: str, *, progress: Progress, batch: int) -> dict[str, Any]: ...
    def erase_subject(self, subject: str) -> dict[str, Any]: ...
    def erase_world(self, world: str) -> dict[str, Any]: ...
    def add_erasable_worlds(self, patterns: Sequence[str]) -> list[str]: ...


def _keys(storage: Storage) -> _KeyStore | None:
    return cast(_KeyStore, storage) if hasattr(storage, "rotate_key") else None


def _require(storage: Storage) -> _KeyStore:
    store = _keys(storage)
    if store is None or store.encryption_status() is None:
        raise InvalidInputError(
            "this store is not encrypted: create it with an encryption key "
            "(encryption_key=, or [node.storage] encryption_key); see docs/security.md",
            field="encryption_key",
        )
    return store


def encryption_status(storage: Storage) -> dict[str, Any] | None:
    store = _keys(storage)
    return store.encryption_status() if store is not None else None


def rotate_key(storage: Storage, to: str, progress: Progress, batch: int) -> dict[str, Any]:
    return _require(storage).rotate_key(to, progress=progress, batch=batch)


def erase_subject(storage: Storage, subject: str) -> dict[str, Any]:
    return _require(storage).erase_subject(subject)


def erase_world(storage: Storage, world: str) -> dict[str, Any]:
    return _require(storage).erase_world(world)


def add_erasable_worlds(storage: Storage, patterns: Sequence[str]) -> list[str]:
    return _require(storage).add_erasable_worlds(patterns)
