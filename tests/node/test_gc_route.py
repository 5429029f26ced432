"""``POST /gc`` and ``Client.gc``: garbage collection on a node, an operator action."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from dwbase import GcReport
from dwbase.client import Client
from dwbase.engine import Engine
from dwbase.errors import CapabilityDeniedError
from dwbase.security.tokens import TokenStore

from .conftest import assert_error
from .test_client import Via

OLD = "2020-01-01T00:00:00Z"


def _seed(engine: Engine) -> dict[str, str]:
    """An old atom in two worlds that each keep atoms 30 days, and a fresh one in each."""
    out: dict[str, str] = {}
    for world in ("demo", "secret"):
        out[world] = engine.remember(world, "a", payload={"text": "old"}, timestamp=OLD)
        engine.remember(world, "a", payload={"text": "fresh"})
        engine.set_policy(world, retention_days=30)
    return out


def _ids(engine: Engine, world: str) -> set[str]:
    return {a.id for a in engine.replay(world)}


def test_gc_on_an_open_node_evicts_what_the_policies_say(http: TestClient, engine: Engine) -> None:
    old = _seed(engine)
    r = http.post("/gc")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "evicted": 2,
        "by_reason": {"retention": 2},
        "by_world": {"demo": 1, "secret": 1},
    }
    assert old["demo"] not in _ids(engine, "demo") and old["secret"] not in _ids(engine, "secret")
    assert http.post("/gc").json()["evicted"] == 0


def test_gc_needs_the_operate_capability(
    make_http: Callable[..., TestClient], tokens: TokenStore, engine: Engine
) -> None:
    old = _seed(engine)
    writer, _ = tokens.create("bot", read=["*"], write=["*"])
    assert_error(make_http(writer).post("/gc"), 403, "capability_denied")
    assert old["demo"] in _ids(engine, "demo")
    assert_error(make_http().post("/gc"), 401, "unauthenticated")


def test_an_operator_of_some_worlds_gcs_only_those(
    make_http: Callable[..., TestClient], tokens: TokenStore, engine: Engine
) -> None:
    old = _seed(engine)
    ops, _ = tokens.create("ops", read=["demo"], write=[], operate=["demo"])
    r = make_http(ops).post("/gc")
    assert r.status_code == 200, r.text
    assert r.json()["by_world"] == {"demo": 1}
    assert old["demo"] not in _ids(engine, "demo") and old["secret"] in _ids(engine, "secret")


def test_the_client_gc_returns_the_engines_report(
    make_http: Callable[..., TestClient], tokens: TokenStore, engine: Engine
) -> None:
    _seed(engine)
    operator, _ = tokens.create("ops", read=["*"], write=[], operate=["*"])
    writer, _ = tokens.create("bot", read=["*"], write=["*"])
    with (
        Client("http://node", token=writer, transport=Via(make_http())) as db,
        pytest.raises(CapabilityDeniedError),
    ):
        db.gc()
    with Client("http://node", token=operator, transport=Via(make_http())) as db:
        report = db.gc()
    assert isinstance(report, GcReport)
    assert report.evicted == 2 and report.by_world == {"demo": 1, "secret": 1}
    assert report.by_reason == {"retention": 2}
