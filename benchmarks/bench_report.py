"""The engine benchmark's printed report, its goals, and its charts (one section per corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_measure import fmt as _f
from bench_peers import BATCH_LABELS, LABELS, PEERS, SINGLE_LABELS

GOALS = {
    "remember_p95_ms": 1.0,
    "batch_atoms_per_s": 30_000.0,
    "ask_p95_ms_at_100k": 10.0,
}


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b or a != a or b != b else f"{a / b:,.1f}x"


def _cpu(s: dict[str, Any], key: str = "cpu_ms", digits: int = 3) -> str:
    return _f(s.get(key, float("nan")), digits)


def report(results: dict[str, Any], cfg: Any) -> None:
    m = results["machine"]
    print("# DWBase engine benchmark")
    print(
        f"machine: {m['platform']} | {m['cpus']} CPUs | python {m['python']} | "
        f"sqlite {m['sqlite']} | numpy {m['numpy']} | dwbase {m['dwbase']} | "
        f"OPENBLAS_NUM_THREADS={m['blas_threads']} | load avg at start {m['load_avg']}"
    )
    print(f"command: {results['command']}")
    print(
        f"seed {cfg.seed}; sizes {', '.join(map(str, cfg.sizes))}; batch {cfg.batch_size}; "
        f"single n {cfg.single_n} (full n {cfg.full_n}); queries {cfg.queries}; "
        f"warm-up {cfg.warmup}; corpus {', '.join(cfg.corpora)}; wall from "
        "time.perf_counter, cpu from time.process_time (the whole process, per call)"
    )
    for style, section in results["corpora"].items():
        if len(results["corpora"]) > 1:
            print(f"\n# corpus: {style}")
        report_corpus(section, cfg)


def report_corpus(r: dict[str, Any], cfg: Any) -> None:
    peers = [p for p in PEERS if p in r]
    print("\n## remember (one atom per call, one transaction each)")
    print(f"{'store':44} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'cpu ms':>8}")
    rows = [
        ("dwbase remember, durability=normal", r["dwbase"]["remember_normal"]),
        ("sqlite floor insert+commit, sync=NORMAL", r["floor"]["single_normal"]),
        ("dwbase remember, durability=full", r["dwbase"]["remember_full"]),
        ("sqlite floor insert+commit, sync=FULL", r["floor"]["single_full"]),
    ]
    rows += [(SINGLE_LABELS[p], r[p]["single"]) for p in peers]
    for name, s in rows:
        print(
            f"{name:44} {s['n']:>6} {_f(s['p50_ms'], 3):>9} {_f(s['p95_ms'], 3):>9} "
            f"{_f(s['p99_ms'], 3):>9} {_cpu(s):>8}"
        )

    print(f"\n## remember_batch ({cfg.batch_size} atoms per call)")
    print(
        f"{'store':52} {'calls':>6} {'atoms':>8} {'atoms/s':>10} {'p50 call':>10} "
        f"{'cpu us/atom':>12}"
    )
    brows = [
        ("dwbase remember_batch (embedding included)", r["dwbase"]["batch"]),
        ("sqlite floor executemany (atoms table only)", r["floor"]["batch"]),
        ("sqlite floor executemany into FTS5 (text index)", r["floor"]["batch_fts"]),
    ]
    brows += [(BATCH_LABELS[p], r[p]["batch"]) for p in peers]
    for name, b in brows:
        print(
            f"{name:52} {b['calls']:>6} {b['items']:>8} {_f(b['per_s'], 0):>10} "
            f"{_f(b['p50_call_per_s'], 0):>10} {_cpu(b, 'cpu_us_per_item', 1):>12}"
        )
    e = r["embedding"]
    print(
        f"{'hashing embedder alone (part of dwbase above)':52} {'':>6} {e['atoms']:>8} "
        f"{_f(e['per_s'], 0):>10} {'':>10} {_cpu(e, 'cpu_us_per_item', 1):>12}"
    )

    print("\n## ask (top 10, one world)")
    print(
        f"{'atoms':>8}  {'store':44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} "
        f"{'cpu ms':>8}"
    )
    for size in cfg.sizes:
        key = str(size)
        arows = [
            (
                f"dwbase ask (hybrid, {r['dwbase']['ask'][key]['index']['kind']} vectors)",
                r["dwbase"]["ask"][key],
            ),
            ("sqlite floor FTS5 bm25 top-10", r["floor"]["fts_query"][key]),
            ("numpy exact cosine top-10", r["numpy"][key]),
        ]
        arows += [(LABELS[p], r[p]["query"][key]) for p in peers]
        for name, s in arows:
            print(
                f"{size:>8}  {name:44} {s['n']:>5} {_f(s['p50_ms'], 3):>9} "
                f"{_f(s['p95_ms'], 3):>9} {_f(s['p99_ms'], 3):>9} {_cpu(s):>8}"
            )

    print("\n## replay (whole world, append order)")
    print(f"{'atoms':>8}  {'store':44} {'median s':>9} {'atoms/s':>10} {'cpu s':>8}")
    for size in cfg.sizes:
        key = str(size)
        for name, s in (
            ("dwbase replay", r["dwbase"]["replay"][key]),
            ("sqlite floor SELECT * ORDER BY seq", r["floor"]["read_all"][key]),
        ):
            print(
                f"{size:>8}  {name:44} {_f(s['median_s'], 3):>9} {_f(s['per_s'], 0):>10} "
                f"{_cpu(s, 'cpu_s'):>8}"
            )

    print(
        "\n## footprint after each load (disk: the data dir's files; RSS grown since the store "
        "was opened, dwbase only: meaningful for a process's first load)"
    )
    print(
        f"{'atoms':>8}  {'store':44} {'disk B/atom':>12} {'RSS B/atom':>11} {'RSS MB':>8} "
        f"{'peak MB':>8}"
    )
    for size in cfg.sizes:
        key = str(size)
        frows = [
            ("dwbase", r["dwbase"]["footprint"][key]),
            ("sqlite floor", r["floor"]["footprint"][key]),
        ]
        frows += [(p, r[p]["footprint"][key]) for p in peers]
        for name, f in frows:
            mb = f.get("rss_bytes", float("nan")) / 1e6
            peak = f.get("rss_peak_bytes", float("nan")) / 1e6
            print(
                f"{size:>8}  {name:44} {_f(f['disk_per_atom'], 0):>12} "
                f"{_f(f.get('rss_per_atom'), 0):>11} {_f(mb, 0):>8} "
                f"{_f(peak, 0):>8}"
            )
            if "rss_note" in f:
                print(f"{'':>8}  {'':44} {f['rss_note']}")

    print("\n## open again after each load (the open, then open + first query answered)")
    print(f"{'atoms':>8}  {'store':44} {'open s':>9} {'+query s':>9}")
    for size in cfg.sizes:
        key = str(size)
        orows = [("dwbase open + first ask", r["dwbase"]["open"][key])]
        orows += [(f"{p} open + first query", r[p]["open"][key]) for p in peers]
        for name, o in orows:
            print(f"{size:>8}  {name:44} {_f(o['open_s'], 3):>9} {_f(o['first_query_s'], 3):>9}")

    print("\n## chroma and lancedb (peers, given the same precomputed vectors)")
    for p in PEERS:
        if p in r:
            print(f"{p} {r[p]['version']} measured ({LABELS[p]})")
        else:
            print(f"{p} NOT MEASURED: {r.get(p + '_skipped', 'not run')}")

    if "worlds" in r:
        w = r["worlds"]
        print(
            f"\n## many worlds ({w['worlds']} worlds x {w['world_size']} atoms; asks in "
            f"{w['target']})"
        )
        print(
            f"{'store':44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'cpu ms':>8} "
            f"{'disk B/atom':>12} {'RSS B/atom':>11}"
        )
        for name, k in (("the world alone", "alone"), (f"1 of {w['worlds']} worlds", "many")):
            s, f = w[k], w[k + "_footprint"]
            print(
                f"{name:44} {s['n']:>5} {_f(s['p50_ms'], 3):>9} {_f(s['p95_ms'], 3):>9} "
                f"{_cpu(s):>8} {_f(f['disk_per_atom'], 0):>12} "
                f"{_f(f.get('rss_per_atom'), 0):>11}"
            )
        print(f"p95 ratio (many / alone): {_f(w['p95_ratio'])}x")

    print("\n## ratios vs the SQLite floor (lower is better for latency, higher for rates)")
    d, fl = r["dwbase"], r["floor"]
    big = str(cfg.sizes[-1])
    lines = [
        ("remember p50, normal", d["remember_normal"]["p50_ms"], fl["single_normal"]["p50_ms"]),
        ("remember p95, normal", d["remember_normal"]["p95_ms"], fl["single_normal"]["p95_ms"]),
        ("remember p50, full", d["remember_full"]["p50_ms"], fl["single_full"]["p50_ms"]),
        ("remember p95, full", d["remember_full"]["p95_ms"], fl["single_full"]["p95_ms"]),
        (
            f"ask p95 at {big} vs FTS5 top-10",
            d["ask"][big]["p95_ms"],
            fl["fts_query"][big]["p95_ms"],
        ),
    ]
    for name, a, b in lines:
        print(f"{name:36} dwbase {_ratio(a, b):>8}")
    print(
        f"{'batch atoms/s (floor / dwbase)':36} dwbase "
        f"{_ratio(fl['batch']['per_s'], d['batch']['per_s']):>8} slower"
    )
    print(
        f"{'replay atoms/s at ' + big + ' (floor / dwbase)':36} dwbase "
        f"{_ratio(fl['read_all'][big]['per_s'], d['replay'][big]['per_s']):>8} slower"
    )
    for p in peers:
        c = r[p]
        print(
            f"{p + ' add p50 vs floor NORMAL':36} {p} "
            f"{_ratio(c['single']['p50_ms'], fl['single_normal']['p50_ms']):>8}"
        )
        print(
            f"{p + ' batch atoms/s (floor / ' + p + ')':36} {p} "
            f"{_ratio(fl['batch']['per_s'], c['batch']['per_s']):>8} slower"
        )
        print(
            f"{p + ' query p95 at ' + big + ' vs FTS5':36} {p} "
            f"{_ratio(c['query'][big]['p95_ms'], fl['fts_query'][big]['p95_ms']):>8}"
        )
        print(
            f"{'dwbase ask p95 at ' + big + ' vs ' + p:36} dwbase "
            f"{_ratio(d['ask'][big]['p95_ms'], c['query'][big]['p95_ms']):>8}"
        )

    if "concurrency" in r:
        c = r["concurrency"]
        print(
            f"\n## asks while writes stream in: {c['atoms']:,} atoms, {c['askers']} askers, "
            f"index {c['index']}"
        )
        print(
            f"{'phase':14} {'asks/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
            f"{'CPU ms/ask':>10} {'written/s':>9} {'tail':>7} {'p95 ratio':>9}"
        )
        for name in ("ask_only", "single_writer", "bulk_writer"):
            x = c[name]
            ratio = f"{x['p95_ratio']:.2f}x" if "p95_ratio" in x else "-"
            print(
                f"{name:14} {x['asks_per_s']:8.1f} {x['p50_ms']:8.1f} {x['p95_ms']:8.1f} "
                f"{x['max_ms']:8.1f} {x['cpu_ms_per_ask']:10.1f} "
                f"{x['atoms_written_per_s']:9.0f} {x['graph_pending_at_end']!s:>7} {ratio:>9}"
            )

    print("\n## goals")
    for g in r["goals"]:
        print(f"{g['goal']:36} measured {g['measured']:>12}  {g['verdict']}")


def judge(results: dict[str, Any], cfg: Any) -> list[dict[str, str]]:
    d = results["dwbase"]
    out = []
    p95 = d["remember_normal"]["p95_ms"]
    goal = GOALS["remember_p95_ms"]
    out.append(
        {
            "goal": f"remember p95 <= {goal:g} ms (normal)",
            "measured": f"{p95:.3f} ms",
            "verdict": "met"
            if p95 <= goal
            else f"MISSED by {p95 - goal:.3f} ms ({p95 / goal:.1f}x)",
        }
    )
    rate = d["batch"]["per_s"]
    goal = GOALS["batch_atoms_per_s"]
    out.append(
        {
            "goal": f"remember_batch >= {goal:,.0f} atoms/s",
            "measured": f"{rate:,.0f}/s",
            "verdict": "met"
            if rate >= goal
            else f"MISSED by {goal - rate:,.0f}/s ({goal / rate:.1f}x)",
        }
    )
    goal = GOALS["ask_p95_ms_at_100k"]
    if "100000" in d["ask"]:
        p95 = d["ask"]["100000"]["p95_ms"]
        verdict = "met" if p95 <= goal else f"MISSED by {p95 - goal:.2f} ms ({p95 / goal:.1f}x)"
        measured = f"{p95:.2f} ms"
    else:
        verdict, measured = "not measured (no 100000 size in this run)", "-"
    out.append(
        {"goal": f"ask p95 <= {goal:g} ms at 100k atoms", "measured": measured, "verdict": verdict}
    )
    if "worlds" in results:
        out.append(results["worlds"]["goal"])
    if "concurrency" in results:
        c = results["concurrency"]
        for name in ("single_writer", "bulk_writer"):
            x = c[name]
            who = f"{c['askers']} askers + {name.replace('_', ' ')}"
            out.append(
                {
                    "goal": f"{who}: p95 <= 2x, max <= 1 s",
                    "measured": f"{x['p95_ratio']:.2f}x, max {x['max_ms']:.0f} ms",
                    "verdict": "met" if x["goal_met"] else "MISSED",
                }
            )
    return out


def write_charts(out_dir: Path, results: dict[str, Any], cfg: Any) -> list[str]:
    """PNG charts of the run; a missing matplotlib is said, not raised."""
    try:
        from bench_charts import charts
    except ImportError as exc:
        return [f"NOT WRITTEN: matplotlib cannot be imported ({exc}); pip install 'dwbase[bench]'"]
    return [str(p) for p in charts(out_dir, results, cfg)]
