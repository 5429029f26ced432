"""The ask after a gc: what one eviction costs the next ask in a large world.

Usage::

    python benchmarks/gc_ask.py [--atoms 40000] [--rounds 3] [--seed 1] [--json OUT]

One world of ``--atoms`` atoms (6-20 words of ``dwbase soak``'s vocabulary, importance uniform in
[0, 1], policy ``min_importance=0.3``: what ``dwbase soak`` writes) is asked until its index
is caught up. Then, ``--rounds`` times: a batch of 20 atoms, an ask, ``gc()`` (it evicts the
batch's atoms under 0.3), an ask, and an ask again. Each ask's wall time in ms, and the
world's index kind, beside it: an ask that follows an eviction and costs as much as the first
ask after open means the eviction made the world's index reload every vector.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import dwbase
from dwbase.ops.soak import WORDS  # the vocabulary dwbase soak writes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    def atom() -> dict[str, Any]:
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20)))
        return {"world": "s", "worker": "w", "payload": {"text": text}, "importance": rng.random()}

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dwbase-gc-ask-") as tmp, dwbase.open(tmp) as db:
        db.set_policy("s", min_importance=0.3)
        for i in range(0, args.atoms, 5000):
            db.remember_batch([atom() for _ in range(min(5000, args.atoms - i))])

        def ask(step: str, rnd: int, evicted: int | None = None) -> None:
            t0 = time.perf_counter()
            db.ask("s", "cache retry timeout")
            ms = (time.perf_counter() - t0) * 1000
            st = db.index_status("s")[0]
            rows.append({"round": rnd, "step": step, "ask_ms": round(ms, 1), "kind": st["kind"]})
            if evicted is not None:
                rows[-1]["evicted"] = evicted
            print(f"  round {rnd} {step}: {ms:.1f} ms ({st['kind']})", flush=True)

        ask("first after load", 0)
        while db.index_status("s")[0]["ann_pending"]:
            time.sleep(0.25)
        ask("caught up", 0)
        db.gc()  # the load's own atoms under 0.3 go first: the rounds evict only their batch
        ask("after the first gc", 0)
        ask("again", 0)
        for r in range(1, args.rounds + 1):
            db.remember_batch([atom() for _ in range(20)])
            ask("after a batch of 20", r)
            evicted = db.gc().evicted
            ask("after gc", r, evicted)
            ask("again", r)
        held = db.storage.count("s", quarantined=False)
    result: dict[str, Any] = {"atoms": args.atoms, "held": held, "asks": rows}
    result["load_avg"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    after_gc = [x["ask_ms"] for x in rows if x["step"] == "after gc"]
    again = [x["ask_ms"] for x in rows if x["round"] and x["step"] == "again"]
    print(f"{held:,} atoms held; ask after gc {after_gc} ms, the ask after it {again} ms")
    print(f"load average {result['load_avg']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
