"""The HTTP node: ``create_app(engine, settings)`` and ``serve(settings)``."""

from .app import create_app
from .server import NodeRefusedError, RunningNode, serve, start_background
from .state import STATUS

__all__ = ["STATUS", "NodeRefusedError", "RunningNode", "create_app", "serve", "start_background"]
