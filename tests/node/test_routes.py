"""Every route of the node in-process, and every error code it can answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dwbase.engine import Engine
from dwbase.errors import (
    CapabilityDeniedError,
    ConflictError,
    InternalError,
    InvalidHandleError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StorageError,
    UnauthenticatedError,
    UnavailableError,
)
from dwbase.node import STATUS
from dwbase.security.tokens import TokenStore

from .conftest import FakeClock, assert_error, make_settings, new_atom

# ------------------------------------------------------------------------------- writes


def test_remember_returns_the_id_as_a_json_string(http: TestClient, engine: Engine) -> None:
    resp = http.post("/remember", json=new_atom())
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    aid = resp.json()
    assert isinstance(aid, str)
    assert engine.get(aid).payload == {"text": "checkout latency 820ms"}


def test_remember_accepts_payload_json_links_and_all_fields(
    http: TestClient, engine: Engine
) -> None:
    first = http.post("/remember", json=new_atom()).json()
    resp = http.post(
        "/remember",
        json={
            "world": "demo",
            "worker": "agent-2",
            "kind": "reflection",
            "timestamp": "2024-01-01T12:00:00+02:00",
            "importance": 0.9,
            "payload_json": '{"text": "fixed"}',
            "vector": None,
            "flags": ["checked"],
            "labels": ["latency"],
            "links": [{"target": first, "kind": "supersedes"}, first],
        },
    )
    assert resp.status_code == 200, resp.text
    atom = engine.get(resp.json())
    assert atom.timestamp.startswith("2024-01-01T10:00:00")
    assert [(link.target, link.kind) for link in atom.links] == [
        (first, "supersedes"),
        (first, "references"),
    ]


def test_remember_reports_a_quarantined_write_in_body_and_header(http: TestClient) -> None:
    resp = http.post(
        "/remember",
        json={
            "world": "demo",
            "worker": "agent-1",
            "payload_json": '{"text": "latency", "ms": NaN}',
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["quarantined"] is True and body["reason"] == "impossible_number"
    assert resp.headers["x-dwbase-quarantined"] == f"{body['id']}=impossible_number"


def test_batch_stores_all_or_nothing(http: TestClient, engine: Engine) -> None:
    ok = http.post("/remember/batch", json={"atoms": [new_atom(text="a"), new_atom(text="b")]})
    assert ok.status_code == 200
    ids = ok.json()
    assert len(ids) == 2 and all(isinstance(i, str) for i in ids)
    before = engine.storage.count()
    bad = http.post("/remember/batch", json={"atoms": [new_atom(text="c"), new_atom(kind="dream")]})
    err = assert_error(bad, 400, "invalid_input")
    assert "atoms.1.kind" in err["message"]
    assert engine.storage.count() == before
    archived = http.post("/remember/batch", json={"atoms": []})
    assert archived.json() == []


# ------------------------------------------------------------------------------- reads


def test_ask_answers_with_the_original_shape(http: TestClient) -> None:
    aid = http.post("/remember", json=new_atom()).json()
    http.post("/remember", json=new_atom(text="the cafeteria serves soup"))
    resp = http.post("/ask", json={"world": "demo", "text": "why is checkout slow?", "limit": 1})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"world", "text", "supporting_atoms", "hits", "warnings"}
    assert body["hits"][0]["atom"]["id"] == aid
    assert set(body["hits"][0]) == {"atom", "score", "parts", "sources"}
    assert len(body["supporting_atoms"]) == 1


def test_ask_takes_filter_as_of_rank_and_weights(http: TestClient) -> None:
    http.post("/remember", json=new_atom(labels=["x"]))
    http.post("/remember", json=new_atom(text="checkout again"))
    resp = http.post(
        "/ask",
        json={
            "world": "demo",
            "text": "checkout",
            "filter": {"labels": ["x"], "kinds": ["observation"]},
            "rank": "importance",
            "weights": {"lexical": 1.0},
            "current_only": True,
            "as_of": "2999-01-01T00:00:00Z",
        },
    )
    assert resp.status_code == 200, resp.text
    assert [h["atom"]["labels"] for h in resp.json()["hits"]] == [["x"]]


def test_replay_returns_atoms_in_order_with_filter(http: TestClient) -> None:
    ids = [http.post("/remember", json=new_atom(text=f"n{i}")).json() for i in range(4)]
    resp = http.post("/replay", json={"world": "demo", "filter": {"limit": 3}})
    assert [a["id"] for a in resp.json()] == ids[:3]
    after = http.post("/replay", json={"world": "demo", "after": ids[1]})
    assert [a["id"] for a in after.json()] == ids[2:]
    assert http.post("/replay", json={"world": "empty"}).json() == []


def test_get_atom_and_404_when_absent(http: TestClient) -> None:
    aid = http.post("/remember", json=new_atom()).json()
    atom = http.get(f"/atoms/{aid}").json()
    assert atom["id"] == aid and atom["world"] == "demo" and atom["recorded_at"]
    assert_error(http.get("/atoms/01234567-0000-7000-8000-000000000000"), 404, "not_found")


def test_worlds_list_manage_and_policy(http: TestClient, engine: Engine) -> None:
    created = http.post(
        "/worlds/manage",
        json={"action": "create", "world": "ops", "description": "runbooks", "labels": ["team"]},
    )
    assert created.status_code == 200 and isinstance(created.json(), str)
    http.post("/remember", json=new_atom())
    assert http.get("/worlds").json() == sorted(["demo", "ops"]) or set(
        http.get("/worlds").json()
    ) == {"demo", "ops"}
    assert (
        http.post("/worlds/manage", json={"action": "archive", "world": "ops"}).status_code == 200
    )
    assert "ops" not in http.get("/worlds").json()
    assert "ops" in http.get("/worlds", params={"include_archived": "true"}).json()
    assert_error(
        http.post("/remember", json=new_atom(world="ops")), 409, "conflict"
    )  # archived world refuses writes
    assert http.post("/worlds/manage", json={"action": "resume", "world": "ops"}).status_code == 200
    assert http.post("/remember", json=new_atom(world="ops")).status_code == 200
    assert_error(
        http.post("/worlds/manage", json={"action": "archive", "world": "never"}), 404, "not_found"
    )
    assert_error(
        http.post("/worlds/manage", json={"action": "delete", "world": "ops"}),
        400,
        "invalid_input",
    )
    pid = http.post("/worlds/policy", json={"world": "demo", "retention_days": 30})
    assert pid.status_code == 200
    assert engine.policy("demo").retention_days == 30
    assert_error(http.post("/worlds/policy", json={"world": "demo"}), 400, "invalid_input")


# ------------------------------------------------------------------------------- observe


def test_observe_start_poll_stats_stop(http: TestClient) -> None:
    handle = http.post("/observe/start", json={"world": "demo"}).json()["handle"]
    ids = [http.post("/remember", json=new_atom(text=f"e{i}")).json() for i in range(3)]
    http.post("/remember", json=new_atom(world="other"))
    stats = http.get(f"/observe/{handle}/stats").json()
    assert stats["queued_count"] == 3 and stats["dropped_count"] == 0
    polled = http.post("/observe/poll", json={"handle": handle, "max": 2}).json()
    assert [a["id"] for a in polled] == ids[:2]
    assert [a["id"] for a in http.post("/observe/poll", json={"handle": handle}).json()] == ids[2:]
    assert http.post("/observe/stop", json={"handle": handle}).json() == {
        "handle": handle,
        "stopped": True,
    }
    assert_error(http.post("/observe/poll", json={"handle": handle}), 404, "invalid_handle")
    assert_error(http.get(f"/observe/{handle}/stats"), 404, "invalid_handle")
    assert_error(http.post("/observe/stop", json={"handle": handle}), 404, "invalid_handle")


def test_observe_start_resumes_after_an_atom_id(http: TestClient) -> None:
    ids = [http.post("/remember", json=new_atom(text=f"e{i}")).json() for i in range(3)]
    handle = http.post("/observe/start", json={"world": "demo", "after": ids[0]}).json()["handle"]
    assert [a["id"] for a in http.post("/observe/poll", json={"handle": handle}).json()] == ids[1:]


def _events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            out.append(fields)
    return out


def test_sse_stream_resumes_from_last_event_id(http: TestClient) -> None:
    ids = [http.post("/remember", json=new_atom(text=f"e{i}")).json() for i in range(4)]
    resp = http.get(
        "/observe/stream",
        params={"world": "demo", "max_events": 2},
        headers={"Last-Event-ID": ids[1]},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = _events(resp.text)
    assert [e["id"] for e in events] == ids[2:]
    assert all(e["event"] == "atom" for e in events)
    assert json.loads(events[0]["data"])["id"] == ids[2]


def test_sse_stream_ends_after_idle_timeout_and_404s_an_unknown_cursor(http: TestClient) -> None:
    resp = http.get("/observe/stream", params={"world": "demo", "timeout_s": 0.05})
    assert resp.status_code == 200 and _events(resp.text) == []
    assert_error(
        http.get("/observe/stream", params={"world": "demo"}, headers={"Last-Event-ID": "nope"}),
        404,
        "not_found",
    )
    assert_error(
        http.get("/observe/stream", params={"after": "x"}), 400, "invalid_input"
    )  # resuming needs a world


# ------------------------------------------------------------------------------- index & ops


def test_index_status_and_rebuild(http: TestClient) -> None:
    http.post("/remember", json=new_atom())
    status = http.get("/index/status").json()
    assert [s["world"] for s in status] == ["demo"]
    assert status[0]["ready"] is True and "rebuilding" in status[0]
    assert http.get("/index/status", params={"world": "demo"}).status_code == 200
    rebuilt = http.post("/index/rebuild", json={"world": "demo"})
    assert rebuilt.status_code == 200 and rebuilt.json()["worlds"] == ["demo"]
    assert http.post("/index/rebuild").status_code == 200


def test_quarantine_list_release_and_drop(http: TestClient, engine: Engine) -> None:
    a = http.post(
        "/remember",
        json={
            "world": "demo",
            "worker": "agent-1",
            "payload_json": '{"text": "latency", "ms": NaN}',
        },
    ).json()["id"]
    b = http.post("/remember", json=new_atom(payload_json='{"v": Infinity}', payload=None))
    b = b.json()["id"]
    held = http.get("/quarantine").json()
    assert {x["id"] for x in held} == {a, b}
    assert all(x["world"] == "quarantine:demo" and "suspect" in x["flags"] for x in held)
    assert http.get("/quarantine", params={"world": "demo", "limit": 1}).status_code == 200
    released = http.post(f"/quarantine/{a}/release").json()
    assert released["id"] == a and released["world"] == "demo"
    assert engine.get(a).world == "demo"
    assert http.post(f"/quarantine/{b}/drop").json() == {"id": b, "dropped": True}
    assert_error(http.post(f"/quarantine/{b}/drop"), 404, "not_found")
    assert_error(http.post(f"/quarantine/{a}/release"), 404, "not_found")


def test_health_healthz_readyz_and_metrics(http: TestClient, engine: Engine) -> None:
    http.post("/remember", json=new_atom())
    http.post("/ask", json={"world": "demo", "text": "checkout"})
    h = http.get("/health").json()
    assert h["status"] in ("ready", "degraded") and h["storage_ok"] is True
    assert h["disk_pressure"] in ("ok", "warn", "degraded")
    assert h["disk_total_bytes"] > 0
    assert (h["ask_workers"], h["ask_workers_ready"]) == (0, 0)
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
    text = http.get("/metrics").text
    for name in (
        "dwbase_remember_duration_seconds_bucket",
        "dwbase_ask_duration_seconds_count 1.0",
        "dwbase_atoms_total 1.0",
        "dwbase_quarantine_total",
        "dwbase_gc_evictions_total",
        "dwbase_observe_dropped_total",
        "dwbase_observe_queue_depth",
        "dwbase_index_freshness_seconds",
        'dwbase_background_failures_total{task="gc"}',
        "dwbase_disk_free_bytes",
        "dwbase_replication_sent_total",
        'dwbase_http_requests_total{route="/remember",status="200"} 1.0',
    ):
        assert name in text, name
    snap = http.get("/metrics/snapshot").json()
    assert snap["dwbase_atoms_total"] == 1
    assert snap["dwbase_ask_duration_seconds"]["count"] == 1
    assert snap["dwbase_ask_duration_seconds"]["p99"] > 0


def test_readyz_is_503_and_writes_are_unavailable_when_storage_is_unusable(
    http: TestClient, engine: Engine
) -> None:
    engine.storage.close()
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["storage_ok"] is False
    assert http.get("/healthz").status_code == 200
    assert_error(http.post("/remember", json=new_atom()), 503, "unavailable")


# ------------------------------------------------------------------------------- errors


def test_every_error_class_has_one_status() -> None:
    assert {
        InvalidInputError: 400,
        UnauthenticatedError: 401,
        CapabilityDeniedError: 403,
        NotFoundError: 404,
        InvalidHandleError: 404,
        ConflictError: 409,
        PayloadTooLargeError: 413,
        RateLimitedError: 429,
        UnavailableError: 503,
        StorageError: 503,
        InternalError: 500,
    } == STATUS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_atom(importance=1.7), "importance"),
        (new_atom(importance="high"), "importance"),
        (new_atom(kind="dream"), "kind"),
        (new_atom(world="bad world!"), "world"),
        (new_atom(colour="red"), "colour"),
        (new_atom(timestamp="yesterday"), "timestamp"),
        (new_atom(vector=[1.0, "x"]), "vector.1"),
        ({"worker": "a"}, "world"),
    ],
)
def test_bad_input_is_400_invalid_input_never_422(
    http: TestClient, body: dict[str, Any], field: str
) -> None:
    err = assert_error(http.post("/remember", json=body), 400, "invalid_input")
    assert err["details"].get("field", "").startswith(field.split(".")[0]), err


def test_malformed_json_and_missing_bodies_are_400(http: TestClient) -> None:
    bad = http.post("/remember", content=b"{oops", headers={"content-type": "application/json"})
    assert "not valid JSON" in assert_error(bad, 400, "invalid_input")["message"]
    missing = assert_error(http.post("/remember"), 400, "invalid_input")
    assert missing["message"] == "a JSON request body is required"
    form = http.post("/remember", content=b"world=a", headers={"content-type": "text/plain"})
    assert "Content-Type: application/json" in assert_error(form, 400, "invalid_input")["message"]
    typed = http.post(
        "/remember",
        content=b'{"world": "w", "worker": "a", "payload": 3}',
        headers={"content-type": "application/vnd.api+json"},
    )
    assert assert_error(typed, 400, "invalid_input")["details"]["field"] == "payload"
    assert_error(http.post("/ask", json=[1, 2]), 400, "invalid_input")
    assert_error(http.get("/worlds", params={"include_archived": "maybe"}), 400, "invalid_input")
    assert_error(http.post("/observe/poll", json={"handle": "h", "max": 0}), 400, "invalid_input")


def test_unknown_route_is_404_and_wrong_method_405_in_the_error_shape(http: TestClient) -> None:
    assert_error(http.get("/nope"), 404, "not_found")
    assert_error(http.get("/remember"), 405, "method_not_allowed")


def test_payload_and_body_limits_are_413(
    make_http: Callable[..., TestClient], tmp_path: Any
) -> None:
    s = make_settings(tmp_path, max_body_bytes=4096, **{"security.max_payload_bytes": 100})
    db = s.open_engine()
    http = make_http(settings=s, engine=db)
    err = assert_error(
        http.post("/remember", json=new_atom(text="x" * 200)), 413, "payload_too_large"
    )
    assert err["details"]["limit"] == 100
    assert_error(http.post("/remember", json=new_atom(text="x" * 5000)), 413, "payload_too_large")

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 1000

    assert_error(
        http.post("/remember", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    db.close()


def test_rate_limit_is_429_with_retry_after(
    make_http: Callable[..., TestClient], tokens: TokenStore, clock: FakeClock
) -> None:
    secret, _ = tokens.create("agent-1", remember_rate=2, ask_rate=1)
    http = make_http(secret)
    assert http.post("/remember", json=new_atom()).status_code == 200
    assert http.post("/remember", json=new_atom()).status_code == 200
    limited = http.post("/remember", json=new_atom())
    err = assert_error(limited, 429, "rate_limited")
    assert limited.headers["retry-after"] == "1"
    assert err["details"]["retry_after"] == pytest.approx(0.5)
    assert http.post("/ask", json={"world": "demo", "text": "x"}).status_code == 200
    assert_error(http.post("/ask", json={"world": "demo", "text": "x"}), 429, "rate_limited")
    clock.now += 1.0
    assert http.post("/remember", json=new_atom()).status_code == 200
    assert http.post("/ask", json={"world": "demo", "text": "x"}).status_code == 200


def test_a_real_fault_is_500_without_a_traceback(
    http: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(engine, "ask", boom)
    resp = http.post("/ask", json={"world": "demo", "text": "x"}, headers={"x-request-id": "r-1"})
    err = assert_error(resp, 500, "internal_error")
    assert "fire" not in resp.text and "Traceback" not in resp.text
    assert err["details"]["request_id"] == "r-1"


def test_request_id_is_echoed_or_generated(http: TestClient) -> None:
    assert http.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    generated = http.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    err = assert_error(http.get("/atoms/nope", headers={"x-request-id": "rid-9"}), 404, "not_found")
    assert err["details"]["request_id"] == "rid-9"


def test_openapi_describes_every_route(http: TestClient) -> None:
    doc = http.get("/openapi.json").json()
    routes = {
        ("post", "/remember"),
        ("post", "/remember/batch"),
        ("post", "/ask"),
        ("post", "/replay"),
        ("get", "/atoms/{atom_id}"),
        ("get", "/worlds"),
        ("post", "/worlds/manage"),
        ("post", "/worlds/policy"),
        ("post", "/observe/start"),
        ("post", "/observe/poll"),
        ("post", "/observe/stop"),
        ("get", "/observe/{handle}/stats"),
        ("get", "/observe/stream"),
        ("get", "/index/status"),
        ("post", "/index/rebuild"),
        ("get", "/quarantine"),
        ("post", "/quarantine/{atom_id}/release"),
        ("post", "/quarantine/{atom_id}/drop"),
        ("post", "/gc"),
        ("get", "/health"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/metrics/snapshot"),
        ("get", "/swarm"),
        ("get", "/"),
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "422" not in op["responses"], path
            assert "200" in op["responses"], path
    assert doc["components"]["schemas"]["NewAtom"]["additionalProperties"] is False
    assert "429" in doc["paths"]["/remember"]["post"]["responses"]
