"""How the CLI's command groups look: help options and width, and a sub-command group."""

from __future__ import annotations

from typing import Any

import typer

CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
    "terminal_width": 100,
}


def sub_app(name: str, help: str) -> typer.Typer:
    """A group of commands (``dwbase world ...``) with the CLI's help settings."""
    return typer.Typer(
        name=name,
        help=help,
        context_settings=CONTEXT_SETTINGS,
        rich_markup_mode=None,
        no_args_is_help=True,
    )
