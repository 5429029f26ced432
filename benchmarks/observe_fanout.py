"""Observe fan-out: many subscribers on one world while atoms arrive at a steady rate.

Usage::

    python benchmarks/observe_fanout.py [--subscribers 100] [--rate 1000] [--duration 20]

One embedded store (SQLite in a temp dir). ``--subscribers`` observe subscriptions on one
world wait on a waker (no polling while idle, the way the node's SSE streams wait); one
consumer thread serves them all, polling each subscription its waker named, as a server's
event loop would. A writer stores atoms at ``--rate`` atoms/s in batches of ``--batch``
(``remember_batch``; ``--batch 1`` is single remembers).

Reported: atoms written per second (against the rate asked for), atoms delivered per second
over all subscribers (ideally written x subscribers), the delivery latency from the write call
to the subscriber's poll (p50, p95, p99, max), atoms dropped by the bounded queues, and CPU
seconds of the process per delivered atom.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dwbase
from engine import Corpus, latency, machine

WORLD = "bench:fanout"


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="dwbase-fanout-"))
    corpus = Corpus(args.seed)
    sent: dict[str, float] = {}  # atom id -> when its write call began
    lag: list[float] = []
    delivered = [0]
    woken: set[str] = set()
    wake_lock = threading.Lock()
    ready = threading.Event()
    stop = threading.Event()
    try:
        with dwbase.open(root / "store") as db:

            def waker_for(h: list[str]) -> Any:
                def wake() -> None:
                    with wake_lock:
                        woken.add(h[0])
                    ready.set()

                return wake

            handles: list[str] = []
            for _ in range(args.subscribers):
                box: list[str] = []
                box.append(db.observe_start(WORLD, capacity=args.capacity, waker=waker_for(box)))
                handles.append(box[0])

            def consume() -> None:
                while not stop.is_set() or woken:
                    if not ready.wait(0.05):
                        continue
                    ready.clear()
                    with wake_lock:
                        todo = list(woken)
                        woken.clear()
                    for h in todo:
                        got = db.observe_poll(h, max=10_000)
                        now = time.perf_counter()
                        for a in got:
                            t = sent.get(a.id)
                            if t is not None:
                                lag.append(now - t)
                        delivered[0] += len(got)

            consumer = threading.Thread(target=consume, name="fanout-consumer")
            consumer.start()
            written = 0
            period = args.batch / args.rate
            cpu0, t0 = time.process_time(), time.perf_counter()
            next_at = t0
            while time.perf_counter() - t0 < args.duration:
                atoms = corpus.new_atoms(args.batch, WORLD)
                start = time.perf_counter()
                ids = db.remember_batch(atoms) if args.batch > 1 else [db.remember_atom(atoms[0])]
                for i in ids:
                    sent[i] = start
                written += len(ids)
                next_at += period
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            write_wall = time.perf_counter() - t0
            # Let the consumer drain what is queued, then stop it.
            deadline = time.perf_counter() + 30
            while delivered[0] < written * args.subscribers and time.perf_counter() < deadline:
                time.sleep(0.01)
            stop.set()
            ready.set()
            consumer.join()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            dropped = sum(db.observe_stats(h).dropped_count for h in handles)
            for h in handles:
                db.observe_stop(h)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lat = latency(lag)
    return {
        "machine": machine(),
        "config": vars(args),
        "written": written,
        "written_per_s": written / write_wall,
        "delivered": delivered[0],
        "expected": written * args.subscribers,
        "delivered_per_s": delivered[0] / wall,
        "dropped": dropped,
        "delivery": {**lat, "max_ms": max(lag) * 1000 if lag else float("nan")},
        "cpu_us_per_delivered": cpu * 1e6 / delivered[0] if delivered[0] else float("nan"),
        "wall_s": wall,
    }


def report(out: dict[str, Any], command: str) -> None:
    m, cfg, d = out["machine"], out["config"], out["delivery"]
    print("# DWBase observe fan-out")
    print(f"command: {command}")
    print(f"machine: {m['platform']}, {m['cpus']} cpus, load {m['load_avg']}, python {m['python']}")
    print(
        f"{cfg['subscribers']} subscribers on one world, {cfg['rate']} atoms/s asked for in "
        f"batches of {cfg['batch']}, {cfg['duration']} s"
    )
    print()
    print(
        "| written/s | delivered/s | delivered / expected | dropped | p50 ms | p95 ms | "
        "p99 ms | max ms | CPU µs per delivery |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {out['written_per_s']:,.0f} | {out['delivered_per_s']:,.0f} | "
        f"{out['delivered']:,} / {out['expected']:,} | {out['dropped']:,} | "
        f"{d['p50_ms']:.1f} | {d['p95_ms']:.1f} | {d['p99_ms']:.1f} | {d['max_ms']:.1f} | "
        f"{out['cpu_us_per_delivered']:.1f} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="atoms written per second")
    p.add_argument("--batch", type=int, default=10, help="atoms per write call")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of writing")
    p.add_argument("--capacity", type=int, default=10_000, help="each subscription's queue")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    out = run(args)
    shown = list(sys.argv[1:] if argv is None else argv)
    report(out, " ".join(["python", "benchmarks/observe_fanout.py", *shown]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
