"""The fast path: the node's fixed-path JSON routes, answered without the general router.

FastAPI's general request handler (dependency solving, ``json.loads``, then model validation)
and Starlette's router, route wrapper and exception middlewares cost more per request than a
remember itself. So a route declared as ``async def endpoint(request: Request, body: <a
pydantic model>) -> Response`` at a fixed path (``POST /remember``, ``/remember/batch``,
``/ask``, ``/replay``, ...) is answered by :class:`FastPath`, a small ASGI dispatcher that the
node middleware calls first: it reads the body, parses and validates it in one step with
pydantic's JSON parser (``model_validate_json``), awaits the endpoint, and turns an exception
into the app's own error answer. Every other request takes the usual way through the router.

The routes stay declared on the FastAPI app, so ``/openapi.json`` describes them as before;
the fast path only answers them. It uses public API only: a route's ``path``, ``methods`` and
``endpoint``, Starlette's ``Request`` and FastAPI's ``RequestValidationError`` (which the
app's validation handler answers 400 ``invalid_input``). docs/performance.md has the figures.
"""

from __future__ import annotations

import email.message
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

ErrorAnswer = Callable[[Request, Exception], Awaitable[Response | None]]
"""The app's answer to an exception raised by an endpoint, or ``None`` for a fault (which the
server-error middleware answers 500 and logs, as it does for every other route)."""

Endpoint = Callable[[Request, Any], Awaitable[Response]]


def body_model(endpoint: Callable[..., Any]) -> type[BaseModel] | None:
    """The model of ``endpoint(request, body)``, or ``None`` if it has any other shape."""
    params = list(inspect.signature(endpoint).parameters.values())
    if len(params) != 2:
        return None
    hints = typing.get_type_hints(endpoint)
    first, second = (hints.get(p.name) for p in params)
    if first is not Request or not (isinstance(second, type) and issubclass(second, BaseModel)):
        return None
    return second


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _problem(kind: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": msg, "input": None}])


async def read_body(request: Request, model: type[BaseModel]) -> BaseModel:
    """The request's JSON body as ``model``; bad input raises ``RequestValidationError`` with
    the locations FastAPI would give (``("body", field, ...)``)."""
    body = await request.body()
    if not body:
        raise _problem("missing", "Field required")
    if not _is_json(request.headers.get("content-type")):
        raise _problem(
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


@dataclass(frozen=True, slots=True)
class FastRoute:
    """One route the fast path answers: the declared route, its endpoint and body model."""

    method: str
    path: str
    model: type[BaseModel]
    endpoint: Endpoint
    declared: Any  # the app's route object: metrics and logs name it as for any other route


class FastPath:
    """Answers the fixed-path ``(request, body model)`` routes of an app (see the module)."""

    def __init__(self, routes: Iterable[FastRoute], answer: ErrorAnswer) -> None:
        self.routes = {(r.method, r.path): r for r in routes}
        self.answer = answer

    @classmethod
    def for_app(cls, app: FastAPI, answer: ErrorAnswer) -> FastPath:
        """The fast path for ``app``'s routes as they are now."""
        found = []
        for route in app.routes:
            path = getattr(route, "path", "")
            methods = getattr(route, "methods", None) or set()
            endpoint = getattr(route, "endpoint", None)
            if "{" in path or len(methods) != 1 or endpoint is None:
                continue
            model = body_model(endpoint)
            if model is not None:
                found.append(FastRoute(next(iter(methods)), path, model, endpoint, route))
        return cls(found, answer)

    def route_for(self, scope: Scope) -> FastRoute | None:
        return self.routes.get((scope["method"], scope["path"]))

    async def __call__(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["endpoint"] = route.declared, route.endpoint
        scope.setdefault("path_params", {})
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request, await read_body(request, route.model))
        except Exception as exc:
            answer = await self.answer(request, exc)
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)
