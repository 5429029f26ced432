"""The HTTP node: ``create_app(engine, settings)``. Routes translate HTTP to engine calls.

Every route authenticates the caller (a bearer token bound to a worker and capabilities, see
``security/tokens.py``), hands the resulting :class:`~dwbase.security.Caller` to the engine,
which checks it, and turns the engine's errors into ``{"error": {...}}`` with the status from
:data:`STATUS`. Field names follow the original DWBase node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import orjson
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
    CapabilityDeniedError,
    ConflictError,
    DWBaseError,
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
from ..metrics import NodeMetrics
from ..model import Atom
from ..security.caps import Caller
from ..security.ratelimit import RateLimiter, retry_after_header
from ..security.tokens import TokenStore
from .askpool import AskPool
from .lanes import Lane, WriteLane
from .lean import LeanDispatch, LeanRoute
from .limits import ObserveLimits

log = logging.getLogger("dwbase.node")
access_log = logging.getLogger("dwbase.node.access")

STATUS: dict[type[DWBaseError], int] = {
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
}
"""The one table from error class to HTTP status (subclasses use their nearest ancestor)."""

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "capability_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}

T = TypeVar("T")


def status_for(exc: DWBaseError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``key`` scopes rate limits and observe handles."""

    key: str
    caller: Caller | None  # None: the store's owner (a node without tokens)
    remember_rate: float | None
    ask_rate: float | None


AUTH_FIRST_BYTES = 64 * 1024
"""A request body larger than this (or of unknown length) is read only after its token is
checked: an unauthenticated client cannot make the node read and parse a large body."""


ASK_MAX_BODY_BYTES = 256 * 1024
"""The largest ``POST /ask`` body: room for a question of ``MAX_QUESTION_CHARS`` characters
(even all escaped), a vector of ``MAX_VECTOR_DIMS`` floats and a filter, so a larger one is
refused by its length before the node reads and parses it."""


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


@dataclass(slots=True)
class _Turn:
    slots: asyncio.Semaphore
    users: int = 0  # asks holding or awaiting a slot


class NodeState:
    """What the routes share: the engine, settings, tokens, limits, metrics, handles."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        tokens: TokenStore,
        limiter: RateLimiter,
        metrics: NodeMetrics,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter
        self.metrics = metrics
        self.handles: dict[str, str] = {}  # observe handle -> principal key
        self.observe_limits = ObserveLimits(settings, self.handles, self._observe_alive)
        self._tokens_seen = tokens.generation  # token file version the handles were checked at
        if settings.auth_required:
            tokens.mark_required()  # a node that required tokens once keeps requiring them
        self.reads = Lane("read", settings.read_threads)  # ask, inspect
        self.writes = WriteLane(engine)  # single remembers, group-committed
        self.asks = (
            AskPool(settings, lambda: engine.generation, settings.ask_workers)
            if settings.ask_workers
            else None
        )
        self.ask_share = max(settings.read_threads, settings.ask_workers)
        self._ask_turns: dict[str, _Turn] = {}

    def open(self) -> None:
        self.writes.open()
        self.reads.open()
        if self.asks is not None:
            self.asks.start()

    def close(self) -> None:
        """Finish queued engine calls, stop lanes and ask workers (before the engine closes)."""
        if self.asks is not None:
            self.asks.close()
        self.writes.close()
        self.reads.close()

    async def ask_json(
        self, kwargs: dict[str, Any], caller: Caller | None, key: str = "anonymous"
    ) -> bytes:
        """``engine.ask(**kwargs)`` as response JSON: by an ask worker when one is ready.

        Principal ``key`` has at most :attr:`ask_share` asks in the read lane or at the ask
        workers at once; its others wait here, in order. So one caller's many (or long) asks
        queue behind each other, and another caller's ask waits for at most the ones already
        running, not for everything the first caller sent.
        """
        async with self.turn(key):
            return await self._ask_json(kwargs, caller)

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait for one of principal ``key``'s :attr:`ask_share` slots for a read (an ask or
        a replay): one caller's many reads queue behind each other, not in front of others'."""
        turn = self._ask_turns.get(key)
        if turn is None:
            turn = self._ask_turns[key] = _Turn(asyncio.Semaphore(self.ask_share))
        turn.users += 1
        try:
            async with turn.slots:
                yield
        finally:
            turn.users -= 1
            if not turn.users:  # nobody holds or awaits it: a new one next time, on any loop
                del self._ask_turns[key]

    async def _ask_json(self, kwargs: dict[str, Any], caller: Caller | None) -> bytes:
        if self.asks is not None:
            body = await self.asks.ask(kwargs, caller)
            if body is not None:
                self.engine.counters.asks_total += 1
                return body
        answer = await self.reads.call(self.engine.ask, **kwargs, caller=caller)
        return _dumps(answer.to_dict())

    @property
    def auth_enabled(self) -> bool:
        # Fails closed: once tokens were required (see TokenStore.required) they stay required.
        return self.settings.auth_required or self.tokens.required()

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not self.auth_enabled:
            p = Principal(
                key="anonymous",
                caller=None,
                remember_rate=self.settings.auth_remember_rate or None,
                ask_rate=self.settings.auth_ask_rate or None,
            )
        else:
            if not header:
                raise UnauthenticatedError(
                    "this node needs a bearer token: send 'Authorization: Bearer dwb_...'"
                )
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise UnauthenticatedError("Authorization must be 'Bearer <token>'")
            info = self.tokens.authenticate(secret.strip())
            p = Principal(
                key="token:" + info.id,
                caller=info.caller(),
                remember_rate=info.remember_rate or self.settings.auth_remember_rate or None,
                ask_rate=info.ask_rate or self.settings.auth_ask_rate or None,
            )
        if self.tokens.generation != self._tokens_seen:
            self._end_revoked_handles()
        request.scope["dwbase.principal"] = p.key
        return p

    def recheck(self, p: Principal) -> None:
        """Raise if ``p`` may no longer use what it opened (a revoked token, auth turned on)."""
        if p.key.startswith("token:"):
            self.tokens.recheck(p.key[len("token:") :])
        elif self.auth_enabled:
            raise UnauthenticatedError("this node now requires a bearer token")

    def _end_revoked_handles(self) -> None:
        """Stop the observe handles (and SSE streams) of principals the token file no longer
        admits; called when the token file changed."""
        self._tokens_seen = self.tokens.generation
        for handle, key in list(self.handles.items()):
            try:
                self.recheck(Principal(key, None, None, None))
            except DWBaseError:
                try:
                    self.engine.observe_stop(handle)
                except InvalidHandleError:
                    continue  # not a live subscription (expired, or not made yet)
                self.handles.pop(handle, None)

    def own_handle(self, p: Principal, handle: str) -> None:
        if self.handles.get(handle) != p.key:
            raise InvalidHandleError(
                f"observe handle {handle!r} is unknown, stopped or expired; start a new one",
                handle=handle,
            )

    def _observe_alive(self, handle: str) -> bool:
        try:
            self.engine.observe_stats(handle)
        except InvalidHandleError:
            return False
        return True


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call on a worker thread, keeping the event loop free."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: a tenth of the stdlib's time for an ask's answer)."""
    return orjson.dumps(data)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        _dumps(data), status_code=status, media_type="application/json", headers=headers
    )


