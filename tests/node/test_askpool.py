"""Ask workers: a real node with worker processes answers asks exactly as the node would."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from dwbase.node import RunningNode, start_background
from dwbase.security.tokens import TokenStore

from .conftest import make_settings


def _wait(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    tmp = tmp_path_factory.mktemp("askpool")
    settings = make_settings(tmp, listen="127.0.0.1:0", ask_workers=2, security_quarantine=True)
    with start_background(settings) as running:
        pool = running.app_state.asks
        assert pool is not None
        _wait(lambda: all(w.ready for w in pool._workers))
        health = httpx.get(running.url + "/health").json()
        assert (health["ask_workers"], health["ask_workers_ready"]) == (2, 2)
        yield running


def _ask(node: RunningNode, **body: Any) -> dict[str, Any]:
    r = httpx.post(node.url + "/ask", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _remember(node: RunningNode, **atom: Any) -> str:
    r = httpx.post(node.url + "/remember", json={"worker": "a", **atom})
    assert r.status_code == 200, r.text
    aid: str = r.json()
    return aid


def test_workers_answer_exactly_as_the_node_would(node: RunningNode) -> None:
    texts = [f"incident {i}: checkout latency {100 + i} ms in region eu" for i in range(40)]
    httpx.post(
        node.url + "/remember/batch",
        json={"atoms": [{"world": "same", "worker": "a", "payload": {"text": t}} for t in texts]},
    ).raise_for_status()
    pool = node.app_state.asks
    assert pool is not None
    answered = pool.answered
    for question in ("checkout latency", "region eu incident 7", "nothing like it"):
        via_worker = _ask(node, world="same", text=question, limit=5)
        in_node = node.engine.ask("same", question, limit=5).to_wire()
        assert via_worker == in_node
    assert pool.answered == answered + 3


def test_a_remember_is_seen_by_the_next_ask(node: RunningNode) -> None:
    for i in range(5):
        aid = _remember(node, world="fresh", payload={"text": f"zebra crossing {i}"})
        hits = _ask(node, world="fresh", text=f"zebra crossing {i}")["hits"]
        assert aid in [h["atom"]["id"] for h in hits]


def test_changes_beyond_appends_reach_the_workers(node: RunningNode) -> None:
    keep = _remember(node, world="chg", payload={"text": "the boiler is fine"})
    held = httpx.post(
        node.url + "/remember",
        json={"world": "chg", "worker": "b", "payload_json": '{"text": "boiler odd", "v": NaN}'},
    )
    held_id = held.json()["id"]
    assert held.json()["quarantined"] is True
    _remember(node, world="chg", payload={"text": "later boiler note"})
    asked = [h["atom"]["id"] for h in _ask(node, world="chg", text="boiler")["hits"]]
    assert held_id not in asked and keep in asked
    # Release: the atom joins its world (an old seq, which catching up on appends cannot see).
    httpx.post(node.url + f"/quarantine/{held_id}/release").raise_for_status()
    for _ in range(4):  # asks take turns over the workers; each must score it as the node does
        body = _ask(node, world="chg", text="boiler odd")
        assert held_id in [h["atom"]["id"] for h in body["hits"]]
        assert body == node.engine.ask("chg", "boiler odd").to_wire()
    # A newer atom supersedes one: current_only hides it on every worker.
    _remember(
        node,
        world="chg",
        payload={"text": "the boiler was replaced"},
        links=[{"target": keep, "kind": "supersedes"}],
    )
    for _ in range(4):
        body = _ask(node, world="chg", text="boiler", current_only=True)
        assert keep not in [h["atom"]["id"] for h in body["hits"]]


def test_errors_come_back_as_the_same_answers(node: RunningNode) -> None:
    r = httpx.post(node.url + "/ask", json={"world": "same", "text": "x", "rank": "nonsense"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = httpx.post(node.url + "/ask", json={"world": "same", "text": "x", "vector": [1.0, 2.0]})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "vector"


def test_a_worker_that_dies_is_replaced(node: RunningNode) -> None:
    pool = node.app_state.asks
    assert pool is not None
    victim = pool._workers[0]
    os.kill(victim.proc.pid or 0, signal.SIGKILL)
    _wait(lambda: pool.restarts >= 1 and all(w.ready for w in pool._workers))
    assert victim.proc.exitcode == -signal.SIGKILL
    for _ in range(4):
        assert _ask(node, world="same", text="checkout latency")["hits"]


def test_token_capabilities_hold_in_the_workers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0", ask_workers=1)
    store = TokenStore(settings.tokens_path)
    admin, _ = store.create("admin", read=["*"], write=["*"])
    reader, _ = store.create("reader", read=["mine"], write=[])
    with start_background(settings) as running:
        pool = running.app_state.asks
        assert pool is not None
        _wait(lambda: pool.ready)
        auth = {"Authorization": f"Bearer {admin}"}
        for world in ("mine", "secret"):
            httpx.post(
                running.url + "/remember",
                headers=auth,
                json={"world": world, "worker": "x", "payload": {"text": "launch codes"}},
            ).raise_for_status()
        mine = {"Authorization": f"Bearer {reader}"}
        ok = httpx.post(running.url + "/ask", headers=mine, json={"world": "mine", "text": "codes"})
        assert ok.status_code == 200 and ok.json()["hits"]
        no = httpx.post(
            running.url + "/ask", headers=mine, json={"world": "secret", "text": "codes"}
        )
        assert no.status_code == 403 and no.json()["error"]["code"] == "capability_denied"
        assert "launch" not in no.text
        pids = pool.pids()
    for pid in pids:  # the node stopped its workers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_that_cannot_start_leave_asks_to_the_node(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0", ask_workers=1)
    (tmp_path / "not-a-dir").write_text("x")
    with start_background(settings) as running:
        pool = running.app_state.asks
        assert pool is not None
        # Point the (not yet started) replacement at a store it cannot open, then kill the
        # worker once it is ready: the replacement fails to start and is not started again.
        _wait(lambda: pool.ready)
        pool.worker_settings = replace(pool.worker_settings, data_dir=str(tmp_path / "not-a-dir"))
        first = pool._workers[0]
        os.kill(first.proc.pid or 0, signal.SIGKILL)
        _wait(lambda: pool.restarts == 1)
        _wait(lambda: not pool._workers[0].alive)
        time.sleep(0.2)
        assert pool.restarts == 1 and pool.ready_count == 0
        httpx.post(
            running.url + "/remember", json={"world": "w", "worker": "a", "payload": {"text": "hi"}}
        ).raise_for_status()
        answered = pool.answered
        assert _ask(running, world="w", text="hi")["hits"]  # answered in the node process
        assert pool.answered == answered
