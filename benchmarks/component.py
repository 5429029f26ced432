"""The WASI component next to the same engine in-process, in one run.

Usage::

    python benchmarks/component.py [--wasm dist/dwbase-core.wasm] [--atoms 1000] [--asks 200]

Reports the component's size, its compile time (once per machine: the compiled form is
cached), its cold instantiation time (a fresh instance from the compiled form, plus the first
call that opens the store), and remember/ask operations per second through wasmtime next to
the same calls on the same log store in-process (``dwbase.component.service.Service``, what
the component runs inside), the two taking turns call by call. Goals: instantiation <= 1 s;
ask through the component within 5x in-process at 1k atoms. The ``.wasm`` is built first when
it is missing.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from dwbase.component.build import build_component
from dwbase.component.host import ComponentHost
from dwbase.component.service import Service

WORLD = "tenant:bench/notes"
WORDS = (  # noqa: SIM905 - a sentence of words reads better than a list
    "checkout latency payment deploy rollback cache miss disk queue retry timeout worker node "
    "shard replica index vacuum lock spike error budget alert customer refund invoice email"
).split()


def _atom(rng: random.Random, i: int) -> dict[str, Any]:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + f" #{i}"
    return {
        "world": WORLD,
        "worker": "",
        "kind": "observation",
        "timestamp": "",
        "importance": 0.5,
        "payload_json": json.dumps({"text": text}),
        "vector": None,
        "flags": [],
        "labels": [],
        "links": [],
    }


def _question(rng: random.Random) -> dict[str, Any]:
    text = " ".join(rng.choice(WORDS) for _ in range(3))
    return {"world": WORLD, "text": text, "filter": None, "limit": 10, "as_of": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wasm", default="dist/dwbase-core.wasm")
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--asks", type=int, default=200)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    wasm = Path(args.wasm)
    if not wasm.exists():
        build_component(wasm)
    rng = random.Random(7)
    atoms = [_atom(rng, i) for i in range(args.atoms)]
    questions = [_question(rng) for _ in range(args.asks)]
    env = {"DWBASE_TENANT_ID": "bench", "DWBASE_IMPORTANCE_CAP": "1"}
    out: dict[str, Any] = {"size_mb": round(wasm.stat().st_size / 1e6, 2)}

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        host = ComponentHost.load(wasm, cache_dir=str(Path(tmp) / "cache"))
        out["compile_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        host = ComponentHost.load(wasm, cache_dir=str(Path(tmp) / "cache"))
        db = host.instantiate(data_dir=Path(tmp) / "wasm", env=env)
        db.call("health-v2")  # the first call opens the store
        out["instantiate_s"] = round(time.perf_counter() - started, 3)

        service = Service({**env, "DWBASE_DATA_DIR": str(Path(tmp) / "native")})

        def component(op: str, arg: dict[str, Any]) -> Any:
            return db.call(op, arg)

        def in_process(op: str, arg: dict[str, Any]) -> Any:
            return _native(service, op, arg)

        calls = {"component": component, "in_process": in_process}
        # The two sides take turns call by call, so a busy machine slows both alike.
        spent = {name: {"remember-v2": 0.0, "ask-v2": 0.0} for name in calls}
        for op, items in (("remember-v2", atoms), ("ask-v2", questions)):
            for item in items:
                for name, call in calls.items():
                    started = time.perf_counter()
                    assert call(op, item)[0] == "ok"
                    spent[name][op] += time.perf_counter() - started
        for name in calls:
            out[name] = {
                "remember_per_s": round(len(atoms) / spent[name]["remember-v2"], 1),
                "ask_per_s": round(len(questions) / spent[name]["ask-v2"], 1),
            }
        service.close()
    out["ask_slowdown"] = round(out["in_process"]["ask_per_s"] / out["component"]["ask_per_s"], 2)
    out["remember_slowdown"] = round(
        out["in_process"]["remember_per_s"] / out["component"]["remember_per_s"], 2
    )
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def _native(service: Service, op: str, *args: Any) -> tuple[str, Any]:
    fn = {"remember-v2": service.remember, "ask-v2": service.ask}[op]
    return "ok", service.v2(fn, *args)


if __name__ == "__main__":
    main()
