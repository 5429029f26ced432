"""Authorization matrix: several tokens × every route × allowed and forbidden worlds.

No route may return or stream an atom of a world the token cannot read; every denial is 403
(404 for ids and handles), never 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dwbase.engine import Engine
from dwbase.security.caps import world_matches
from dwbase.security.tokens import TokenStore

from .conftest import assert_error

WORLDS = ["demo", "demo-2", "secret", "tenant:acme/support", "tenant:other/x"]


@dataclass
class Tok:
    name: str
    read: list[str]
    write: list[str]
    admin: bool = False
    secret: str = ""

    def can_read(self, world: str) -> bool:
        return world_matches(world, self.read)

    def can_write(self, world: str) -> bool:
        return world_matches(world, self.write)


TOKENS = [
    Tok("demo", read=["demo*"], write=["demo"]),
    Tok("acme", read=["tenant:acme/*"], write=["tenant:acme/*"]),
    Tok("reader", read=["*"], write=[]),
    Tok("nobody", read=[], write=[]),
    Tok("admin", read=["*"], write=["*"], admin=True),
]


@pytest.fixture
def seeded(engine: Engine) -> dict[str, str]:
    """One atom per world written by the store's owner, plus one held in quarantine."""
    ids: dict[str, str] = {
        w: engine.remember(w, "seed", "observation", {"text": f"seed of {w}"}) for w in WORLDS
    }
    held = engine.remember("secret", "seed", payload_json='{"v": NaN}')
    assert held.quarantined
    ids["quarantine:secret"] = held
    return ids


@pytest.fixture
def clients(
    make_http: Callable[..., TestClient], tokens: TokenStore
) -> Iterator[dict[str, tuple[Tok, TestClient]]]:
    out = {}
    for t in TOKENS:
        secret, _ = tokens.create(f"worker-{t.name}", read=t.read, write=t.write, admin=t.admin)
        out[t.name] = (t, make_http(secret))
    yield out


def atoms_in(body: Any) -> Iterator[dict[str, Any]]:
    """Every atom-shaped object anywhere in a response body."""
    if isinstance(body, dict):
        if {"id", "world", "payload_json"} <= set(body):
            yield body
        for v in body.values():
            yield from atoms_in(v)
    elif isinstance(body, list):
        for v in body:
            yield from atoms_in(v)


def check(tok: Tok, resp: Any, allowed: bool, *, deny: int = 403) -> None:
    assert resp.status_code < 500, resp.text
    if allowed:
        assert resp.status_code == 200, (tok.name, resp.text)
    else:
        code = {403: "capability_denied", 404: "not_found"}[deny]
        assert resp.status_code == deny, (tok.name, resp.status_code, resp.text)
        assert resp.json()["error"]["code"] in (code, "invalid_handle")
    if resp.headers.get("content-type", "").startswith("application/json"):
        for atom in atoms_in(resp.json()):
            assert tok.can_read(atom["world"]), (tok.name, atom["world"])


@pytest.mark.parametrize("world", WORLDS)
def test_writes_follow_write_patterns(
    clients: dict[str, tuple[Tok, TestClient]], engine: Engine, world: str
) -> None:
    for tok, http in clients.values():
        ok = tok.can_write(world)
        atom = {"world": world, "worker": "claimed", "payload": {"text": "w"}}
        r = http.post("/remember", json=atom)
        check(tok, r, ok)
        if ok:
            assert engine.get(r.json()).worker == f"worker-{tok.name}"  # worker from the token
        check(tok, http.post("/remember/batch", json={"atoms": [atom]}), ok)
        # Lifecycle and policy are capabilities of their own: an admin token has them over
        # its write worlds; a plain writer has neither.
        steward = ok and tok.admin
        for action in ("create", "archive", "resume"):
            r = http.post("/worlds/manage", json={"action": action, "world": world})
            check(tok, r, steward)
        r = http.post("/worlds/policy", json={"world": world, "retention_days": 9})
        check(tok, r, steward)


def test_a_batch_with_one_forbidden_world_stores_nothing(
    clients: dict[str, tuple[Tok, TestClient]], engine: Engine
) -> None:
    tok, http = clients["demo"]
    before = engine.storage.count()
    atoms = [{"world": "demo", "payload": {}}, {"world": "secret", "payload": {}}]
    check(tok, http.post("/remember/batch", json={"atoms": atoms}), False)
    assert engine.storage.count() == before


