"""An SSE stream waits on the hub: idle it costs no polling, and an atom arrives at once.

Real uvicorn on loopback; the atoms are written by this process's engine (the node's), so
they reach the stream through the hub with no look at the store in between.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dwbase.node import start_background

from .conftest import make_settings


def counted(calls: list[float], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return fn(*args, **kwargs)

    return wrapper


def test_an_idle_sse_stream_does_not_poll_and_a_new_atom_arrives_within_50ms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    with start_background(settings) as node:
        engine = node.engine
        polls: list[float] = []
        monkeypatch.setattr(engine.hub, "poll", counted(polls, engine.hub.poll))
        monkeypatch.setattr(engine, "observe_poll", counted(polls, engine.observe_poll))
        with httpx.stream(
            "GET",
            node.url + "/observe/stream",
            params={"world": "demo", "timeout_s": 5},
            timeout=10,
        ) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next(lines) == ": stream open"
            time.sleep(0.2)  # the stream settles (its first look at the queue)
            before = len(polls)
            time.sleep(1.0)
            idle_polls = len(polls) - before
            assert idle_polls <= 5, f"{idle_polls} polls in 1 s of an idle stream"

            delays = []
            for n in range(5):
                t0 = time.monotonic()
                aid = engine.remember("demo", "agent", payload={"n": n})
                for line in lines:
                    if line.startswith("id: "):
                        assert line == f"id: {aid}"
                        break
                delays.append(time.monotonic() - t0)
        assert statistics.median(delays) < 0.05, delays
