"""HNSW graphs kept beside a SQLite store, so a reopen need not rebuild them.

A world's graph is saved as ``<store dir>/indexes/<key>.hnsw`` with a JSON sidecar
``<key>.json``: the world, the embedder, the dimension, the highest seq the graph covers
(every vector of the world up to it is in the graph or was deleted from it), the store's
generation (deletes, quarantine changes, reindexes) and a SHA-256 of the graph file. Both
files are written to a temporary name and renamed into place, the graph first.

On load the sidecar must match the store as it is now: same embedder and dimension, the same
generation, a covered seq no higher than the store's highest, and the graph file's checksum.
Anything else (a store another process deleted from, a truncated or altered file, a sidecar
of another world) is not trusted: the caller rebuilds from the store as if there were no file.
An encrypted store persists no graph (the vectors would be plain text beside the ciphertext).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from . import hnsw as hnsw_mod

FORMAT = 1
SUFFIX = ".hnsw"
log = logging.getLogger("dwbase.indexes")


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a saved graph must agree with: the store and the embedder as they are now."""

    world: str
    quarantined: bool
    embedder: str
    dim: int
    generation: int


def folder(storage: Any) -> str | None:
    """Where graphs of ``storage`` live, or ``None`` (a memory store, an encrypted store)."""
    path = getattr(storage, "path", None)
    if not path or path == ":memory:" or not os.path.isfile(path):
        return None
    status = getattr(storage, "encryption_status", None)
    if callable(status) and status() is not None:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(path)), "indexes")


def _key(world: str, quarantined: bool) -> str:
    return hashlib.sha256(f"{world}\0{int(quarantined)}".encode()).hexdigest()[:32]


def paths(base: str, world: str, quarantined: bool) -> tuple[str, str]:
    key = os.path.join(base, _key(world, quarantined))
    return key + SUFFIX, key + ".json"


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save(base: str, stamp: Stamp, graph: hnsw_mod.HnswIndex, covered_seq: int) -> None:
    """Write ``graph`` (covering the world up to ``covered_seq``) and its sidecar atomically."""
    os.makedirs(base, exist_ok=True)
    graph_path, side_path = paths(base, stamp.world, stamp.quarantined)
    tmp_graph, tmp_side = graph_path + ".tmp", side_path + ".tmp"
    try:
        deleted = graph.save(tmp_graph)
        side = {
            "format": FORMAT,
            "world": stamp.world,
            "quarantined": stamp.quarantined,
            "embedder": stamp.embedder,
            "dim": stamp.dim,
            "generation": stamp.generation,
            "covered_seq": covered_seq,
            "count": len(graph),
            "deleted": sorted(deleted),
            "sha256": _digest(tmp_graph),
        }
        with open(tmp_side, "w", encoding="utf-8") as f:
            json.dump(side, f)
            f.flush()
            os.fsync(f.fileno())
        # the sidecar names the graph's checksum: a crash between the renames leaves a pair
        # that does not match, which is not trusted
        os.replace(tmp_graph, graph_path)
        os.replace(tmp_side, side_path)
    finally:
        for p in (tmp_graph, tmp_side):
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)


def load(
    base: str, stamp: Stamp, store_max_seq: int
) -> tuple[hnsw_mod.HnswIndex, int] | tuple[None, str]:
    """``(graph, covered_seq)`` if the saved graph matches ``stamp``, else ``(None, why)``."""
    graph_path, side_path = paths(base, stamp.world, stamp.quarantined)
    try:
        with open(side_path, encoding="utf-8") as f:
            side = json.load(f)
    except FileNotFoundError:
        return None, "no saved graph"
    except (OSError, ValueError) as exc:
        return None, f"sidecar unreadable ({exc})"
    if not isinstance(side, dict):
        return None, "sidecar unreadable"
    want = {
        "format": FORMAT,
        "world": stamp.world,
        "quarantined": stamp.quarantined,
        "embedder": stamp.embedder,
        "dim": stamp.dim,
        "generation": stamp.generation,
    }
    for name, value in want.items():
        if side.get(name) != value:
            return None, f"{name} differs (saved {side.get(name)!r}, store {value!r})"
    covered = side.get("covered_seq")
    if not isinstance(covered, int) or covered < 0 or covered > store_max_seq:
        return None, f"covered seq {covered!r} is past the store's {store_max_seq}"
    try:
        if _digest(graph_path) != side.get("sha256"):
            return None, "graph file checksum differs"
        graph = hnsw_mod.HnswIndex.load(graph_path, stamp.dim, [int(s) for s in side["deleted"]])
    except Exception as exc:  # a missing, short or malformed file
        return None, f"graph file unreadable ({type(exc).__name__}: {exc})"
    if len(graph) != side.get("count"):
        return None, f"graph holds {len(graph)} vectors, sidecar says {side.get('count')!r}"
    return graph, covered