@pytest.mark.parametrize("world", [*WORLDS, "quarantine:secret"])
def test_reads_follow_read_patterns(
    clients: dict[str, tuple[Tok, TestClient]], seeded: dict[str, str], world: str
) -> None:
    for tok, http in clients.values():
        ok = tok.can_read(world)
        check(tok, http.post("/ask", json={"world": world, "text": "seed"}), ok)
        r = http.post("/replay", json={"world": world})
        check(tok, r, ok)
        if ok:
            assert [a["id"] for a in r.json()] == [seeded[world]]
        check(tok, http.get(f"/atoms/{seeded[world]}"), ok, deny=404)
        check(tok, http.post("/observe/start", json={"world": world}), ok)
        check(tok, http.get("/index/status", params={"world": world}), ok)
        if not world.startswith("quarantine:"):
            check(tok, http.post("/index/rebuild", json={"world": world}), ok)
        s = http.get("/observe/stream", params={"world": world, "timeout_s": 0.05})
        check(tok, s, ok)


def test_listings_show_only_readable_worlds(
    clients: dict[str, tuple[Tok, TestClient]], seeded: dict[str, str]
) -> None:
    for tok, http in clients.values():
        worlds = http.get("/worlds", params={"include_archived": "true"}).json()
        assert worlds == [w for w in WORLDS if tok.can_read(w)] or set(worlds) == {
            w for w in WORLDS if tok.can_read(w)
        }
        status = http.get("/index/status").json()
        assert {s["world"] for s in status} == {w for w in WORLDS if tok.can_read(w)}


def test_world_free_observers_never_see_forbidden_atoms(
    clients: dict[str, tuple[Tok, TestClient]], engine: Engine
) -> None:
    handles = {
        name: http.post("/observe/start", json={}).json()["handle"]
        for name, (_tok, http) in clients.items()
    }
    for w in WORLDS:
        engine.remember(w, "owner", "observation", {"text": "live"})
    engine.remember("secret", "owner", payload_json='{"v": Infinity}')  # quarantined
    for name, (tok, http) in clients.items():
        got = http.post("/observe/poll", json={"handle": handles[name], "max": 100}).json()
        assert {a["world"] for a in got} == {
            w for w in [*WORLDS, "quarantine:secret"] if tok.can_read(w)
        }


def test_world_free_sse_streams_only_readable_atoms(
    clients: dict[str, tuple[Tok, TestClient]], engine: Engine, seeded: dict[str, str]
) -> None:
    for tok, http in clients.values():
        # Resume in every world the token may read: the backlog must hold only those.
        for w in WORLDS:
            r = http.get(
                "/observe/stream",
                params={"world": w, "timeout_s": 0.05},
                headers={"Last-Event-ID": seeded[w]},
            )
            check(tok, r, tok.can_read(w))
            if tok.can_read(w) and w != "demo":
                # A cursor from another world is unknown here: it reveals nothing about it.
                r2 = http.get(
                    "/observe/stream",
                    params={"world": w, "timeout_s": 0.05},
                    headers={"Last-Event-ID": seeded["demo"]},
                )
                assert r2.status_code == 404, r2.text
            for block in r.text.split("\n\n"):
                for line in block.splitlines():
                    if line.startswith("data: "):
                        assert tok.can_read(json.loads(line[6:])["world"])


def test_observe_handles_belong_to_their_token(
    clients: dict[str, tuple[Tok, TestClient]],
) -> None:
    _, admin = clients["admin"]
    handle = admin.post("/observe/start", json={}).json()["handle"]
    for name, (tok, http) in clients.items():
        if name == "admin":
            continue
        check(tok, http.post("/observe/poll", json={"handle": handle}), False, deny=404)
        check(tok, http.get(f"/observe/{handle}/stats"), False, deny=404)
        check(tok, http.post("/observe/stop", json={"handle": handle}), False, deny=404)
    assert admin.get(f"/observe/{handle}/stats").status_code == 200


