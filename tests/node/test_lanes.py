"""The node's lanes: dedicated threads for engine calls, group commit for single remembers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import dwbase
from dwbase import InvalidInputError, UnavailableError
from dwbase.node import start_background
from dwbase.node.lanes import Lane, WriteLane

from .conftest import make_settings


def test_write_lane_groups_concurrent_remembers_and_answers_each() -> None:
    db = dwbase.open(":memory:")
    lane = WriteLane(db)

    async def main() -> list[Any]:
        atoms = [
            {
                "world": "g",
                "worker": "w",
                "payload": {"n": i},
                "importance": 2 if i % 10 == 3 else 0.5,
            }
            for i in range(200)
        ]
        return await asyncio.gather(
            *(lane.remember(a, None) for a in atoms), return_exceptions=True
        )

    answers = asyncio.run(main())
    lane.close()
    bad = [i for i, a in enumerate(answers) if isinstance(a, InvalidInputError)]
    assert bad == [i for i in range(200) if i % 10 == 3]
    stored = {a.id: a.payload["n"] for a in db.replay("g")}
    assert len(stored) == 180
    assert all(stored[str(a)] == i for i, a in enumerate(answers) if i not in bad)
    assert lane.atoms == 200 and lane.groups < 200  # remembers shared transactions
    db.close()


def test_lane_runs_calls_reports_errors_and_refuses_after_close() -> None:
    lane = Lane("test", 2)

    def boom() -> None:
        raise InvalidInputError("nope")

    async def main() -> None:
        assert await asyncio.gather(*(lane.call(pow, i, 2) for i in range(50))) == [
            i * i for i in range(50)
        ]
        with pytest.raises(InvalidInputError, match="nope"):
            await lane.call(boom)
        lane.close()
        with pytest.raises(UnavailableError, match="shutting down"):
            await lane.call(pow, 2, 2)
        lane.open()  # a restarted app takes calls again
        assert await lane.call(pow, 3, 2) == 9
        lane.close()

    asyncio.run(main())
    with pytest.raises(ValueError):
        Lane("none", 0)


def test_concurrent_http_remembers_each_get_their_own_status(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")

    async def main(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url) as http:
            bodies = [
                {"world": "c", "worker": f"w{i}", "payload": {"n": i}}
                if i % 7
                else {"world": "c", "worker": "w", "payload": {"n": i}, "kind": "nonsense"}
                for i in range(60)
            ]
            return await asyncio.gather(*(http.post("/remember", json=b) for b in bodies))

    with start_background(settings) as node:
        responses = asyncio.run(main(node.url))
        assert [r.status_code for r in responses] == [400 if i % 7 == 0 else 200 for i in range(60)]
        assert all(r.json()["error"]["code"] == "invalid_input" for r in responses[::7])
        got = {a.id: a.payload["n"] for a in node.engine.replay("c", filter={"limit": 1000})}
        assert {r.json(): i for i, r in enumerate(responses) if i % 7} == got


def test_a_fault_in_a_group_reaches_each_request_and_the_lane_goes_on() -> None:
    db = dwbase.open(":memory:")
    lane = WriteLane(db)
    real = db.remember_each

    def flaky(items: Any) -> Any:
        if any(data["payload"]["n"] < 5 for data, _ in items):  # the first five, however grouped
            raise RuntimeError("disk on fire")
        return real(items)

    db.remember_each = flaky  # type: ignore[method-assign]

    async def main() -> tuple[list[Any], Any]:
        first = await asyncio.gather(
            *(
                lane.remember({"world": "f", "worker": "w", "payload": {"n": i}}, None)
                for i in range(5)
            ),
            return_exceptions=True,
        )
        after = await lane.remember({"world": "f", "worker": "w", "payload": {"n": 99}}, None)
        return first, after

    first, after = asyncio.run(main())
    lane.close()
    assert all(isinstance(a, RuntimeError) for a in first)  # nobody is told "stored"
    assert [a.payload["n"] for a in db.replay("f")] == [99] and str(after) == db.replay("f")[0].id
    db.close()


def test_an_answer_for_a_request_that_went_away_is_dropped() -> None:
    lane = Lane("gone", 1)

    async def main() -> int:
        slow = asyncio.ensure_future(lane.call(time.sleep, 0.2))
        await asyncio.sleep(0.05)
        slow.cancel()  # the client disconnected while its call ran
        with pytest.raises(asyncio.CancelledError):
            await slow
        return await lane.call(pow, 2, 5)  # the lane still answers

    assert asyncio.run(main()) == 32
    lane.close()
