"""Vector indexes (exact search; numpy when present, pure Python inside WASI)."""

from .exact import ExactIndex, pack, unpack

__all__ = ["ExactIndex", "pack", "unpack"]
