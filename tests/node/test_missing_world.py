"""Asking or replaying a world that holds no atoms, over HTTP: the answer says so (a warning
in ``/ask``, an empty ``/replay``), and a caller who may not read the world learns nothing
more than before (403 for a missing world as for a present one)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from dwbase.engine import Engine
from dwbase.security.tokens import TokenStore

from .conftest import assert_error

MISSING = "world 'nowhere' holds no atoms: nothing was remembered there (or all of it was removed)"


def test_ask_says_the_world_holds_no_atoms_and_replay_is_empty(http: TestClient) -> None:
    r = http.post("/ask", json={"world": "nowhere", "text": "anything?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"] == [] and body["supporting_atoms"] == []
    assert body["warnings"] == [MISSING]
    r = http.post("/replay", json={"world": "nowhere"})
    assert r.status_code == 200 and r.json() == []


def test_a_world_with_atoms_gets_no_such_warning(http: TestClient, engine: Engine) -> None:
    engine.remember("demo", "a", text="checkout latency 820ms")
    r = http.post("/ask", json={"world": "demo", "text": "checkout", "filter": {"kinds": ["plan"]}})
    assert r.status_code == 200 and r.json()["hits"] == [] and r.json()["warnings"] == []


def test_a_caller_who_may_not_read_gets_the_same_403_for_missing_and_present_worlds(
    make_http: Callable[..., TestClient], tokens: TokenStore, engine: Engine
) -> None:
    engine.remember("secret", "a", text="the vault code is 1234")
    secret, _ = tokens.create("reader", read=["demo"], write=["demo"])
    http = make_http(secret)
    seen = set()
    for world in ("secret", "nowhere"):
        for route, body in (
            ("/ask", {"world": world, "text": "vault"}),
            ("/replay", {"world": world}),
        ):
            err = assert_error(http.post(route, json=body), 403, "capability_denied")
            details = {k: v for k, v in err["details"].items() if k not in ("request_id", "world")}
            seen.add((err["message"].replace(world, "W"), tuple(sorted(details.items()))))
    assert len(seen) == 1
