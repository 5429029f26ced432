"""Capabilities: what a caller may read and write."""

from .caps import Caller, world_matches

__all__ = ["Caller", "world_matches"]