def test_operator_routes_need_an_admin_token(
    clients: dict[str, tuple[Tok, TestClient]], seeded: dict[str, str]
) -> None:
    held = seeded["quarantine:secret"]
    for name, (tok, http) in clients.items():
        if name == "admin":
            continue
        check(tok, http.get("/quarantine"), False)
        check(tok, http.post(f"/quarantine/{held}/release"), False)
        check(tok, http.post(f"/quarantine/{held}/drop"), False)
        check(tok, http.post("/index/rebuild"), False)
        check(tok, http.post("/gc"), False)
        check(tok, http.get("/health"), True)
        check(tok, http.get("/metrics/snapshot"), True)
    tok, admin = clients["admin"]
    check(tok, admin.get("/quarantine"), True)
    check(tok, admin.post(f"/quarantine/{held}/drop"), True)
    check(tok, admin.post("/gc"), True)


def test_a_scoped_admin_cannot_release_or_drop_held_atoms_of_other_worlds(
    make_http: Callable[..., TestClient],
    tokens: TokenStore,
    engine: Engine,
    seeded: dict[str, str],
) -> None:
    secret, _ = tokens.create("ops", read=["demo"], admin=True)
    http = make_http(secret)
    held = seeded["quarantine:secret"]
    for action in ("release", "drop"):
        r = http.post(f"/quarantine/{held}/{action}")
        assert_error(r, 403, "capability_denied")
        assert "NaN" not in r.text  # the held payload is not handed out
    assert [a.id for a in engine.quarantine_list("secret")] == [held]
    assert_error(http.get("/quarantine", params={"world": "secret"}), 403, "capability_denied")
    assert http.get("/quarantine").json() == []  # nothing is held in demo
    demo_held = engine.remember("demo", "seed", "observation", {"v": float("nan")})
    assert [a["id"] for a in http.get("/quarantine").json()] == [demo_held]
    assert http.post(f"/quarantine/{demo_held}/release").json()["world"] == "demo"


def test_capability_limits_on_kind_label_and_importance(
    make_http: Callable[..., TestClient], tokens: TokenStore
) -> None:
    secret, _ = tokens.create(
        "bot", read=["*"], write=["*"], kinds=["observation"], labels=["ok"], importance_cap=0.7
    )
    http = make_http(secret)
    base = {"world": "demo", "payload": {"text": "x"}}
    assert http.post("/remember", json={**base, "labels": ["ok"]}).status_code == 200
    for extra in ({"kind": "plan"}, {"labels": ["other"]}, {"importance": 0.9}):
        assert_error(http.post("/remember", json={**base, **extra}), 403, "capability_denied")


ROUTES: list[tuple[str, str, Any]] = [
    ("post", "/remember", {"world": "demo", "payload": {}}),
    ("post", "/remember/batch", {"atoms": []}),
    ("post", "/ask", {"world": "demo", "text": "x"}),
    ("post", "/replay", {"world": "demo"}),
    ("get", "/atoms/x", None),
    ("get", "/worlds", None),
    ("post", "/worlds/manage", {"action": "create", "world": "demo"}),
    ("post", "/worlds/policy", {"world": "demo", "retention_days": 1}),
    ("post", "/observe/start", {"world": "demo"}),
    ("post", "/observe/poll", {"handle": "h"}),
    ("post", "/observe/stop", {"handle": "h"}),
    ("get", "/observe/h/stats", None),
    ("get", "/observe/stream?world=demo&timeout_s=0.01", None),
    ("get", "/index/status", None),
    ("post", "/index/rebuild", None),
    ("get", "/quarantine", None),
    ("post", "/quarantine/x/release", None),
    ("post", "/quarantine/x/drop", None),
    ("post", "/gc", None),
    ("get", "/health", None),
    ("get", "/metrics", None),
    ("get", "/metrics/snapshot", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_a_valid_token_once_tokens_exist(
    make_http: Callable[..., TestClient], tokens: TokenStore, method: str, path: str, body: Any
) -> None:
    secret, info = tokens.create("w", read=["*"], write=["*"], admin=True)
    kw: dict[str, Any] = {"json": body} if body is not None else {}
    for headers in (
        {},
        {"Authorization": "Bearer dwb_000000000000_nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": f"Bearer {secret}x"},
    ):
        r = getattr(make_http(), method)(path, headers=headers, **kw)
        assert_error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert getattr(make_http(secret), method)(path, **kw).status_code < 500
    tokens.revoke(info.id)
    tokens._stamp = None  # the node re-reads the file within 0.5 s; force it now
    assert_error(getattr(make_http(secret), method)(path, **kw), 401, "unauthenticated")
    assert make_http().get("/healthz").status_code == 200
    assert make_http().get("/readyz").status_code == 200
