"""Where ingest's CPU goes: ``remember_batch`` into a fresh SQLite store, per corpus.

    python benchmarks/ingest.py [--corpus bench,chat] [--atoms 20000] [--per-call 1000]
                                [--profile] [--minilm] [--json OUT]

For each corpus (``bench``: the texts of ``dwbase bench``; ``short`` and ``chat``: those of
``benchmarks/engine.py``) it loads ``--atoms`` atoms, ``--per-call`` a call, and prints CPU
microseconds per atom (this process, ``time.process_time``) and atoms per second (wall), then
the hashing embedder alone on the same texts in the same batches. ``--profile`` runs the load
again under cProfile and splits its time: the embedder, validation (``Writer._prepare``),
storage's append, and the rest. ``--minilm`` loads with all-MiniLM-L6-v2 instead (the
``embed`` extra) and counts the model's calls. Compare commits with ``PYTHONPATH=<worktree>/src``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dwbase
from bench_corpus import Corpus
from dwbase.embed import HashingEmbedder, get_embedder
from dwbase.ops.bench import _atoms

# the parts of the CPU: cProfile's cumulative time of these functions (file, name)
_PARTS = {
    "embedder": ("writer.py", "_embed_pending"),
    "validation": ("writer.py", "_prepare"),
    "storage append": ("sqlite.py", "append"),
}


def corpus_atoms(style: str, n: int) -> list[dict[str, Any]]:
    if style == "bench":
        return _atoms(random.Random(1), n, "bench")
    c = Corpus(7, style=style)
    return [
        {"world": "bench", "worker": f"w{i % 8}", "payload": {"text": c.sentence()}}
        for i in range(n)
    ]


def count_calls(emb: Any) -> list[int]:
    """The number of texts of each call to a sentence-transformers model, as it is called."""
    calls: list[int] = []
    encode = emb._model.encode

    def counting(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return encode(texts, **kwargs)

    emb._model.encode = counting
    return calls


def load(atoms: list[dict[str, Any]], per: int, embedder: Any = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to load ``atoms`` into a fresh store."""
    root = Path(tempfile.mkdtemp(prefix="dwbase-ingest-"))
    try:
        kwargs = {} if embedder is None else {"embedder": embedder}
        with dwbase.open(root / "store", **kwargs) as db:
            c, t = time.process_time(), time.perf_counter()
            for i in range(0, len(atoms), per):
                db.remember_batch(atoms[i : i + per])
            return time.process_time() - c, time.perf_counter() - t
    finally:
        shutil.rmtree(root, ignore_errors=True)


def profile(atoms: list[dict[str, Any]], per: int) -> dict[str, float]:
    prof = cProfile.Profile()
    prof.enable()
    load(atoms, per)
    prof.disable()
    stats: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = next(v[3] for k, v in stats.items() if k[2] == "remember_batch" and "writer" in k[0])
    out: dict[str, float] = {}
    for part, (file, name) in _PARTS.items():
        out[part] = sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == name)
    out["other"] = total - sum(out.values())
    return {k: round(100 * v / total, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="bench,chat", help="bench, short, chat (comma-separated)")
    ap.add_argument("--atoms", type=int, default=20_000)
    ap.add_argument("--per-call", type=int, default=1_000)
    ap.add_argument("--profile", action="store_true", help="split the CPU by part (cProfile)")
    ap.add_argument("--minilm", action="store_true", help="load with MiniLM (the embed extra)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    report: dict[str, Any] = {"load_average": os.getloadavg()[0], "corpora": {}}
    for style in args.corpus.split(","):
        atoms = corpus_atoms(style, args.atoms)
        texts = [str(a["payload"]["text"]) for a in atoms]
        figures: dict[str, Any] = {}
        if args.minilm:
            emb: Any = get_embedder("minilm")
            calls = count_calls(emb)
            cpu, wall = load(atoms, args.per_call, emb)
            figures["model_calls"] = len(calls)
        else:
            cpu, wall = load(atoms, args.per_call)
            emb = HashingEmbedder()
            c = time.process_time()
            for i in range(0, len(texts), args.per_call):
                emb.embed_packed(texts[i : i + args.per_call])
            figures["embedder_cpu_us_per_text"] = (time.process_time() - c) * 1e6 / len(texts)
        figures["cpu_us_per_atom"] = cpu * 1e6 / len(atoms)
        figures["atoms_per_s"] = len(atoms) / wall
        if args.profile and not args.minilm:
            figures["profile_percent"] = profile(atoms, args.per_call)
        report["corpora"][style] = figures
        print(style, json.dumps(figures), flush=True)
    report["load_average_end"] = os.getloadavg()[0]
    print(f"load average {report['load_average']:.1f} -> {report['load_average_end']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
