"""What every route of the node shares: the error table, the caller, the lanes and ask
workers, observe limits and handles, and the small response helpers.

Kept apart from ``app.py`` (which builds the application) so that ``routes.py`` and ``app.py``
both import it and neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

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
from .limits import ObserveLimits
from .wireform import payload_fragment

log = logging.getLogger("dwbase.node")

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

HTTP_CODES = {
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


class BodyTooLarge(HTTPException):
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
        self.asks = AskPool(settings, settings.ask_workers) if settings.ask_workers else None
        self.replay_share = max(settings.read_threads, settings.ask_workers)
        self._replay_turns: dict[str, _Turn] = {}

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

    async def askjson_response(
        self, kwargs: dict[str, Any], caller: Caller | None, key: str = "anonymous"
    ) -> bytes:
        """``engine.ask(**kwargs)`` as response JSON: by an ask worker when one is ready.

        The read lane and the ask workers take principals' asks in turn (``key``): one
        caller's many (or long) asks queue behind each other, and another caller's ask waits
        for at most the ones already running, not for everything the first caller sent.
        """
        if self.asks is not None:
            body = await self.asks.ask(kwargs, caller, key)
            if body is not None:
                self.engine.counters.asks_total += 1
                return body
        answer = await self.reads.call(self.engine.ask, **kwargs, caller=caller, key=key)
        return dumps(answer.to_wire(payload_fragment))

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait for one of principal ``key``'s :attr:`replay_share` slots for a replay (which runs
        on the shared worker threads): one caller's many replays queue behind each other, not
        in front of others'."""
        turn = self._replay_turns.get(key)
        if turn is None:
            turn = self._replay_turns[key] = _Turn(asyncio.Semaphore(self.replay_share))
        turn.users += 1
        try:
            async with turn.slots:
                yield
        finally:
            turn.users -= 1
            if not turn.users:  # nobody holds or awaits it: a new one next time, on any loop
                del self._replay_turns[key]

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


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: a tenth of the stdlib's time for an ask's answer)."""
    return orjson.dumps(data)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def atoms_response(atoms: list[Atom]) -> Response:
    return json_response([a.to_wire(payload_fragment) for a in atoms])


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
    return json_response(
        {"error": {"code": code, "message": message, "details": dict(details)}}, status, headers
    )
