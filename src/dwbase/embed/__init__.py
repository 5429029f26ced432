"""Embedders turn text into vectors. The default needs no model download."""

from .base import Embedder
from .hashing import HashingEmbedder

__all__ = ["Embedder", "HashingEmbedder", "get_embedder"]


def get_embedder(name: str) -> Embedder:
    """Build an embedder from its configured name (``hashing`` is the default)."""
    from ..errors import InvalidInputError

    if name in ("hashing", "default", ""):
        return HashingEmbedder()
    raise InvalidInputError(f"unknown embedder {name!r}; available: hashing", field="embedder")
