"""``dwbase bench``: the headline figures of an embedded store on this machine, in one run.

A fresh store in a temporary directory (default options, the hashing embedder) is timed for
single remembers, ``remember_batch`` loading, asks (top 10, hybrid) at the loaded size and a
full replay; in the same run a plain ``sqlite3`` table (WAL, ``synchronous=NORMAL``) takes the
same texts by ``executemany`` in one transaction, the floor a batch is compared with. CPU
seconds per operation (this process) are reported next to wall time, because on a shared
machine wall time moves with the neighbours' load. The full engine benchmark, with peers and
larger sizes, is ``benchmarks/engine.py``.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .soak import WORDS


@dataclass(frozen=True, slots=True)
class BenchSizes:
    atoms: int
    singles: int
    asks: int
    batch: int = 500

    @classmethod
    def quick(cls) -> BenchSizes:
        return cls(atoms=2_000, singles=200, asks=100)

    @classmethod
    def full(cls) -> BenchSizes:
        return cls(atoms=20_000, singles=1_000, asks=300)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _atoms(rng: random.Random, n: int, world: str) -> list[dict[str, Any]]:
    return [
        {
            "world": world,
            "worker": f"bench-{rng.randrange(8)}",
            "payload": {"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24)))},
            "importance": round(rng.random(), 3),
        }
        for _ in range(n)
    ]


def _floor(root: Path, texts: list[str], batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the SQLite floor to take ``texts`` in batches of ``batch``."""
    con = sqlite3.connect(root / "floor.sqlite3", isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(
            "CREATE TABLE atoms(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, world TEXT, "
            "payload_json TEXT, vector BLOB)"
        )
        blob = bytes(1024)
        rows = [(os.urandom(16).hex(), "bench", t, blob) for t in texts]

        def load() -> None:
            for i in range(0, len(rows), batch):
                con.execute("BEGIN")
                con.executemany(
                    "INSERT INTO atoms(id, world, payload_json, vector) VALUES(?,?,?,?)",
                    rows[i : i + batch],
                )
                con.execute("COMMIT")

        return _timed(load)
    finally:
        con.close()


def run_bench(sizes: BenchSizes, *, seed: int = 1) -> dict[str, Any]:
    """Run the benchmark; every figure in a dict (see :func:`headline_rows`)."""
    import dwbase

    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="dwbase-bench-"))
    out: dict[str, Any] = {"sizes": {"atoms": sizes.atoms, "asks": sizes.asks}}
    try:
        with dwbase.open(root / "single") as db:
            lat, cpu = [], 0.0
            for a in _atoms(rng, sizes.singles, "bench"):
                wall, c = _timed(partial(db.remember_atom, a))
                lat.append(wall)
                cpu += c
            out["remember"] = {
                "n": sizes.singles,
                "p50_ms": _pct(lat, 0.5),
                "p95_ms": _pct(lat, 0.95),
                "cpu_ms": cpu * 1000 / sizes.singles,
            }
        atoms = _atoms(rng, sizes.atoms, "bench")
        with dwbase.open(root / "load") as db:
            wall = cpu = 0.0
            for i in range(0, len(atoms), sizes.batch):
                w, c = _timed(partial(db.remember_batch, atoms[i : i + sizes.batch]))
                wall, cpu = wall + w, cpu + c
            out["batch"] = {
                "atoms_per_s": sizes.atoms / wall,
                "cpu_us_per_atom": cpu * 1e6 / sizes.atoms,
            }
            questions = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(sizes.asks)]
            for q in questions[:10]:
                db.ask("bench", q)
            lat, cpu = [], 0.0
            for q in questions:
                w, c = _timed(partial(db.ask, "bench", q))
                lat.append(w)
                cpu += c
            out["ask"] = {
                "n": sizes.asks,
                "p50_ms": _pct(lat, 0.5),
                "p95_ms": _pct(lat, 0.95),
                "cpu_ms": cpu * 1000 / sizes.asks,
            }
            w, c = _timed(lambda: db.replay("bench"))
            out["replay"] = {
                "atoms_per_s": sizes.atoms / w,
                "cpu_us_per_atom": c * 1e6 / sizes.atoms,
            }
        texts = [str(a["payload"]["text"]) for a in atoms]
        w, c = _floor(root, texts, sizes.batch)
        out["floor"] = {"atoms_per_s": sizes.atoms / w, "cpu_us_per_atom": c * 1e6 / sizes.atoms}
        out["batch_vs_floor"] = out["floor"]["atoms_per_s"] / out["batch"]["atoms_per_s"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def headline_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, figure, CPU per operation) rows of the headline table."""
    n = r["sizes"]["atoms"]
    return [
        (
            f"remember, one atom a call ({r['remember']['n']})",
            f"p50 {r['remember']['p50_ms']:.2f} ms, p95 {r['remember']['p95_ms']:.2f} ms",
            f"{r['remember']['cpu_ms']:.2f} ms",
        ),
        (
            f"remember_batch ({n:,} atoms)",
            f"{r['batch']['atoms_per_s']:,.0f} atoms/s",
            f"{r['batch']['cpu_us_per_atom']:.0f} µs/atom",
        ),
        (
            "SQLite floor, executemany",
            f"{r['floor']['atoms_per_s']:,.0f} atoms/s ({r['batch_vs_floor']:.1f}x DWBase)",
            f"{r['floor']['cpu_us_per_atom']:.1f} µs/atom",
        ),
        (
            f"ask, top 10 at {n:,} atoms ({r['ask']['n']})",
            f"p50 {r['ask']['p50_ms']:.2f} ms, p95 {r['ask']['p95_ms']:.2f} ms",
            f"{r['ask']['cpu_ms']:.2f} ms",
        ),
        (
            f"replay, whole world ({n:,} atoms)",
            f"{r['replay']['atoms_per_s']:,.0f} atoms/s",
            f"{r['replay']['cpu_us_per_atom']:.1f} µs/atom",
        ),
    ]
