"""Helpers for the MCP tests: call a tool through a real client session and read its
structured result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession

DWBASE = str(Path(sys.executable).parent / "dwbase")
"""The console script of the venv running the tests."""

TOOLS = {"remember", "ask", "replay", "list_worlds", "inspect", "observe_poll"}


async def call(session: ClientSession, name: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result; fails the test if the tool answered an error."""
    result = await session.call_tool(name, args)
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    text = result.content[0]
    assert getattr(text, "text", None) is not None
    assert json.loads(getattr(text, "text", "")) == data  # the text an LLM reads says the same
    return data


async def call_error(session: ClientSession, name: str, **args: Any) -> dict[str, Any]:
    """A tool's error: ``{"code", "message", "details"}``; fails if the tool succeeded."""
    result = await session.call_tool(name, args)
    assert result.is_error, result.structured_content
    data = result.structured_content
    assert isinstance(data, dict) and set(data) == {"error"}, data
    err: dict[str, Any] = data["error"]
    assert set(err) == {"code", "message", "details"}
    text = getattr(result.content[0], "text", "")
    assert text.startswith(f"error[{err['code']}]: ")
    return err
