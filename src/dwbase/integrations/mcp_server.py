"""DWBase as an MCP tool server: long-term memory for Claude Desktop, Cursor and other clients.

Six tools (``remember``, ``ask``, ``replay``, ``list_worlds``, ``inspect``, ``observe_poll``)
and the worlds as resources (``dwbase://worlds``, ``dwbase://world/{world}``), over any
:class:`Memory`: the embedded engine or :class:`dwbase.Client` (``dwbase mcp``), or the node's
engine with the caller of each HTTP request (:mod:`dwbase.integrations.mcp_node`).

A tool that fails answers ``isError`` with ``{"error": {"code", "message", "details"}}``
(the codes of :mod:`dwbase.errors`), as text and as structured content.

Needs the ``mcp`` extra (``pip install 'dwbase[mcp]'``)::

    from dwbase.integrations.mcp_server import build_server
    server = build_server(lambda: dwbase.open("./mem"), worker="my-agent")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from .. import __version__
from ..errors import DWBaseError, InternalError, InvalidInputError
from ..model import Answer, Atom
from ..results import AtomId

log = logging.getLogger("dwbase.integrations.mcp")

DEFAULT_WORKER = "mcp"
MAX_OBSERVE = 200
MAX_REPLAY = 500
RESOURCE_ATOMS = 100  # atoms in a dwbase://world/{world} resource
RECENT = 32  # atoms an observe_poll without a cursor looks at for the newest
START = "start"  # the cursor before a world's first atom

INSTRUCTIONS = """\
DWBase is long-term memory. Memory lives in worlds (namespaces such as "demo" or
"tenant:acme/support"); call list_worlds to see the ones you may read. Store what you see,
decide, plan or do with remember (one short fact per call, with a kind and an importance);
find what matters to a question with ask; read a world in order with replay; read one atom
with inspect; and follow new atoms with observe_poll and the cursor it returns. Atoms are
immutable: to correct one, remember a new atom that supersedes it (links).
"""


class Memory(Protocol):
    """What the tools call: the part of :class:`dwbase.DWBaseAPI` they need (sync)."""

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
    ) -> AtomId: ...

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
    ) -> Answer: ...

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
    ) -> list[Atom]: ...

    def get(self, atom_id: str) -> Atom: ...

    def list_worlds(self, *, include_archived: bool = False) -> list[str]: ...


Resolve = Callable[[], Memory]
"""Gives the memory of the current request (the node's: bound to the request's caller)."""


class LinkIn(BaseModel):
    """A typed reference to another atom."""

    target: Annotated[str, Field(description="Id of the atom this one refers to.")]
    kind: Annotated[
        Literal["supersedes", "contradicts", "confirms", "references"],
        Field(
            description=(
                "supersedes: this atom replaces the target (a correction); contradicts / "
                "confirms: it disagrees / agrees with the target; references: it mentions it."
            )
        ),
    ] = "references"


Kind = Literal["observation", "reflection", "plan", "action", "message"]
WorldArg = Annotated[
    str,
    Field(
        description='World key, e.g. "demo" or "tenant:acme/support" (see list_worlds).',
        min_length=1,
    ),
]
KindsArg = Annotated[
    list[Kind] | None, Field(description="Only atoms of these kinds (any of them).")
]
LabelsArg = Annotated[
    list[str] | None, Field(description="Only atoms that carry all of these labels.")
]
SinceArg = Annotated[
    str | None,
    Field(description="Only atoms whose event time is at or after this RFC 3339 instant."),
]
UntilArg = Annotated[
    str | None,
    Field(description="Only atoms whose event time is at or before this RFC 3339 instant."),
]
CurrentArg = Annotated[
    bool, Field(description="Hide atoms that a later atom supersedes (the current view).")
]


# --------------------------------------------------------------------------- results


def atom_view(atom: Atom) -> dict[str, Any]:
    """An atom as the tools show it: its payload as an object, no vector."""
    out = atom.to_wire()
    for key in ("payload_json", "vector", "recorded_at"):
        out.pop(key, None)
    return out


def answer_view(answer: Answer) -> dict[str, Any]:
    return {
        "world": answer.world,
        "answer": answer.text,
        "hits": [{"score": round(h.score, 4), "atom": atom_view(h.atom)} for h in answer.hits],
        "warnings": list(answer.warnings),
    }


def ok(data: dict[str, Any]) -> CallToolResult:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def failed(exc: DWBaseError) -> CallToolResult:
    """A tool error an LLM can act on: the stable code, the message and the details."""
    data = {"error": exc.to_dict()}
    text = f"error[{exc.code}]: {exc.message}\n" + json.dumps(data, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=data, is_error=True
    )


async def _call(fn: Callable[[], dict[str, Any]]) -> CallToolResult:
    try:
        return ok(await anyio.to_thread.run_sync(fn))
    except DWBaseError as exc:
        log.info("tool error", extra={"fields": {"code": exc.code}})
        return failed(exc)
    except Exception as exc:  # a fault, not the caller's doing: logged, answered as such
        log.error("tool fault", exc_info=exc)
        return failed(InternalError("internal error; the server logged it"))


# --------------------------------------------------------------------------- the server


def build_server(resolve: Resolve, *, worker: str = DEFAULT_WORKER) -> MCPServer[Any]:
    """The DWBase MCP server over the memory ``resolve()`` gives for each request.

    ``worker`` names the writer of remembered atoms (a node puts its token's worker instead).
    """
    server: MCPServer[Any] = MCPServer(
        "dwbase",
        title="DWBase memory",
        description="Long-term memory for AI agents: remember, ask, replay, observe.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(
        title="Remember",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False
        ),
    )
    async def remember(
        world: WorldArg,
        text: Annotated[
            str, Field(description="What to remember, in a sentence or two.", min_length=1)
        ],
        kind: Annotated[
            Kind,
            Field(
                description=(
                    "observation: something seen; reflection: a conclusion; plan: an "
                    "intention; action: something done; message: something said."
                )
            ),
        ] = "observation",
        importance: Annotated[
            float,
            Field(
                description="How much this matters, from 0 (trivia) to 1 (critical).",
                json_schema_extra={"minimum": 0, "maximum": 1},
            ),
        ] = 0.5,
        labels: Annotated[
            list[str] | None, Field(description="Short tags to filter by later.")
        ] = None,
        links: Annotated[
            list[LinkIn] | None,
            Field(description="Atoms this one refers to; supersedes corrects an older atom."),
        ] = None,
        data: Annotated[
            dict[str, Any] | None,
            Field(description="Extra structured fields stored beside the text."),
        ] = None,
        timestamp: Annotated[
            str, Field(description="When it happened (RFC 3339); empty means now.")
        ] = "",
    ) -> CallToolResult:
        """Store one fact, event, decision or message in a world's long-term memory.

        Returns the new atom's id. Atoms are immutable: to correct or update one, remember a
        new atom with a link {"target": <old id>, "kind": "supersedes"}. A write may be held
        in quarantine (held=true) when it looks wrong; it is then not yet visible to ask.
        """
        memory = resolve()

        def run() -> dict[str, Any]:
            if data is not None and "text" in data:
                raise InvalidInputError("data must not hold a 'text' field; use text", field="data")
            payload = {"text": text, **(data or {})}
            aid = memory.remember(
                world,
                worker,
                kind,
                payload,
                importance=importance,
                timestamp=timestamp,
                labels=labels or (),
                links=[link.model_dump() for link in links or ()],
            )
            out: dict[str, Any] = {"id": str(aid), "world": world, "held": aid.held}
            if aid.held:
                out["held_reason"] = aid.held_reason
                out["held_world"] = aid.held_world
            return out

        return await _call(run)

    @server.tool(title="Ask", annotations=read_only)
    async def ask(
        world: WorldArg,
        question: Annotated[
            str, Field(description="A question or topic in plain words.", min_length=1)
        ],
        limit: Annotated[
            int,
            Field(
                description="How many atoms to return at most.",
                json_schema_extra={"minimum": 1, "maximum": 100},
            ),
        ] = 10,
        kinds: KindsArg = None,
        labels: LabelsArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        current_only: CurrentArg = False,
    ) -> CallToolResult:
        """Find the atoms of a world that matter to a question, best first.

        Ranks by relevance, recency, importance and links; returns a short extractive
        answer and the hits with their scores. Use this before acting, to recall what is
        already known.
        """
        memory = resolve()

        def run() -> dict[str, Any]:
            return answer_view(
                memory.ask(
                    world,
                    question,
                    kinds=kinds,
                    labels=labels,
                    since=since,
                    until=until,
                    limit=limit,
                    current_only=current_only,
                )
            )

        return await _call(run)

    @server.tool(title="Replay", annotations=read_only)
    async def replay(
        world: WorldArg,
        limit: Annotated[
            int,
            Field(
                description=f"How many atoms to return at most (up to {MAX_REPLAY}).",
                json_schema_extra={"minimum": 1, "maximum": MAX_REPLAY},
            ),
        ] = 50,
        after: Annotated[
            str | None,
            Field(description="Start after this atom id (the last one of the previous page)."),
        ] = None,
        kinds: KindsArg = None,
        labels: LabelsArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        current_only: CurrentArg = False,
    ) -> CallToolResult:
        """Read a world's atoms in the order they were stored, oldest first.

        Page with after=<id of the last atom returned>. Use ask instead to find what
        matters to a question.
        """
        memory = resolve()

        def run() -> dict[str, Any]:
            atoms = memory.replay(
                world,
                kinds=kinds,
                labels=labels,
                since=since,
                until=until,
                limit=_bounded(limit, MAX_REPLAY, "limit"),
                current_only=current_only,
                after=after,
            )
            return {"world": world, "atoms": [atom_view(a) for a in atoms]}

        return await _call(run)

    @server.tool(title="List worlds", annotations=read_only)
    async def list_worlds(
        include_archived: Annotated[bool, Field(description="Also list archived worlds.")] = False,
    ) -> CallToolResult:
        """List the worlds (memory namespaces) you may read."""
        memory = resolve()
        return await _call(
            lambda: {"worlds": memory.list_worlds(include_archived=include_archived)}
        )

    @server.tool(title="Inspect", annotations=read_only)
    async def inspect(
        id: Annotated[str, Field(description="The atom's id.", min_length=1)],
    ) -> CallToolResult:
        """Read one atom by its id, with its payload, labels and links."""
        memory = resolve()
        return await _call(lambda: {"atom": atom_view(memory.get(id))})

    @server.tool(title="Poll new atoms", annotations=read_only)
    async def observe_poll(
        world: WorldArg,
        cursor: Annotated[
            str | None,
            Field(
                description=(
                    "The cursor returned by the previous call. Omit it on the first call to "
                    'start from now (no atoms, a cursor at the newest one); "start" reads '
                    "from the world's oldest atom."
                )
            ),
        ] = None,
        max: Annotated[
            int,
            Field(
                description=f"How many atoms to return at most (up to {MAX_OBSERVE}).",
                json_schema_extra={"minimum": 1, "maximum": MAX_OBSERVE},
            ),
        ] = 20,
        kinds: KindsArg = None,
        labels: LabelsArg = None,
    ) -> CallToolResult:
        """Get the atoms stored in a world since you last looked.

        The first call (no cursor) returns a cursor at the world's newest atom; each later
        call with the cursor it was given returns the atoms stored since, oldest first, and
        a new cursor. "more": true means more are waiting now; an empty list means you are
        up to date.
        """
        memory = resolve()

        def run() -> dict[str, Any]:
            n = _bounded(max, MAX_OBSERVE, "max")
            if cursor is None:
                newest = _newest(memory, world)
                return {"world": world, "atoms": [], "cursor": newest or START, "more": False}
            after = None if cursor == START else cursor
            atoms = memory.replay(world, kinds=kinds, labels=labels, limit=n, after=after)
            return {
                "world": world,
                "atoms": [atom_view(a) for a in atoms],
                "cursor": atoms[-1].id if atoms else cursor,
                "more": len(atoms) == n,
            }

        return await _call(run)

    _add_resources(server, resolve)
    server.middleware.append(_coded_errors)
    return server


async def _coded_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Give the SDK's own tool errors (arguments that fail the schema, an unknown tool) the
    ``invalid_input`` code, so every failed tool call carries a stable code."""
    result = await call_next(ctx)
    if (
        ctx.method == "tools/call"
        and isinstance(result, dict)
        and result.get("isError")
        and result.get("structuredContent") is None
    ):
        texts = [c.get("text", "") for c in result.get("content", ()) if isinstance(c, dict)]
        coded = failed(InvalidInputError(" ".join(texts) or "invalid tool call"))
        return {**result, **coded.model_dump(mode="json", by_alias=True, exclude_none=True)}
    return result


def _newest(memory: Memory, world: str) -> str | None:
    """The id of the atom ``world`` stored last, from its recency window (no full scan)."""
    answer = memory.ask(world, "latest", rank="recency", limit=RECENT)
    if not answer.hits:
        return None
    return max(answer.hits, key=lambda h: (h.atom.recorded_us, h.atom.id)).atom.id


def _bounded(value: int, maximum: int, field: str) -> int:
    if not 1 <= value <= maximum:
        raise InvalidInputError(f"{field} {value} is outside [1, {maximum}]", field=field)
    return value


def _add_resources(server: MCPServer[Any], resolve: Resolve) -> None:
    @server.resource(
        "dwbase://worlds",
        name="worlds",
        title="Worlds",
        description="The worlds (memory namespaces) you may read, with their resource URIs.",
        mime_type="application/json",
    )
    async def worlds() -> str:
        memory = resolve()
        names = await anyio.to_thread.run_sync(memory.list_worlds)
        return json.dumps({"worlds": [{"world": w, "uri": f"dwbase://world/{w}"} for w in names]})

    @server.resource(
        "dwbase://world/{+world}",
        name="world",
        title="A world's latest atoms",
        description="The latest atoms of one world (up to 100, by event time), oldest first.",
        mime_type="application/json",
        security=ResourceSecurity(exempt_params={"world"}),  # the engine validates world keys
    )
    async def world(world: str) -> str:
        memory = resolve()

        def run() -> str:
            try:
                # Newest first by event time, from the recency window: no full scan of a world.
                latest = memory.ask(world, "latest", rank="recency", limit=RESOURCE_ATOMS)
            except DWBaseError as exc:
                raise ResourceError(f"error[{exc.code}]: {exc.message}") from exc
            atoms = [atom_view(h.atom) for h in reversed(latest.hits)]
            return json.dumps({"world": world, "atoms": atoms}, default=str)

        return await anyio.to_thread.run_sync(run)


async def run_stdio(memory: Memory, *, worker: str = DEFAULT_WORKER) -> None:
    """Serve ``memory`` over stdio until the client closes it (``dwbase mcp``)."""
    await build_server(lambda: memory, worker=worker).run_stdio_async()
