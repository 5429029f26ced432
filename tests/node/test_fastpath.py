"""The node's fast path: fixed-path JSON routes answered with public framework API only, and
the same answers (errors included) as the app's router would give."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dwbase.engine import Engine
from dwbase.errors import (
    CapabilityDeniedError,
    ConflictError,
    DWBaseError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    StorageError,
)

from .conftest import assert_error, new_atom

NODE = Path(__file__).resolve().parents[2] / "src" / "dwbase" / "node"
FRAMEWORK = ("fastapi", "starlette", "pydantic", "uvicorn", "anyio")


def test_the_node_subclasses_no_router_class_and_copies_no_framework_lookup() -> None:
    """No route class overriding FastAPI's handler factory, no reading of the app's exception
    handler table (Starlette's own lookup), and no private name imported from the stack."""
    problems: list[str] = []
    files = sorted(NODE.glob("*.py"))
    assert {"app.py", "fastpath.py", "routes.py"} <= {f.name for f in files}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rpartition(".")[2] for b in node.bases}
                if bases & {"APIRoute", "APIRouter", "Route", "Router", "BaseRoute"}:
                    problems.append(f"{where} class {node.name} subclasses {sorted(bases)}")
            elif isinstance(node, ast.FunctionDef) and node.name == "get_route_handler":
                problems.append(f"{where} overrides get_route_handler")
            elif isinstance(node, ast.Attribute) and node.attr == "exception_handlers":
                problems.append(f"{where} reads .exception_handlers")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FRAMEWORK):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or any(p.startswith("_") for p in (node.module or "").split(".")):
                    problems.append(f"{where} imports private {node.module} {private}")
    assert not problems


def test_fixed_path_json_routes_take_the_fast_path_and_answer_as_before(
    http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dwbase.node.fastpath import FastPath

    assert isinstance(http.app, FastAPI)
    fast = sorted(FastPath.for_app(http.app, _no_answer).routes)
    assert ("POST", "/ask") in fast and ("POST", "/remember") in fast
    assert ("POST", "/remember/batch") in fast and ("POST", "/replay") in fast
    assert all("{" not in path for _, path in fast)  # path-parameter routes use the router
    seen: list[str] = []
    real = FastPath.__call__

    async def spy(self: FastPath, route: Any, scope: Any, receive: Any, send: Any) -> None:
        seen.append(route.path)
        await real(self, route, scope, receive, send)

    monkeypatch.setattr(FastPath, "__call__", spy)
    ok = http.post("/remember", json=new_atom(), headers={"x-request-id": "d-1"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "d-1"
    assert ok.headers["content-type"] == "application/json"
    err = assert_error(http.post("/ask", json={"world": "demo"}), 400, "invalid_input")
    assert err["details"]["field"] == "text"  # the app's own validation answer
    bad = assert_error(
        http.post("/ask", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid_input",
    )
    assert bad["message"].startswith("request body is not valid JSON")
    assert seen == ["/remember", "/ask", "/ask"]
    assert_error(http.get("/ask"), 405, "method_not_allowed")  # not a fast route: the router
    assert http.get("/healthz").status_code == 200
    assert seen == ["/remember", "/ask", "/ask"]
    metrics = http.get("/metrics").text
    assert 'route="/remember",status="200"' in metrics and 'route="/ask",status="400"' in metrics


async def _no_answer(request: Any, exc: Exception) -> None:
    return None


def test_a_body_that_is_not_a_json_object_is_400_naming_what_to_send(http: TestClient) -> None:
    empty = assert_error(http.post("/remember"), 400, "invalid_input")
    assert empty["message"] == "a JSON request body is required"
    form = http.post("/remember", content=b"world=demo", headers={"content-type": "text/plain"})
    err = assert_error(form, 400, "invalid_input")
    assert "Content-Type: application/json" in err["message"]
    typed = http.post(
        "/remember",
        content=b'{"world": "demo", "worker": "a", "payload": {"text": "x"}}',
        headers={"content-type": "application/vnd.example+json; charset=utf-8"},
    )
    assert typed.status_code == 200, typed.text  # any +json type is JSON


@pytest.mark.parametrize(
    "exc",
    [
        InvalidInputError("importance 1.7 is outside [0, 1]", field="importance"),
        CapabilityDeniedError("no write on demo", world="demo"),
        NotFoundError("no world 'demo'"),
        ConflictError("world 'demo' is archived"),
        RateLimitedError("slow down", retry_after=2.5),
        StorageError("disk I/O error"),
        RuntimeError("disk controller on fire"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_on_the_fast_path_is_answered_as_on_the_router(
    http: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    def fail(*a: Any, **k: Any) -> Any:
        raise exc

    monkeypatch.setattr(engine, "replay", fail)  # POST /replay: the fast path
    monkeypatch.setattr(engine, "list_worlds", fail)  # GET /worlds: the router
    fast = http.post("/replay", json={"world": "demo"}, headers={"x-request-id": "r-1"})
    routed = http.get("/worlds", headers={"x-request-id": "r-1"})
    code = exc.code if isinstance(exc, DWBaseError) else "internal_error"
    if isinstance(exc, StorageError):
        code = "unavailable"
    assert_error(fast, routed.status_code, code)
    assert fast.json() == routed.json()
    for header in ("content-type", "retry-after", "www-authenticate"):
        assert fast.headers.get(header) == routed.headers.get(header), header
    assert "fire" not in fast.text and "Traceback" not in fast.text
