"""A small store with every kind of row DWBase keeps, for tests that check or corrupt a store.

Three worlds; atoms with labels, flags, links, caller vectors, embedder vectors, empty text,
held (quarantined) atoms, one released from quarantine, and one deleted (a tombstone).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dwbase
from dwbase.embed import HashingEmbedder
from dwbase.model import FilterSpec
from dwbase.storage.sqlite import SQLiteStorage

DIM = 8
WORLDS = ("alpha", "beta", "team:gamma/ops")
STORE_FILE = "dwbase.sqlite3"


def build_sample_store(data_dir: Path, atoms: int = 100) -> Path:
    """Write ``atoms`` atoms (about) over three worlds into ``data_dir``; returns the file."""
    ids: dict[str, list[str]] = {w: [] for w in WORLDS}
    with dwbase.open(data_dir, embedder=HashingEmbedder(dim=DIM)) as db:
        for i in range(atoms):
            world = WORLDS[i % 3]
            prior = ids[world]
            payload: dict[str, Any] = {"text": f"note {i} about disk {i % 7} and latency"}
            if i % 17 == 5:
                payload = {"loss": math.nan, "step": i}  # held: an impossible number
            elif i % 23 == 4:
                payload = {"flag": True}  # no text at all: no embedder vector
            links = []
            if prior and i % 4 == 0:
                links.append({"target": prior[-1], "kind": ("supersedes", "confirms")[i % 2]})
            if len(prior) > 2 and i % 9 == 0:
                links.append({"target": prior[-3], "kind": "references"})
            aid = db.remember(
                world,
                f"agent-{i % 4}",
                ("observation", "plan", "action")[i % 3],
                payload,
                importance=round((i % 10) / 10, 2),
                labels=[f"topic:{i % 5}"] + (["urgent"] if i % 6 == 0 else []),
                flags=["reviewed"] if i % 8 == 0 else [],
                links=links,
                vector=[float((i + k) % 5) - 1.5 for k in range(DIM)] if i % 5 == 1 else None,
            )
            ids[world].append(str(aid))
    path = data_dir / STORE_FILE
    # Quarantine changes and a delete, at the storage level (what the engine's operator
    # actions call): one held atom released, one normal atom deleted.
    store = SQLiteStorage(str(path))
    try:
        held = store.quarantined()
        assert len(held) >= 3, "the sample needs held atoms"
        store.set_quarantine(held[0].seq, None)
        victim = store.scan("beta", FilterSpec(), limit=3)[1]
        store.delete([victim.seq])
        report = store.check()
        assert report.ok, report.problems
    finally:
        store.close()
    return path


def read_everything(path: Path) -> dict[str, Any]:
    """What reads return: replay of every world (held atoms too), get of every id, counts."""
    store = SQLiteStorage(str(path))
    try:
        worlds = store.worlds()
        out: dict[str, Any] = {"worlds": worlds, "count": store.count()}
        ids: list[str] = []
        for w in sorted(set(worlds) | set(WORLDS)):
            for held in (False, True):
                rows = store.scan(w, FilterSpec(), quarantined=held)
                out[f"replay:{w}:{held}"] = rows
                out[f"count:{w}:{held}"] = store.count(w, quarantined=held)
                ids.extend(s.atom.id for s in rows)
        out["get"] = {i: store.get(i) for i in sorted(ids)}
        out["max_seq"] = store.max_seq()
        return out
    finally:
        store.close()