def _atoms(atoms: list[Atom]) -> Response:
    return _json([a.to_dict() for a in atoms])


def error_response(
    code: str, message: str, details: Mapping[str, Any], status: int, request_id: str | None
) -> Response:
    headers: dict[str, str] = {}
    if status == 429:
        headers["Retry-After"] = retry_after_header(float(details.get("retry_after", 1.0)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dwbase"'
    if request_id:
        details = {**details, "request_id": request_id}
    return _json(
        {"error": {"code": code, "message": message, "details": dict(details)}}, status, headers
    )


# --------------------------------------------------------------------------------- middleware


class NodeMiddleware:
    """Request ids, the request-body limit, access logs and per-route HTTP metrics."""

    def __init__(self, app: ASGIApp, state: NodeState) -> None:
        self.app = app
        self.state = state
        self.limit = state.settings.max_body_bytes
        self.ask_limit = min(self.limit, ASK_MAX_BODY_BYTES)
        # New request ids: 16 random hex digits for this process, then a counter (no
        # urandom call per request, and still unique across restarts and nodes).
        self._rid_prefix = os.urandom(8).hex()
        self._rid_next = itertools.count(1).__next__
        self._dispatch: LeanDispatch | None = None

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
                    raise _BodyTooLarge(limit)
            return message

        try:
            refusal = self._refuse_unread(scope, length, chunked, limit, rid)
            if refusal is not None:
                await refusal(scope, receive, send_wrapper)
            else:
                dispatch = self._dispatch
                if dispatch is None:  # the app's routes are complete by its first request
                    dispatch = self._dispatch = LeanDispatch(scope["app"])
                route = dispatch.route_for(scope)
                if route is not None:
                    await dispatch(route, scope, limited_receive, send_wrapper)
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

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.open()
        yield
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
    app.router.route_class = LeanRoute
    _install_errors(app)
    from .routes import add_routes

    add_routes(app, state)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    app.add_middleware(NodeMiddleware, state=state)
    return app


def _install_errors(app: FastAPI) -> None:
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
        code = _HTTP_CODES.get(exc.status_code, "invalid_input")
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

    app.add_exception_handler(DWBaseError, on_dwbase)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_fault)


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
            if path not in ("/healthz", "/readyz"):
                # Optional: a node with no tokens configured takes requests without one.
                op["security"] = [{"bearer": []}, {}]
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"].get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema
