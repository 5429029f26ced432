"""What a node remembers of the swarm across restarts: ``<data_dir>/swarm.json``.

* ``published_seq`` — the outbox: every local atom with a higher store sequence is still to
  be published (so writes made while NATS was down are sent when it returns);
* ``cursor`` — the stream sequence of the last message this node consumed; the durable
  consumer resumes after it, in order;
* ``want`` — the world patterns the cursor belongs to (a change starts over from the stream's
  beginning, so newly wanted worlds arrive with their history);
* ``marks`` — replay protection (see :class:`~dwbase.swarm.envelope.ReplayGuard`);
* ``worlds`` — per world: last stream sequence, when, and from whom;
* ``peers`` — membership: the peers seen on ``dwbase.node.hello`` and when.

The file is written atomically (a temporary file, fsync, rename), so a crash leaves either the
old or the new state, never a torn one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("dwbase.swarm")

STATE_FILE = "swarm.json"


@dataclass(slots=True)
class SwarmState:
    node_id: str = ""
    published_seq: int = 0
    cursor: int = 0
    want: list[str] = field(default_factory=list)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)
    worlds: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, **asdict(self)}


def load_state(data_dir: str) -> SwarmState:
    path = os.path.join(data_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return SwarmState()
    except ValueError as exc:
        # Written atomically, so this is damage from outside: start over rather than refuse to
        # run (the outbox restarts at 0, which only republishes; peers skip what they have).
        log.error("swarm state %s is unreadable (%s); starting over", path, exc)
        return SwarmState()
    known = {k: doc[k] for k in SwarmState.__dataclass_fields__ if k in doc}
    return SwarmState(**known)


def save_state(data_dir: str, state: SwarmState) -> None:
    path = os.path.join(data_dir, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state.to_dict(), fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
