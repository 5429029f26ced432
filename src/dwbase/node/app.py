"""The HTTP node: ``create_app(engine, settings)``. Routes translate HTTP to engine calls.

Every route authenticates the caller (a bearer token bound to a worker and capabilities, see
``security/tokens.py``), hands the resulting :class:`~dwbase.security.Caller` to the engine,
which checks it, and turns the engine's errors into ``{"error": {...}}`` with the status from
:data:`STATUS`. Field names follow the original DWBase node.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..config import Settings
from ..engine import Engine
from ..errors import (
    DWBaseError,
    StorageError,
)
from ..metrics import NodeMetrics
from ..security.ratelimit import RateLimiter
from ..security.tokens import TokenStore
from . import schemas as S
from .fastpath import ErrorAnswer, FastPath, body_model
from .index import add_index
from .routes import add_routes
from .state import (
    ASK_MAX_BODY_BYTES,
    AUTH_FIRST_BYTES,
    HTTP_CODES,
    BodyTooLarge,
    NodeState,
    error_response,
    run,
    status_for,
)
from .swarm import add_swarm_routes, make_swarm

log = logging.getLogger("dwbase.node")
access_log = logging.getLogger("dwbase.node.access")

# --------------------------------------------------------------------------------- middleware


class NodeMiddleware:
    """Request ids, the request-body limit, access logs and per-route HTTP metrics; the
    fixed-path JSON routes are answered by the fast path (``node/fastpath.py``)."""

    def __init__(self, app: ASGIApp, state: NodeState, answer: ErrorAnswer) -> None:
        self.app = app
        self.state = state
        self.answer = answer
        self.limit = state.settings.max_body_bytes
        self.ask_limit = min(self.limit, ASK_MAX_BODY_BYTES)
        # New request ids: 16 random hex digits for this process, then a counter (no
        # urandom call per request, and still unique across restarts and nodes).
        self._rid_prefix = os.urandom(8).hex()
        self._rid_next = itertools.count(1).__next__
        self._fast: FastPath | None = None

    def _refuse_unread(
        self, scope: Scope, length: bytes | None, chunked: bool, limit: int, rid: str
    ) -> Response | None:
        """The answer to a request refused before its body is read, if it is refused.

        A body over ``limit`` is refused by its Content-Length; one over
        :data:`AUTH_FIRST_BYTES`, or of unknown length, only after the caller's token is
        checked, so nobody without a valid token makes the node read and parse megabytes.
        """
        size = int(length) if length is not None and length.isdigit() else None
        if size is not None and size > limit:
            resp = error_response(
                "payload_too_large",
                f"request body is {size} bytes; the limit for {scope['path']} is {limit}",
                {"limit": limit},
                413,
                rid,
            )
        elif (chunked or (size or 0) > AUTH_FIRST_BYTES) and self.state.auth_enabled:
            try:
                self.state.principal(Request(scope))
            except DWBaseError as exc:
                resp = error_response(exc.code, exc.message, exc.details, status_for(exc), rid)
            else:
                return None
        else:
            return None
        resp.headers["connection"] = "close"  # the unread body must not be taken for a request
        return resp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if 0 < len(text) <= 128 and text.isprintable():
                    rid = text
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        rid = rid or f"{self._rid_prefix}{self._rid_next():016x}"
        scope["dwbase.request_id"] = rid
        start = time.perf_counter()
        status = [500]
        started = [False]
        rid_bytes = rid.encode("latin-1")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started[0] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid_bytes)]
            await send(message)

        received = [0]
        limit = self.ask_limit if scope["path"] == "/ask" else self.limit

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            refusal = self._refuse_unread(scope, length, chunked, limit, rid)
            if refusal is not None:
                await refusal(scope, receive, send_wrapper)
            else:
                fast = self._fast
                if fast is None:  # the app's routes are complete by its first request
                    fast = self._fast = FastPath.for_app(scope["app"], self.answer)
                route = fast.route_for(scope)
                if route is not None:
                    await fast(route, scope, limited_receive, send_wrapper)
                else:
                    await self.app(scope, limited_receive, send_wrapper)
        except ClientDisconnect:
            # The client left before its body was read (or the node closed the connection:
            # limits.body_timeout_s); nobody is there to answer.
            if not started[0]:
                status[0] = 499
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            m = self.state.metrics
            m.http_seconds.labels(template).observe(elapsed)
            m.http_requests.labels(template, str(status[0])).inc()
            if self.state.settings.access_log and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "fields": {
                            "request_id": rid,
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "route": template,
                            "status": status[0],
                            "duration_ms": round(elapsed * 1000, 3),
                            "principal": scope.get("dwbase.principal"),
                        }
                    },
                )


# --------------------------------------------------------------------------------- the app


def create_app(
    engine: Engine,
    settings: Settings | None = None,
    *,
    tokens: TokenStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    metrics: NodeMetrics | None = None,
) -> FastAPI:
    """The node's ASGI app over ``engine``.

    >>> import dwbase
    >>> from fastapi.testclient import TestClient
    >>> from dwbase.config import load_settings
    >>> app = create_app(dwbase.open(":memory:"), load_settings(None, environ={}))
    >>> with TestClient(app) as http:
    ...     aid = http.post("/remember", json={"world": "demo", "worker": "a",
    ...                                        "payload": {"text": "hi"}}).json()
    ...     http.get(f"/atoms/{aid}").json()["payload_json"]
    '{"text":"hi"}'
    """
    from ..config import load_settings
    from ..integrations.mcp_node import add_mcp

    settings = settings or load_settings(None, environ={})
    state = NodeState(
        engine,
        settings,
        tokens or TokenStore(settings.tokens_path),
        RateLimiter(clock=clock),
        metrics
        or NodeMetrics(
            engine,
            disk_warn_pct=settings.health_disk_warn_pct,
            disk_degraded_pct=settings.health_disk_degraded_pct,
            disk_min_free_mb=settings.health_min_free_mb,
        ),
    )

    swarm = make_swarm(engine, settings)
    state.metrics.swarm = swarm

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.open()
        if swarm is not None:
            swarm.start()
        yield
        if swarm is not None:
            await run(swarm.stop)
        state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="DWBase node",
        version=__version__,
        description="Memory database for AI agents: remember, ask, replay, observe.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.node = state
    answer = _install_errors(app)

    add_routes(app, state)
    add_index(app, state)
    add_mcp(app, state)  # the MCP server at /mcp, behind the same tokens
    add_swarm_routes(app, state)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    app.add_middleware(NodeMiddleware, state=state, answer=answer)
    return app


def _unknown_field(request: Request, loc: list[str]) -> str:
    """An unknown body field's message, naming the fields valid where it was."""
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    model = body_model(endpoint) if callable(endpoint) else None
    valid = S.valid_fields(model, loc[:-1]) if model is not None else None
    return f"unknown field; valid: {', '.join(valid)}" if valid else "unknown field"


