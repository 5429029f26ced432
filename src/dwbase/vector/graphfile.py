"""HNSW graphs kept beside a SQLite store, so a reopen need not rebuild them.

A world's graph is saved as ``<store dir>/indexes/<key>.hnsw`` with a JSON sidecar
``<key>.json``: the world, the embedder, the dimension, the highest seq the graph covers
(every vector of the world up to it is in the graph or was deleted from it), the store's
generation (deletes, quarantine changes, reindexes), the seq and id of the graph's newest
atom (its *anchor*: atom ids are random, so another store, a restored backup of another
store, does not hold it) and a CRC-32 of the graph file (it finds damage; the files are as
trusted as the store beside them, so a keyed hash would add nothing). Both
files are written to a temporary name and renamed into place, the graph first.

On load the sidecar must match the store as it is now: same embedder and dimension, the same
generation, a covered seq no higher than the store's highest, the anchor atom in the store
under its id, and the graph file's checksum.
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
import struct
import threading
import zlib
from collections.abc import Callable
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


def _digest(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


# hnswlib's file: a header (offsets and sizes), then one fixed-size record per element:
# level-0 links, the vector (dim float32), the label (uint64); upper levels follow.
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")


def _vectors(data: Any, dim: int) -> tuple[Any, Any]:
    """(labels, float32 vectors) of every element in hnswlib's file ``data`` (bytes or a
    map of it): read straight from the file, as hnswlib's own ``get_items`` is many times
    slower at 100k vectors."""
    import numpy as np

    _, _, count, size, label_at, data_at = _HEADER.unpack_from(data, 0)[:6]
    if label_at + 8 > size or data_at + 4 * dim > size or _HEADER.size + count * size > len(data):
        raise ValueError("graph file layout does not fit")
    body = np.frombuffer(data, dtype=np.uint8, count=count * size, offset=_HEADER.size)
    body = body.reshape(count, size)
    vecs = body[:, data_at : data_at + 4 * dim].view(np.float32)  # a view: copied once, later
    labels = np.ascontiguousarray(body[:, label_at : label_at + 8]).view(np.uint64).ravel()
    return labels, vecs


@dataclass(slots=True)
class Loaded:
    """A saved graph that matched: the graph, its covered seq, its live seqs and vectors."""

    graph: hnsw_mod.HnswIndex
    covered_seq: int
    seqs: list[int]
    vectors: Any


def save(
    base: str,
    stamp: Stamp,
    graph: hnsw_mod.HnswIndex,
    covered_seq: int,
    anchor: tuple[int, str] | None,
) -> None:
    """Write ``graph`` (covering the world up to ``covered_seq``; ``anchor``: the seq and id
    of its newest atom, ``None`` for an empty graph) and its sidecar, atomically."""
    os.makedirs(base, exist_ok=True)
    graph_path, side_path = paths(base, stamp.world, stamp.quarantined)
    tag = f".{os.getpid()}-{threading.get_ident()}.tmp"  # processes may save at once
    tmp_graph, tmp_side = graph_path + tag, side_path + tag
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
            "anchor": list(anchor) if anchor is not None else None,
            "count": len(graph),
            "deleted": sorted(deleted),
            "crc32": _digest(tmp_graph),
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
    base: str, stamp: Stamp, store_max_seq: int, atom_id: Callable[[int], str | None]
) -> Loaded | str:
    """The saved graph if it matches ``stamp`` and the store (``atom_id``: the id of the
    world's atom at a seq, ``None`` if there is none), else why not."""
    graph_path, side_path = paths(base, stamp.world, stamp.quarantined)
    try:
        with open(side_path, encoding="utf-8") as f:
            side = json.load(f)
    except FileNotFoundError:
        return "no saved graph"
    except (OSError, ValueError) as exc:
        return f"sidecar unreadable ({exc})"
    if not isinstance(side, dict):
        return "sidecar unreadable"
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
            return f"{name} differs (saved {side.get(name)!r}, store {value!r})"
    covered = side.get("covered_seq")
    if not isinstance(covered, int) or covered < 0 or covered > store_max_seq:
        return f"covered seq {covered!r} is past the store's {store_max_seq}"
    anchor = side.get("anchor")
    if anchor is not None:
        if not (isinstance(anchor, list) and len(anchor) == 2 and isinstance(anchor[0], int)):
            return "anchor unreadable"
        if atom_id(anchor[0]) != anchor[1]:
            return f"anchor atom {anchor[1]!r} (seq {anchor[0]}) is not in the store"
    elif side.get("count") != 0:
        return "anchor missing"
    try:
        # mapped, not read: the file's pages are shared with the page cache instead of copied
        # into the heap beside the graph hnswlib loads (the vectors are copied once, later)
        import mmap

        with open(graph_path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if zlib.crc32(data) != side.get("crc32"):
            return "graph file checksum differs"
        deleted = {int(s) for s in side["deleted"]}
        labels, vecs = _vectors(data, stamp.dim)
        graph = hnsw_mod.HnswIndex.load(graph_path, stamp.dim, sorted(deleted))
    except Exception as exc:  # a missing, short or malformed file
        return f"graph file unreadable ({type(exc).__name__}: {exc})"
    if len(graph) != side.get("count"):
        return f"graph holds {len(graph)} vectors, sidecar says {side.get('count')!r}"
    seqs = [int(x) for x in labels.tolist()]
    if deleted:
        keep = [i for i, s in enumerate(seqs) if s not in deleted]
        seqs, vecs = [seqs[i] for i in keep], vecs[keep]
    return Loaded(graph, covered, seqs, vecs)
