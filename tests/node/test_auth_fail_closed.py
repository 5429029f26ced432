"""Authentication fails closed: a node that ever required tokens never reopens by accident.

Deleting or emptying ``tokens.json`` must not turn every caller into the anonymous owner, and
a token file that cannot be read refuses requests (401/503 naming the file), never 500 and
never open. A store that never had tokens keeps the loopback convenience.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dwbase.config import Settings
from dwbase.engine import Engine
from dwbase.node import NodeRefusedError, create_app
from dwbase.node.server import check_bind
from dwbase.security.tokens import TokenStore

from .conftest import assert_error, make_settings

ROUTES: list[tuple[str, str, Any]] = [
    ("post", "/remember", {"world": "demo", "payload": {"text": "x"}}),
    ("post", "/ask", {"world": "demo", "text": "x"}),
    ("get", "/worlds", None),
    ("post", "/worlds/policy", {"world": "demo", "retention_days": 0}),
    ("post", "/observe/start", {"world": "demo"}),
    ("get", "/quarantine", None),
    ("get", "/health", None),
    ("get", "/metrics", None),
]


def client(engine: Engine, settings: Settings, token: str | None = None) -> TestClient:
    """A node as it starts: its own TokenStore reading the file afresh."""
    app = create_app(engine, settings, tokens=TokenStore(settings.tokens_path))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(app, headers=headers, raise_server_exceptions=False)


def refused_everywhere(http: TestClient) -> None:
    for method, path, body in ROUTES:
        kw: dict[str, Any] = {"json": body} if body is not None else {}
        r = getattr(http, method)(path, **kw)
        assert r.status_code in (401, 503), (path, r.status_code, r.text)


@pytest.mark.parametrize("damage", ["delete", "empty list", "zero bytes"])
def test_a_node_that_had_tokens_keeps_refusing_anonymous_callers(
    engine: Engine, settings: Settings, damage: str
) -> None:
    secret, _ = TokenStore(settings.tokens_path).create("agent", read=["*"], admin=True)
    live = client(engine, settings)
    refused_everywhere(live)
    path = Path(settings.tokens_path)
    if damage == "delete":
        path.unlink()
    elif damage == "empty list":
        path.write_text('{"format": 1, "tokens": []}')
    else:
        path.write_text("")
    assert isinstance(live.app, FastAPI)
    live.app.state.node.tokens._stamp = None  # the running node looks again (else within 0.5 s)
    refused_everywhere(live)
    refused_everywhere(client(engine, settings))  # and after a restart
    assert_error(client(engine, settings, secret).get("/worlds"), *_refusal(damage))
    assert engine.policy("demo").effective_retention_days is None


def _refusal(damage: str) -> tuple[int, str]:
    return (503, "unavailable") if damage == "zero bytes" else (401, "unauthenticated")


@pytest.mark.parametrize("content", ["{not json", '{"tokens": [{"worker": "x"}]}', "[1, 2]"])
def test_a_corrupt_token_file_refuses_with_503_naming_the_file(
    engine: Engine, settings: Settings, content: str
) -> None:
    secret, _ = TokenStore(settings.tokens_path).create("agent", read=["*"])
    Path(settings.tokens_path).write_text(content)
    for http in (client(engine, settings, secret), client(engine, settings, "dwb_x_y")):
        err = assert_error(http.get("/worlds"), 503, "unavailable")
        assert "tokens.json" in err["message"]
    assert_error(client(engine, settings).get("/worlds"), 401, "unauthenticated")
    assert client(engine, settings).get("/healthz").status_code == 200


def test_an_unreadable_token_file_refuses(engine: Engine, settings: Settings) -> None:
    os.makedirs(settings.tokens_path)  # a directory where the file should be: open() fails
    err = assert_error(client(engine, settings, "dwb_a_b").get("/worlds"), 503, "unavailable")
    assert settings.tokens_path in err["message"] or "tokens.json" in err["message"]
    refused_everywhere(client(engine, settings))


def test_a_node_that_once_required_auth_keeps_requiring_it(tmp_path: Path) -> None:
    strict = make_settings(tmp_path, auth_required=True)
    engine = strict.open_engine()
    try:
        refused_everywhere(client(engine, strict))
        relaxed = make_settings(tmp_path)  # the setting removed from the config later
        refused_everywhere(client(engine, relaxed))
    finally:
        engine.close()


def test_a_store_that_never_had_tokens_serves_loopback_callers(
    engine: Engine, settings: Settings
) -> None:
    http = client(engine, settings)
    atom = {"world": "demo", "worker": "a", "payload": {"text": "x"}}
    assert http.post("/remember", json=atom).status_code == 200
    assert http.get("/worlds").json() == ["demo"]
    assert not os.path.exists(settings.tokens_path)


def test_a_public_listen_stays_allowed_once_auth_was_ever_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, listen="0.0.0.0:0")
    with pytest.raises(NodeRefusedError):
        check_bind(settings, TokenStore(settings.tokens_path))
    TokenStore(settings.tokens_path).create("agent", read=["*"])
    os.unlink(settings.tokens_path)
    check_bind(settings, TokenStore(settings.tokens_path))  # auth on: the listen is safe


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("importance_cap", "0.5"),
        ("importance_cap", 2),
        ("remember_rate", "fast"),
        ("ask_rate", -1),
        ("revoked_at", "yesterday"),
    ],
)
def test_a_hand_edited_token_with_a_bad_value_refuses_every_request(
    engine: Engine, settings: Settings, field: str, value: Any
) -> None:
    secret, _ = TokenStore(settings.tokens_path).create("agent", read=["*"], write=["*"])
    path = Path(settings.tokens_path)
    doc = json.loads(path.read_text())
    doc["tokens"][0][field] = value
    path.write_text(json.dumps(doc))
    http = client(engine, settings, secret)
    remember = {"world": "demo", "payload": {"text": "x"}, "importance": 0.6}
    err = assert_error(http.post("/remember", json=remember), 503, "unavailable")
    assert "tokens.json" in err["message"] and field in err["message"]
    assert_error(http.post("/ask", json={"world": "demo", "text": "x"}), 503, "unavailable")
    assert engine.replay("demo") == []
