"""``LeanRoute``: a short request handler for the node's JSON-body routes.

FastAPI's general handler (dependency solving, ``json.loads`` and then model validation) costs
more than a remember itself. A route whose endpoint takes exactly ``(request: Request, <name>:
<a pydantic model>)`` and returns a ``Response`` is answered by a short handler instead: the
body is parsed and validated in one step by pydantic's JSON parser, and bad input is raised as
the same ``RequestValidationError`` FastAPI raises, so the node's error answers do not change.
The OpenAPI document does not change either: FastAPI builds it from the endpoint's signature.
Every other route keeps FastAPI's handler.

``LeanDispatch`` goes one step further for such routes at a fixed path (``POST /ask``,
``POST /remember``, ...): the node's middleware hands the request straight to the route's
handler instead of through Starlette's router, route wrapper, exception and exit-stack
middlewares, and turns an exception into a response with the app's own exception handlers,
as that exception middleware would. A request that is not for such a route takes the usual
way.
"""

from __future__ import annotations

import email.message
import inspect
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send


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


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _problem(kind: str, msg: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": msg, "input": value}])


class LeanRoute(APIRoute):
    """An ``APIRoute`` that answers ``(request, body model)`` endpoints with a short handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        model = body_model(self.endpoint)
        if model is None:
            return super().get_route_handler()
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            body = await request.body()
            if not body:
                raise _problem("missing", "Field required")
            if not _is_json(request.headers.get("content-type")):
                raise _problem(
                    "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from",
                )
            try:
                value = model.model_validate_json(body)
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in errors]
                ) from None
            response: Response = await endpoint(request, value)
            return response

        self.lean_handler = handler
        return handler


class LeanDispatch:
    """Serves the fixed-path ``LeanRoute`` routes of an app directly (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app  # the FastAPI app (scope["app"])
        self.routes: dict[tuple[str, str], LeanRoute] = {}
        for route in app.router.routes:
            methods = getattr(route, "methods", None) or set()
            if (
                isinstance(route, LeanRoute)
                and getattr(route, "lean_handler", None) is not None
                and "{" not in route.path
                and len(methods) == 1
            ):
                self.routes[(next(iter(methods)), route.path)] = route

    def route_for(self, scope: Scope) -> LeanRoute | None:
        return self.routes.get((scope["method"], scope["path"]))

    async def __call__(self, route: LeanRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["endpoint"] = route, route.endpoint
        scope.setdefault("path_params", {})
        request = Request(scope, receive, send)
        try:
            response = await route.lean_handler(request)
        except Exception as exc:
            on_error = self._handler_for(exc)
            if on_error is None:
                raise  # as before: the server-error middleware answers 500
            response = await on_error(request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Any:
        # Starlette's lookup: the nearest class in the exception's MRO with a handler. The
        # handler for Exception belongs to the server-error middleware, not this step.
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
