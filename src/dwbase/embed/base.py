from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
