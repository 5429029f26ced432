"""``/mcp`` on the node: the MCP server (:mod:`~dwbase.integrations.mcp_server`) over
streamable HTTP, behind the node's bearer tokens.

Each request is authenticated like every other route (:meth:`NodeState.principal`: a missing,
unknown or revoked token is a 401 before any MCP message is read), and every tool call runs
on the node's engine as that request's caller, under its rate limits: a token sees only its
worlds through MCP too. The server is stateless (no MCP session outlives a request), so a
revoked token stops working at its next request.

The ``mcp`` package is imported on the first request to ``/mcp``, not when the node starts;
without the ``mcp`` extra the route answers 503 with how to install it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import DWBaseError, UnavailableError
from ..model import Answer, Atom
from ..node.state import NodeState, Principal, error_response, status_for
from ..results import AtomId

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger("dwbase.integrations.mcp")

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("dwbase_mcp_principal")
"""The caller of the HTTP request being served; the tools run in tasks and threads that
inherit it."""


class NodeMemory:
    """The node's engine as one principal: its caller on every call, its rate limits on
    remember and ask (what ``POST /remember`` and ``POST /ask`` apply)."""

    def __init__(self, state: NodeState, principal: Principal) -> None:
        self._state = state
        self._engine = state.engine
        self._p = principal

    def remember(
        self,
        world: str,
        worker: str | None = None,
        kind: str = "observation",
        payload: Mapping[str, Any] | None = None,
        *,
        importance: float = 0.5,
        timestamp: str = "",
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
    ) -> AtomId:
        self._state.limiter.check(self._p.key, "remember", rate=self._p.remember_rate)
        return self._engine.remember(
            world,
            worker,
            kind,
            payload,
            importance=importance,
            timestamp=timestamp,
            flags=flags,
            labels=labels,
            links=links,
            caller=self._p.caller,
        )

    def ask(
        self,
        world: str,
        text: str,
        *,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
        rank: str = "hybrid",
        current_only: bool = False,
    ) -> Answer:
        self._state.limiter.check(self._p.key, "ask", rate=self._p.ask_rate)
        return self._engine.ask(
            world,
            text,
            kinds=kinds,
            labels=labels,
            since=since,
            until=until,
            limit=limit,
            rank=rank,
            current_only=current_only,
            caller=self._p.caller,
        )

    def replay(
        self,
        world: str,
        *,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        current_only: bool = False,
        after: str | None = None,
    ) -> list[Atom]:
        return self._engine.replay(
            world,
            kinds=kinds,
            labels=labels,
            since=since,
            until=until,
            limit=limit,
            current_only=current_only,
            after=after,
            caller=self._p.caller,
        )

    def get(self, atom_id: str) -> Atom:
        return self._engine.get(atom_id, caller=self._p.caller)

    def list_worlds(self, *, include_archived: bool = False) -> list[str]:
        return self._engine.list_worlds(include_archived=include_archived, caller=self._p.caller)


class McpEndpoint:
    """The ASGI app the node serves at ``/mcp``."""

    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.route: Route | None = None  # for the node's access log and metrics
        self._server: MCPServer[Any] | None = None

    def _memory(self) -> NodeMemory:
        return NodeMemory(self.state, _principal.get())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = scope.get("dwbase.request_id")
        if self.route is not None:
            scope["route"] = self.route
        try:
            principal = self.state.principal(Request(scope))
            handler = self._handler()
        except DWBaseError as exc:
            answer = error_response(exc.code, exc.message, exc.details, status_for(exc), rid)
            await answer(scope, receive, send)
            return
        token = _principal.set(principal)
        try:
            # One caller's MCP requests take turns like its replays (both run on the shared
            # worker threads): a flood of them waits behind itself, not in front of others.
            async with self.state.turn(principal.key):
                await handler(scope, receive, send)
        finally:
            _principal.reset(token)

    def _handler(self) -> Any:
        try:
            from mcp.server.transport_security import TransportSecuritySettings

            from .mcp_server import build_server
        except ImportError as exc:
            raise UnavailableError(
                f"mcp extra not installed on this node ({exc}): pip install 'dwbase[mcp]'"
            ) from exc
        if self._server is None:
            self._server = build_server(self._memory)
        server = self._server
        # Stateless JSON answers: one short-lived session manager per request (public API;
        # its run() may be entered once), taken before anything else can build another.
        server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # The node's tokens guard it (and a node without tokens listens on loopback
            # only), as for every other route; the SDK's Host check would refuse proxies.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            async with manager.run():
                await manager.handle_request(scope, receive, send)

        return handle


def add_mcp(app: Starlette, state: NodeState) -> None:
    """Serve the MCP server at ``/mcp`` on the node's ``app``."""
    endpoint = McpEndpoint(state)  # an ASGI app: Starlette hands it the raw request
    # POST only: a stateless server has no session to DELETE and no stream to GET (the
    # SDK would hold such a GET open for good); other methods are 405 method_not_allowed.
    route = Route("/mcp", endpoint, methods=["POST"], include_in_schema=False)
    endpoint.route = route
    app.router.routes.append(route)
