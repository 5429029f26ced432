"""``GET /``: what this node is and where to read on, for a person who opens its address.

It needs no token (like ``/openapi.json`` and ``/healthz``) and says nothing about the store:
the name, the version, whether calls need a bearer token, and links.
"""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.responses import Response

from .. import __version__
from .state import NodeState, json_response

DOCS_PATH = "docs/node.md"
"""The page of the repository (and of the source distribution) that documents the node."""


class Links(BaseModel):
    openapi: str = Field(description="the OpenAPI document of every route")
    health: str = Field(description="operator health (needs a token where tokens are on)")
    healthz: str = Field(description="liveness, no token needed")
    metrics: str = Field(description="Prometheus metrics")
    docs: str | None = Field(description="interactive API docs, when the node serves them")


class Index(BaseModel):
    """The node's index: ``GET /``."""

    name: Literal["dwbase"]
    version: str
    auth: Literal["token", "none"] = Field(
        description="'token': send 'Authorization: Bearer dwb_...' on every other route"
    )
    links: Links
    documentation: str = Field(description="the docs page in the DWBase repository")


def index(app: FastAPI, st: NodeState) -> dict[str, object]:
    """The body of ``GET /`` for ``app`` as it is configured now."""
    return Index(
        name="dwbase",
        version=__version__,
        auth="token" if st.auth_enabled else "none",
        links=Links(
            openapi=app.openapi_url or "",
            health="/health",
            healthz="/healthz",
            metrics="/metrics",
            docs=app.docs_url,
        ),
        documentation=DOCS_PATH,
    ).model_dump()


def add_index(app: FastAPI, st: NodeState) -> None:
    @app.get(
        "/",
        summary="What this node is: name, version, whether it needs a token, and links",
        responses={200: {"model": Index, "description": "OK"}},
        tags=["operators"],
    )
    async def root() -> Response:
        return json_response(index(app, st))