def _install_errors(app: FastAPI) -> ErrorAnswer:
    """Register the app's error answers; return them as one function for the fast path."""

    def rid(request: Request) -> str | None:
        value = request.scope.get("dwbase.request_id")
        return value if isinstance(value, str) else None

    async def on_dwbase(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DWBaseError)
        status = status_for(exc)
        if status >= 500:
            log.error(
                "engine error",
                exc_info=exc,
                extra={"fields": {"request_id": rid(request), "code": exc.code}},
            )
        code = "unavailable" if isinstance(exc, StorageError) else exc.code
        return error_response(code, exc.message, exc.details, status, rid(request))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
            msg = str(e.get("msg", ""))
            if e.get("type") == "json_invalid":
                loc, msg = [], f"request body is not valid JSON: {e.get('ctx', {}).get('error')}"
            elif not loc and e.get("type") == "model_attributes_type":
                msg = "request body must be a JSON object (Content-Type: application/json)"
            elif e.get("type") == "missing" and e.get("loc") == ("body",):
                msg = "a JSON request body is required"
            elif e.get("type") == "extra_forbidden":
                msg = _unknown_field(request, loc)
            problems.append({"field": ".".join(loc), "message": msg})
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        where = f"{first['field']}: " if first["field"] else ""
        return error_response(
            "invalid_input",
            f"{where}{first['message']}",
            {"field": first["field"], "errors": problems[:20]},
            400,
            rid(request),
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = HTTP_CODES.get(exc.status_code, "invalid_input")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        resp = error_response(code, message, {}, exc.status_code, rid(request))
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    async def on_fault(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": rid(request)}})
        return error_response(
            "internal_error",
            "internal error; the node logged it with this request id",
            {},
            500,
            rid(request),
        )

    answers: list[tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]]
    answers = [
        (DWBaseError, on_dwbase),
        (RequestValidationError, on_validation),
        (HTTPException, on_http),
    ]
    for cls, handler in answers:
        app.add_exception_handler(cls, handler)
    app.add_exception_handler(Exception, on_fault)  # the server-error middleware's

    async def answer(request: Request, exc: Exception) -> Response | None:
        # The three classes are disjoint, so at most one answer fits.
        for cls, handler in answers:
            if isinstance(exc, cls):
                return await handler(request, exc)
        return None  # a fault: re-raised to the server-error middleware, as on the router

    return answer


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "dwb_<id>_<secret>"}
    }
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            # Validation failures are answered 400 invalid_input, never FastAPI's 422.
            op.get("responses", {}).pop("422", None)
            for status, resp in op.get("responses", {}).items():
                # Errors are JSON even on routes whose success is a stream or plain text.
                if status.isdigit() and int(status) >= 400 and "content" in resp:
                    media: dict[str, Any] = next(iter(resp["content"].values()), {})
                    schema_ = media.get("schema")
                    resp["content"] = {"application/json": {"schema": schema_}}
            if path not in ("/", "/healthz", "/readyz"):
                # Optional: a node with no tokens configured takes requests without one.
                op["security"] = [{"bearer": []}, {}]
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"].get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema
