"""``LeanRoute``: a short request handler for the node's JSON-body routes.

FastAPI's general handler (dependency solving, ``json.loads`` and then model validation) costs
more than a remember itself. A route whose endpoint takes exactly ``(request: Request, <name>:
<a pydantic model>)`` and returns a ``Response`` is answered by a short handler instead: the
body is parsed and validated in one step by pydantic's JSON parser, and bad input is raised as
the same ``RequestValidationError`` FastAPI raises, so the node's error answers do not change.
The OpenAPI document does not change either: FastAPI builds it from the endpoint's signature.
Every other route keeps FastAPI's handler.
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

        return handler
