"""``dwbase swarm status``: a node's swarm, or what a data dir remembers of it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..errors import InvalidInputError, NotFoundError
from .atoms import JsonFlag
from .context import state
from .groups import sub_app
from .render import note, out, print_json

swarm_app = sub_app(
    "swarm",
    "Replication between nodes over NATS (docs/swarm.md).\n\n"
    "\b\nExample:\n  dwbase --api http://127.0.0.1:8181 swarm status",
)


def register(app: typer.Typer) -> None:
    app.add_typer(swarm_app)


@swarm_app.command("status")
def swarm_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show peers, worlds, lag and cursors of a node's swarm.

    With --api, asks the running node (GET /swarm). With --data-dir, reads what the store's
    swarm.json remembers (cursors, outbox position, peers last seen), node running or not.

    \b
    Example:
      dwbase --api http://127.0.0.1:8181 swarm status
      dwbase --data-dir .dwbase/devnet/node-1/data swarm status --json
    """
    st = state(ctx)
    if st.api:
        from ..client import Client

        with Client(st.api, token=st.token) as client:
            info = client.swarm_status()
    elif st.data_dir is not None:
        info = _offline(st.data_dir)
    else:
        raise InvalidInputError(
            "give --api URL for a running node or --data-dir DIR for a store", field="api"
        )
    if as_json:
        print_json(info)
        return
    _render(info)


def _offline(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "swarm.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(
            f"{path} does not exist: this store has never been part of a swarm", path=str(path)
        ) from None
    except ValueError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}", field="data_dir") from None
    now = time.time()
    peers = [
        {"node_id": pid, **info, "seen_s_ago": round(now - float(info.get("seen_at", now)), 1)}
        for pid, info in sorted(doc.get("peers", {}).items())
    ]
    return {
        "enabled": True,
        "offline": True,
        "node_id": doc.get("node_id"),
        "want": doc.get("want"),
        "cursors": {
            "stream_seq": doc.get("cursor", 0),
            "published_seq": doc.get("published_seq", 0),
        },
        "peers": peers,
        "worlds": doc.get("worlds", {}),
    }


def _render(info: dict[str, Any]) -> None:
    if not info.get("enabled"):
        note("this node has no swarm ([node.swarm] enabled = false)")
        return
    cur = info.get("cursors", {})
    head = [
        f"node {info.get('node_id')}",
        "read from swarm.json (node not asked)"
        if info.get("offline")
        else ("connected" if info.get("connected") else "NOT connected to NATS"),
        f"stream seq {cur.get('stream_seq')}",
        f"published up to store seq {cur.get('published_seq')}",
    ]
    if "sync_lag_ms" in info:
        head.append(f"lag {info['sync_lag_ms']:.0f} ms")
    if "outbox" in info:
        head.append(f"outbox {info['outbox']}")
    out().print(" · ".join(head))
    peers = Table(title="peers")
    for col in ("node id", "name", "endpoint", "alive"):
        peers.add_column(col)
    for p in info.get("peers", []):
        alive = p.get("alive")
        peers.add_row(
            str(p.get("node_id")),
            str(p.get("name") or ""),
            str(p.get("endpoint") or ""),
            "-" if alive is None else ("yes" if alive else "no"),
        )
    out().print(peers)
    worlds = Table(title="worlds received")
    for col in ("world", "received", "last from", "last at"):
        worlds.add_column(col)
    for w, v in info.get("worlds", {}).items():
        at = v.get("last_at")
        when = time.strftime("%H:%M:%S", time.localtime(at)) if at else ""
        worlds.add_row(w, str(v.get("received", 0)), str(v.get("last_from", "")), when)
    out().print(worlds)
    stats = info.get("stats")
    if stats:
        out().print(
            f"sent {stats['sent']} · received {stats['received']} · dropped "
            + (", ".join(f"{k} {n}" for k, n in sorted(stats["dropped"].items())) or "0")
        )
