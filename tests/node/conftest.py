from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import dwbase
from dwbase.config import Settings, load_settings
from dwbase.engine import Engine
from dwbase.node import create_app
from dwbase.security.tokens import TokenStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": str(tmp / "data"), "access_log": False}
    base.update(overrides)
    return load_settings(None, base, environ={})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    db = settings.open_engine()
    yield db
    db.close()


@pytest.fixture
def tokens(settings: Settings) -> TokenStore:
    return TokenStore(settings.tokens_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_http(
    engine: Engine, settings: Settings, tokens: TokenStore, clock: FakeClock
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(token: str | None = None, **kw: Any) -> TestClient:
        app = create_app(
            kw.pop("engine", engine), kw.pop("settings", settings), tokens=tokens, clock=clock
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = TestClient(app, headers=headers, raise_server_exceptions=False)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def http(make_http: Callable[..., TestClient]) -> TestClient:
    return make_http()


def new_atom(
    world: str = "demo", text: str = "checkout latency 820ms", **kw: Any
) -> dict[str, Any]:
    atom: dict[str, Any] = {"world": world, "worker": "agent-1", "payload": {"text": text}}
    atom.update(kw)
    return atom


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert err["code"] == code, err
    assert err["message"]
    return dict(err)


__all__ = ["FakeClock", "assert_error", "dwbase", "make_settings", "new_atom"]
