"""Revoking a token reaches what it already opened: SSE streams and observe handles.

The revocation comes from another process, as `dwbase token revoke` does: a second
TokenStore rewrites tokens.json under the running node (real uvicorn on loopback).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from dwbase.client import Client
from dwbase.errors import InvalidHandleError, UnauthenticatedError
from dwbase.node import start_background
from dwbase.security.tokens import TokenStore

from .conftest import make_settings


def test_revoking_a_token_ends_its_open_sse_stream_within_a_second(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    secret, info = TokenStore(settings.tokens_path).create("agent", read=["*"])
    with start_background(settings) as node:
        with httpx.stream(
            "GET",
            node.url + "/observe/stream",
            params={"world": "demo", "timeout_s": 4},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        ) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next(lines) == ": stream open"
            TokenStore(settings.tokens_path).revoke(info.id)  # the CLI, another process
            t0 = time.monotonic()
            rest = list(lines)
            elapsed = time.monotonic() - t0
        assert elapsed < 1.5, elapsed
        assert "event: error" in rest
        assert any("unauthenticated" in line for line in rest if line.startswith("data: "))


def test_the_client_raises_when_its_stream_is_revoked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    secret, info = TokenStore(settings.tokens_path).create("agent", read=["*"])
    with start_background(settings) as node, Client(node.url, token=secret) as db:
        first = db.remember("demo", "agent", payload={"n": 1})
        db.remember("demo", "agent", payload={"n": 2})
        stream = db.observe_stream("demo", last_event_id=first, timeout_s=4)
        assert next(stream).payload == {"n": 2}
        TokenStore(settings.tokens_path).revoke(info.id)
        t0 = time.monotonic()
        with pytest.raises(UnauthenticatedError):
            list(stream)
        assert time.monotonic() - t0 < 1.5


def test_observe_handles_of_a_revoked_token_end_within_a_second(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    secret, info = TokenStore(settings.tokens_path).create("agent", read=["*"])
    other, _ = TokenStore(settings.tokens_path).create("other", read=["*"])
    with start_background(settings) as node:
        auth = {"Authorization": f"Bearer {secret}"}
        handle = httpx.post(
            node.url + "/observe/start", json={"world": "demo"}, headers=auth
        ).json()["handle"]
        TokenStore(settings.tokens_path).revoke(info.id)
        deadline = time.monotonic() + 1.0
        while True:
            r = httpx.post(node.url + "/observe/poll", json={"handle": handle}, headers=auth)
            if r.status_code == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 401, r.text
        httpx.get(node.url + "/worlds", headers={"Authorization": f"Bearer {other}"})
        with pytest.raises(InvalidHandleError):  # the subscription itself is gone
            node.engine.observe_stats(handle)


def test_an_anonymous_stream_ends_when_the_node_starts_requiring_tokens(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="127.0.0.1:0")
    with start_background(settings) as node:
        with httpx.stream(
            "GET", node.url + "/observe/stream", params={"timeout_s": 4}, timeout=10
        ) as resp:
            lines = resp.iter_lines()
            assert next(lines) == ": stream open"
            TokenStore(settings.tokens_path).create("agent", read=["*"])
            t0 = time.monotonic()
            rest = list(lines)
        assert time.monotonic() - t0 < 1.5
        assert "event: error" in rest
