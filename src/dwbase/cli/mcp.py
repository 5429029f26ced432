"""``dwbase mcp``: the MCP tool server over stdio (Claude Desktop, Cursor, IDE agents)."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from ..errors import UnavailableError
from .context import open_backend


def mcp(
    ctx: typer.Context,
    worker: Annotated[
        str,
        typer.Option(
            "--worker",
            metavar="NAME",
            envvar="DWBASE_WORKER",
            show_envvar=True,
            help="Writer of remembered atoms (a node uses its token's worker instead).",
        ),
    ] = "mcp",
) -> None:
    """Serve DWBase to an MCP client over stdio (tools remember, ask, replay, list_worlds,
    inspect, observe_poll; worlds as resources). The client starts this command; it runs
    until the client closes stdin. Needs the mcp extra: pip install 'dwbase[mcp]'.

    \b
    Example (the command an MCP client's config names):
      dwbase --data-dir ~/.dwbase mcp --worker claude
      dwbase --api http://127.0.0.1:8080 --token dwb_... mcp
    """
    try:
        from ..integrations.mcp_server import run_stdio
    except ImportError as exc:
        raise UnavailableError(
            f"mcp extra not installed ({exc}): pip install 'dwbase[mcp]'"
        ) from exc
    with open_backend(ctx, create=True, long_lived=True) as db:
        anyio.run(lambda: run_stdio(db, worker=worker))


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
