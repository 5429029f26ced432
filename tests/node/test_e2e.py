"""End to end: a real uvicorn on 127.0.0.1 port 0, a real SQLite store, the real Client."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from dwbase.client import Client
from dwbase.errors import CapabilityDeniedError, InvalidInputError, UnauthenticatedError
from dwbase.node import NodeRefusedError, start_background
from dwbase.node.server import JsonFormatter, check_bind
from dwbase.security.tokens import TokenStore

from .conftest import make_settings


def test_node_serves_the_client_over_real_http(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    with start_background(settings) as node:
        assert node.url.startswith("http://127.0.0.1:") and not node.url.endswith(":0")
        with Client(node.url) as db:
            aid = db.remember("demo", "agent-1", "observation", {"text": "checkout latency 820ms"})
            assert db.ask("demo", "why is checkout slow?").hits[0].atom.id == aid
            assert db.get(aid).payload == {"text": "checkout latency 820ms"}
            with pytest.raises(InvalidInputError):
                db.remember("demo", "agent-1", text="x", importance=float("nan"))
        r = httpx.get(node.url + "/readyz", headers={"x-request-id": "e2e-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "e2e-1"
        assert "dwbase_remember_duration_seconds_count 1.0" in httpx.get(node.url + "/metrics").text
    # The store is durable: a new node on the same data dir sees the atom.
    with start_background(settings) as node, Client(node.url) as db:
        assert db.get(aid).id == aid


def test_sse_stream_resumes_without_gaps_or_duplicates(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    with start_background(settings) as node, Client(node.url) as db:
        first = db.remember("demo", "a", payload={"n": -1})
        seen: list[str] = []
        ready = threading.Event()

        def consume(n: int, last: str) -> None:
            with Client(node.url) as reader:
                stream = reader.observe_stream("demo", last_event_id=last, max_events=n)
                ready.set()
                seen.extend(a.id for a in stream)

        t = threading.Thread(target=consume, args=(5, first))
        t.start()
        ready.wait(5)
        written = [db.remember("demo", "a", payload={"n": i}) for i in range(5)]
        t.join(10)
        assert seen == written
        # Disconnected: more atoms arrive; resuming from the last id seen misses none.
        written += [db.remember("demo", "a", payload={"n": i}) for i in range(5, 9)]
        resumed = list(db.observe_stream("demo", last_event_id=seen[-1], max_events=4))
        assert [a.id for a in resumed] == written[5:]
        # Raw SSE framing, as a browser EventSource sees it.
        with httpx.stream(
            "GET",
            node.url + "/observe/stream",
            params={"world": "demo", "max_events": 1},
            headers={"Last-Event-ID": written[-2]},
        ) as resp:
            text = resp.read().decode()
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert f"id: {written[-1]}\nevent: atom\ndata: " in text


def test_tokens_created_while_the_node_runs_apply_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    with start_background(settings) as node:
        with Client(node.url) as anonymous:
            anonymous.remember("demo", "a", text="hi")  # no tokens yet: loopback is open
        store = TokenStore(settings.tokens_path)  # what `dwbase token create` does
        secret, info = store.create("bot", read=["demo"], write=["demo"])
        node.tokens._checked = 0.0  # skip the 0.5 s re-read interval
        with Client(node.url) as anonymous, pytest.raises(UnauthenticatedError):
            anonymous.list_worlds()
        with Client(node.url, token=secret) as bot:
            aid = bot.remember("demo", "claimed-name", payload={"text": "hi"})
            assert bot.get(aid).worker == "bot"
            with pytest.raises(CapabilityDeniedError):
                bot.remember("other", "bot", text="hi")
        store.revoke(info.id)
        node.tokens._checked = 0.0
        with Client(node.url, token=secret) as bot, pytest.raises(UnauthenticatedError):
            bot.list_worlds()


def test_public_address_needs_tokens_or_insecure(tmp_path: Path) -> None:
    tokens = TokenStore(str(tmp_path / "tokens.json"))
    public = make_settings(tmp_path, listen="0.0.0.0:8080")
    with pytest.raises(NodeRefusedError, match="--insecure"):
        check_bind(public, tokens)
    check_bind(make_settings(tmp_path, listen="0.0.0.0:8080", insecure=True), tokens)
    check_bind(make_settings(tmp_path, listen="[::1]:8080"), tokens)
    check_bind(make_settings(tmp_path, listen="localhost:8080"), tokens)
    check_bind(make_settings(tmp_path, listen="0.0.0.0:8080", **{"auth.required": True}), tokens)
    tokens.create("bot")
    check_bind(public, tokens)


def test_logs_are_one_json_object_per_line() -> None:
    record = logging.LogRecord("dwbase.node.access", logging.INFO, "x", 1, "request", None, None)
    record.fields = {"request_id": "r1", "status": 200}
    line: dict[str, Any] = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["request_id"] == "r1" and line["status"] == 200
    assert line["level"] == "info" and line["ts"].endswith("Z")
