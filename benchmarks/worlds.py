"""Per-world cost: an ask in a small world of a store of many worlds against the world alone.

Usage::

    python benchmarks/worlds.py [--worlds 1000] [--world-size 100] [--targets 20]
        [--queries 400] [--corpus chat|short] [--seed 7] [--json OUT]

One store holds ``--worlds`` worlds of ``--world-size`` atoms (chat-length texts by default);
``--targets`` of them are also written, alone, each to a store of its own. Questions are asked
round-robin over the target worlds (so a per-connection cache of world indexes sees a new world
on most asks), in the shared store and in the world's own store, interleaved call by call with
the order alternating, in two modes of the shared store in the same run:

* ``store-wide``: ``SQLiteStorage.WORLD_INDEX_MAX = 0``, the lexical search before per-world
  indexes (the store's FTS5 index, pruned by store-wide word counts);
* ``per-world``: the default (a world of up to 1,000 atoms is searched in an index of its own).

For each: ``ask`` p50/p95/CPU per ask, and the lexical search alone (``search_text`` with the
ask's terms and candidate count). The raw SQLite FTS5 floor of the same run: a bm25 top-10
over one FTS5 table holding every world's texts (joined to a world column, as a store-wide
index must be), and over a table holding only the target world's texts.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dwbase
from bench_corpus import Corpus
from bench_measure import Series
from dwbase.storage.sqlite import SQLiteStorage
from dwbase.text import query_terms

GOAL_RATIO = 1.5
CANDIDATES = 50  # the ask's lexical candidates (RankWeights.candidates)


def _pairs(
    questions: list[str],
    targets: list[str],
    a: Callable[[str, str], Any],
    b: Callable[[str, str], Any],
) -> tuple[Series, Series]:
    sa, sb = Series(), Series()
    for i, q in enumerate(questions):
        w = targets[i % len(targets)]
        first, second = ((sa, a), (sb, b)) if i % 2 == 0 else ((sb, b), (sa, a))
        first[0].time(lambda f=first[1], w=w, q=q: f(w, q))
        second[0].time(lambda f=second[1], w=w, q=q: f(w, q))
    return sa, sb


def _floor(
    root: Path, texts: dict[str, list[str]], target: str, questions: list[str]
) -> dict[str, Any]:
    conn = sqlite3.connect(root / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    tok = "tokenize='porter unicode61 remove_diacritics 2'"
    conn.execute(f"CREATE VIRTUAL TABLE fts USING fts5(text, {tok})")
    conn.execute(f"CREATE VIRTUAL TABLE one USING fts5(text, {tok})")
    conn.execute("CREATE TABLE docs(seq INTEGER PRIMARY KEY, world TEXT NOT NULL)")
    conn.execute("CREATE INDEX docs_world ON docs(world, seq)")
    conn.execute("BEGIN")
    seq = 0
    for world, ts in texts.items():
        for t in ts:
            seq += 1
            conn.execute("INSERT INTO fts(rowid, text) VALUES(?, ?)", (seq, t))
            conn.execute("INSERT INTO docs(seq, world) VALUES(?, ?)", (seq, world))
            if world == target:
                conn.execute("INSERT INTO one(rowid, text) VALUES(?, ?)", (seq, t))
    conn.execute("COMMIT")

    def match(q: str) -> str:
        return " OR ".join('"' + t.replace('"', '""') + '"' for t in query_terms(q)) or '""'

    shared, alone = Series(), Series()
    for i, q in enumerate(questions):
        m = match(q)
        shared.time(
            lambda m=m: conn.execute(
                "SELECT f.rowid, bm25(fts) s FROM fts f JOIN docs d ON d.seq = f.rowid "
                "WHERE fts MATCH ? AND d.world = ? ORDER BY s LIMIT 10",
                (m, target),
            ).fetchall(),
            keep=i >= 10,
        )
        alone.time(
            lambda m=m: conn.execute(
                "SELECT rowid, rank FROM one WHERE one MATCH ? ORDER BY rank LIMIT 10", (m,)
            ).fetchall(),
            keep=i >= 10,
        )
    conn.close()
    return {"shared_index": shared.latency(), "own_index": alone.latency()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=1000)
    ap.add_argument("--world-size", type=int, default=100)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--corpus", choices=("chat", "short"), default="chat")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    cfg = ap.parse_args(argv)
    corpus = Corpus(cfg.seed, style=cfg.corpus)
    step = max(1, cfg.worlds // cfg.targets)
    targets = [f"w{i:05d}" for i in range(0, cfg.worlds, step)][: cfg.targets]
    questions = [corpus.question() for _ in range(cfg.queries)]
    out: dict[str, Any] = {"worlds": cfg.worlds, "world_size": cfg.world_size, "corpus": cfg.corpus}
    with tempfile.TemporaryDirectory(prefix="dwbase-worlds-") as tmp:
        root = Path(tmp)
        many = dwbase.open(root / "many")
        alone = {w: dwbase.open(root / f"alone-{w}") for w in targets}
        texts: dict[str, list[str]] = {}
        for i in range(cfg.worlds):
            world = f"w{i:05d}"
            atoms = corpus.new_atoms(cfg.world_size, world)
            texts[world] = [a["payload"]["text"] for a in atoms]
            many.remember_batch(atoms)
            if world in alone:
                alone[world].remember_batch(atoms)
            if i % 100 == 99:
                print(f"  loaded {i + 1} worlds", file=sys.stderr)
        out["floor"] = _floor(root, texts, targets[0], questions)

        def ask_in(db: dict[str, dwbase.Engine] | dwbase.Engine) -> Callable[[str, str], Any]:
            def run(w: str, q: str) -> Any:
                return (db[w] if isinstance(db, dict) else db).ask(w, q)

            return run

        def search_in(db: dict[str, dwbase.Engine] | dwbase.Engine) -> Callable[[str, str], Any]:
            def run(w: str, q: str) -> Any:
                engine = db[w] if isinstance(db, dict) else db
                return engine.storage.search_text(w, query_terms(q), CANDIDATES)

            return run

        default = SQLiteStorage.WORLD_INDEX_MAX
        try:
            for mode, top in (("store-wide", 0), ("per-world", default)):
                SQLiteStorage.WORLD_INDEX_MAX = top
                _pairs(questions[:20], targets, ask_in(many), ask_in(alone))  # warm-up
                m_ask, a_ask = _pairs(questions, targets, ask_in(many), ask_in(alone))
                m_fts, a_fts = _pairs(questions, targets, search_in(many), search_in(alone))
                row = {
                    "ask_shared": m_ask.latency(),
                    "ask_alone": a_ask.latency(),
                    "text_shared": m_fts.latency(),
                    "text_alone": a_fts.latency(),
                }
                row["p95_ratio"] = row["ask_shared"]["p95_ms"] / row["ask_alone"]["p95_ms"]
                out[mode] = row
        finally:
            SQLiteStorage.WORLD_INDEX_MAX = default
        many.close()
        for db in alone.values():
            db.close()
    print(
        f"{cfg.worlds} worlds x {cfg.world_size} atoms ({cfg.corpus} corpus), asks round-robin "
        f"over {len(targets)} worlds, {cfg.queries} questions"
    )
    print(
        "| mode | ask p50 shared / alone | ask p95 shared / alone | ratio p95 "
        "| CPU/ask shared / alone | text p95 shared / alone |"
    )
    print("|---|---|---|---|---|---|")
    for mode in ("store-wide", "per-world"):
        r = out[mode]
        s, a, ts, ta = r["ask_shared"], r["ask_alone"], r["text_shared"], r["text_alone"]
        print(
            f"| {mode} | {s['p50_ms']:.2f} / {a['p50_ms']:.2f} ms | {s['p95_ms']:.2f} / "
            f"{a['p95_ms']:.2f} ms | {r['p95_ratio']:.2f}x | {s['cpu_ms']:.2f} / "
            f"{a['cpu_ms']:.2f} ms "
            f"| {ts['p95_ms']:.2f} / {ta['p95_ms']:.2f} ms |"
        )
    f = out["floor"]
    print(
        f"| FTS5 floor (bm25 top 10) | shared index {f['shared_index']['p50_ms']:.2f} ms p50, "
        f"{f['shared_index']['p95_ms']:.2f} ms p95 | own index {f['own_index']['p50_ms']:.2f} ms "
        f"p50, {f['own_index']['p95_ms']:.2f} ms p95 | | | |"
    )
    ratio = out["per-world"]["p95_ratio"]
    print(
        f"goal: ask p95 <= {GOAL_RATIO}x alone: "
        f"{'met' if ratio <= GOAL_RATIO else 'MISSED'} ({ratio:.2f}x)"
    )
    if cfg.json:
        cfg.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
