"""The CLI builds one ``dwbase.AtomFilter`` from its filter options for every read command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dwbase.engine import Engine
from dwbase.model import AtomFilter

from .conftest import Run, ok_json, remember


def test_ask_replay_and_observe_hand_the_engine_an_atom_filter(
    dw: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    yes = remember(dw, "-w", "demo", "--kind", "plan", "--label", "x", "--text", "ship it")
    remember(dw, "-w", "demo", "--kind", "plan", "--text", "no label")
    seen: list[Any] = []

    def recording(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Engine, *args: Any, **kwargs: Any) -> Any:
            seen.append(kwargs.get("filter"))
            return fn(self, *args, **kwargs)

        return wrapper

    for name in ("ask", "replay", "observe_start"):
        monkeypatch.setattr(Engine, name, recording(getattr(Engine, name)))
    opts = ("-w", "demo", "--kind", "plan", "--label", "x")
    answer = ok_json(dw("ask", *opts, "--json", "ship"))
    assert [h["atom"]["id"] for h in answer["hits"]] == [yes]
    assert [a["id"] for a in ok_json(dw("replay", *opts, "--limit", "5", "--json"))] == [yes]
    assert dw("observe", *opts, "--timeout", "0.01", "--json").exit_code == 0
    flt = AtomFilter(kinds=("plan",), labels=("x",))
    assert seen == [flt, AtomFilter(kinds=("plan",), labels=("x",), limit=5), flt]
