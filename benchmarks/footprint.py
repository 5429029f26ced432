"""Disk footprint of the SQLite store, table by table, and the storage half of ingest.

Usage::

    python benchmarks/footprint.py [--atoms 20000] [--corpus chat|short] [--batch-size 1000]
        [--json OUT] [--keep DIR] [--single N]

Loads ``--atoms`` atoms of the corpus (benchmarks/bench_corpus.py) into one world of a fresh
store with ``remember_batch`` (default hashing embedder, 256 dims), closes it, and prints:

* the store file's bytes per atom, and the same less the raw 1,024 bytes of each vector;
* bytes per atom of every table and index (SQLite's ``dbstat``: pages, and the payload in them);
* ``remember_batch`` CPU µs per atom and atoms/s, then the storage half alone: ``append`` of the
  same records, built beforehand, into a second fresh store (CPU µs per atom, atoms/s).

``--single N`` then times N appends of one atom each (p50/p95) into that second store, before
and after every atom in it is deleted (each leaves a tombstone an append looks its id up in).

``--keep DIR`` loads the store into DIR (a new data dir) and keeps it, e.g. to convert a store
made by an earlier commit with ``dwbase --data-dir DIR storage compact``. It imports
whichever ``dwbase`` is first on ``sys.path``, so ``PYTHONPATH=<worktree>/src``
measures another commit with the same script (before and after, alternated in one sitting).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dwbase
from dwbase.model import Atom, payload_text
from dwbase.storage import NewRecord, SQLiteStorage
from dwbase.timeutil import format_instant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_corpus import CORPORA, Corpus

DIM = 256


def tables(path: Path, atoms: int) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    finally:
        conn.close()
    return [{"name": n, "bytes": s / atoms, "payload": p / atoms} for n, s, p in rows]


def load(atoms: list[dict[str, Any]], batch: int, keep: str | None = None) -> dict[str, Any]:
    """``remember_batch`` into a fresh store; the footprint once it is closed."""
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="dwbase-footprint-"))
    try:
        with dwbase.open(root) as db:
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(atoms), batch):
                db.remember_batch(atoms[i : i + batch])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        path = root / "dwbase.sqlite3"
        conn = sqlite3.connect(path)
        try:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        finally:
            conn.close()
        n = len(atoms)
        file_bytes = path.stat().st_size
        return {
            "page_size": page_size,
            "schema_version": version[0] if version else None,
            "file_per_atom": file_bytes / n,
            "beyond_raw_vectors": file_bytes / n - 4 * DIM,
            "data_dir_per_atom": sum(p.stat().st_size for p in root.iterdir() if p.is_file()) / n,
            "tables": tables(path, n),
            "batch_cpu_us_per_atom": cpu / n * 1e6,
            "batch_atoms_per_s": n / wall,
        }
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def records(atoms: list[dict[str, Any]]) -> list[NewRecord]:
    """The records the engine would hand to storage for ``atoms`` (vectors of the embedder)."""
    from dwbase.embed import HashingEmbedder
    from dwbase.vector import pack

    emb = HashingEmbedder(dim=DIM)
    texts = [payload_text(a["payload"]) for a in atoms]
    vectors = emb.embed(texts)
    out: list[NewRecord] = []
    base = 1_704_067_200_000_000
    for i, (a, text, vec) in enumerate(zip(atoms, texts, vectors, strict=True)):
        us = base + i
        atom = Atom(
            id=f"{i:08x}-0000-7000-8000-000000000000",
            world=a["world"],
            worker=a["worker"],
            kind=a["kind"],
            timestamp=format_instant(us),
            importance=a["importance"],
            payload_json=json.dumps(a["payload"], ensure_ascii=False, separators=(",", ":")),
            labels=tuple(a["labels"]),
            recorded_at=format_instant(us),
        )
        out.append(NewRecord(atom, us, us, text, pack(vec)))
    return out


def append_only(recs: list[NewRecord], batch: int, single: int = 0) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="dwbase-append-"))
    store = SQLiteStorage(str(root / "dwbase.sqlite3"))
    bulk = recs[: len(recs) - 2 * single]
    out: dict[str, Any] = {}
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(bulk), batch):
            store.append(bulk[i : i + batch])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        out = {
            "append_cpu_us_per_atom": cpu / len(bulk) * 1e6,
            "append_atoms_per_s": len(bulk) / wall,
        }
        if single:
            rest = recs[len(bulk) :]
            out["single_ms"] = _singles(store, rest[:single])
            store.delete(list(range(1, store.max_seq() + 1)))
            out["single_ms_after_delete_all"] = _singles(store, rest[single:])
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    return out


def _singles(store: SQLiteStorage, recs: list[NewRecord]) -> dict[str, float]:
    times: list[float] = []
    for rec in recs:
        t = time.perf_counter()
        store.append([rec])
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return {"p50": times[len(times) // 2], "p95": times[int(len(times) * 0.95)]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--atoms", type=int, default=20_000)
    p.add_argument("--corpus", choices=CORPORA, default="chat")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.add_argument("--keep", metavar="DIR", help="load the store into DIR and keep it")
    p.add_argument("--single", type=int, default=0, help="time N one-atom appends (see above)")
    args = p.parse_args(argv)
    atoms = Corpus(args.seed, style=args.corpus).new_atoms(args.atoms, "w")
    result: dict[str, Any] = {
        "dwbase": os.path.dirname(dwbase.__file__),
        "atoms": args.atoms,
        "corpus": args.corpus,
        "load_average": os.getloadavg(),
    }
    result.update(load(atoms, args.batch_size, args.keep))
    result.update(append_only(records(atoms), args.batch_size, args.single))
    print(f"dwbase from {result['dwbase']}; load average {result['load_average'][0]:.1f}")
    print(
        f"{args.atoms} {args.corpus} atoms, schema {result['schema_version']}, "
        f"page size {result['page_size']}: store file {result['file_per_atom']:,.0f} B/atom, "
        f"{result['beyond_raw_vectors']:,.0f} B/atom beyond the raw vectors "
        f"(data dir {result['data_dir_per_atom']:,.0f} B/atom)"
    )
    for t in result["tables"]:
        if t["bytes"] >= 1:
            print(f"  {t['name']:28s} {t['bytes']:8.1f} B/atom (payload {t['payload']:.1f})")
    print(
        f"remember_batch: {result['batch_cpu_us_per_atom']:.0f} CPU µs/atom, "
        f"{result['batch_atoms_per_s']:,.0f} atoms/s; storage append alone: "
        f"{result['append_cpu_us_per_atom']:.1f} CPU µs/atom, "
        f"{result['append_atoms_per_s']:,.0f} atoms/s"
    )
    if args.single:
        a, b = result["single_ms"], result["single_ms_after_delete_all"]
        n = args.atoms - 2 * args.single
        print(
            f"append of one atom: p50 {a['p50']:.2f} ms, p95 {a['p95']:.2f} ms; after the "
            f"{n:,} atoms stored were deleted: p50 {b['p50']:.2f} ms, p95 {b['p95']:.2f} ms"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
