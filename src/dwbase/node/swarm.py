"""``GET /swarm`` and the swarm's part of ``/health`` (with ``[node.swarm] enabled = true``).

The node makes one :class:`~dwbase.swarm.Swarm` over its engine, starts it with the app and
stops it before the app's lanes close; the metrics registry holds it too, so scrapes read the
same counters (``dwbase_sync_lag_seconds``, ``dwbase_replication_*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from .state import NodeState, json_response, run

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine import Engine
    from ..swarm import Swarm


class SwarmStatus(BaseModel):
    """This node's swarm: identity, peers, worlds, lag, cursors, counters."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = Field(description="false: [node.swarm] enabled is off; nothing else follows")
    node_id: str | None = None
    connected: bool | None = None
    sync_lag_ms: float | None = None
    cursors: dict[str, int] | None = None
    peers: list[dict[str, Any]] | None = None
    worlds: dict[str, dict[str, Any]] | None = None


def make_swarm(engine: Engine, settings: Settings) -> Swarm | None:
    if not settings.swarm_enabled:
        return None
    from ..swarm import Swarm, SwarmConfig

    return Swarm(engine, SwarmConfig.from_settings(settings))


def swarm_health(out: dict[str, Any], swarm: Swarm | None) -> dict[str, Any]:
    """``out`` (a health body) with ``sync_lag_ms`` and ``replication``; degraded while the
    node cannot replicate."""
    if swarm is None:
        return out
    h = swarm.health()
    out["sync_lag_ms"] = h["sync_lag_ms"]
    out["replication"] = h["replication"]
    if h["problem"]:
        out["status"] = "degraded"
        out["message"] = (
            h["problem"] if out["message"] == "ok" else f"{out['message']}; {h['problem']}"
        )
    return out


def add_swarm_routes(app: FastAPI, st: NodeState) -> None:
    @app.get(
        "/swarm",
        summary="This node's swarm: peers, worlds, lag, cursors",
        responses={200: {"model": SwarmStatus, "description": "OK"}},
        tags=["operators"],
    )
    async def swarm_status(request: Request) -> Response:
        p = st.principal(request)
        swarm = st.metrics.swarm
        if swarm is None:
            return json_response({"enabled": False})
        status = await run(swarm.status)
        if p.caller is not None:  # a token sees the worlds it may read, not others' names
            status["worlds"] = {w: v for w, v in status["worlds"].items() if p.caller.can_read(w)}
        return json_response({"enabled": True, **status})
