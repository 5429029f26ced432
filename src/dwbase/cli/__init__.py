"""The ``dwbase`` command line (Typer): thin translations onto the engine or the client."""

from __future__ import annotations

from .app import app, command, main

__all__ = ["app", "command", "main"]
