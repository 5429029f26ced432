"""LoCoMo retrieval benchmark: turn-level recall@k of ``ask`` on the LoCoMo conversations.

Usage::

    python benchmarks/locomo.py --data locomo10.json --split dev \
        [--embedder hashing|minilm|sentence-transformers:<model>|openai:<url>] [--json OUT]

``locomo10.json`` is LoCoMo's public data file (``data/locomo10.json`` of the LoCoMo
repository by snap-research on GitHub; CC BY-NC 4.0, so it is not shipped here). ``--split dev``
keeps the five development conversations the defaults were tuned on, ``--split held-out`` the
other five (docs/retrieval.md).

Everything goes through the public library API: one world per conversation, one ``message``
atom per turn (event time from the session date, payload with the text, the speaker, the image
caption if any, and the turn's ``dia_id``); each question is asked with ``limit=20``.

``--store-per-world`` puts each conversation in a store of its own instead of five worlds of
one store; ``--world-index-max 0`` sets ``SQLiteStorage.WORLD_INDEX_MAX`` (0: every world is
searched in the store-wide lexical index, as before per-world indexes). The JSON holds every
question's ranked ``dia_id``s (``answers``) for comparing runs.

Metric (LoCoMo's own): recall@k = |evidence ∩ top-k dia_ids| / |evidence|, averaged over the
questions; reported for k = 5, 10, 20, per category (1 multi-hop, 2 temporal, 3 open-domain,
4 single-hop, 5 adversarial) and overall over categories 1-5 and 1-4.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path; the other benchmark modules in it must
# not shadow standard-library or installed modules of the same name (e.g. ``http``).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable, Mapping, Sequence  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import dwbase  # noqa: E402

KS = (5, 10, 20)
CATEGORIES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
# The development half of locomo10.json; the other five conversations are held out.
DEV_CONVERSATIONS = ("conv-26", "conv-30", "conv-41", "conv-42", "conv-43")
SPLITS = ("all", "dev", "held-out")
_SESSION_RE = re.compile(r"^session_(\d+)$")
_SPLIT_RE = re.compile(r"[;,\s]+")


def parse_session_date(value: str) -> datetime:
    """``"1:56 pm on 8 May, 2023"`` -> an aware UTC datetime."""
    text = " ".join(value.replace(",", " ").split())
    for fmt in ("%I:%M %p on %d %B %Y", "%H:%M on %d %B %Y", "%d %B %Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"unrecognised session date {value!r}")


def sessions(conversation: Mapping[str, Any]) -> list[tuple[int, datetime, list[dict[str, Any]]]]:
    """The conversation's sessions in order: (number, start time, turns)."""
    out: list[tuple[int, datetime, list[dict[str, Any]]]] = []
    for key, turns in conversation.items():
        m = _SESSION_RE.match(key)
        if not m or not isinstance(turns, list) or not turns:
            continue
        n = int(m.group(1))
        when = parse_session_date(conversation[f"session_{n}_date_time"])
        out.append((n, when, turns))
    out.sort(key=lambda x: x[0])
    return out


def turn_atoms(world: str, conversation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``message`` atom per turn, a second apart from the session's start time."""
    atoms: list[dict[str, Any]] = []
    for _, start, turns in sessions(conversation):
        for i, turn in enumerate(turns):
            payload: dict[str, Any] = {"text": turn.get("text", ""), "speaker": turn["speaker"]}
            if turn.get("blip_caption"):
                payload["image_caption"] = turn["blip_caption"]
            payload["dia_id"] = turn["dia_id"]
            when = start + timedelta(seconds=i)
            atoms.append(
                {
                    "world": world,
                    "worker": str(turn["speaker"]),
                    "kind": "message",
                    "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "payload": payload,
                }
            )
    return atoms


def evidence_ids(raw: Iterable[Any], known: set[str]) -> list[str]:
    """Evidence ids split on ``;``/``,``/whitespace, keeping only ids of real turns."""
    out: list[str] = []
    for item in raw:
        for part in _SPLIT_RE.split(str(item)):
            if part in known and part not in out:
                out.append(part)
    return out


def recall(evidence: Sequence[str], retrieved: Sequence[str], k: int) -> float:
    top = set(retrieved[:k])
    return sum(1 for e in evidence if e in top) / len(evidence)


def summarise(rows: Sequence[tuple[int, dict[int, float]]]) -> dict[str, Any]:
    def mean(cats: set[int]) -> dict[str, float]:
        chosen = [r for c, r in rows if c in cats]
        return {
            f"recall@{k}": round(sum(r[k] for r in chosen) / len(chosen), 4) if chosen else 0.0
            for k in KS
        }

    return {
        "overall_1_5": mean({1, 2, 3, 4, 5}),
        "overall_1_4": mean({1, 2, 3, 4}),
        "by_category": {str(c): mean({c}) for c in sorted({c for c, _ in rows})},
        "questions": {str(c): sum(1 for cc, _ in rows if cc == c) for c in CATEGORIES},
    }


def run(
    samples: Sequence[Mapping[str, Any]],
    *,
    embedder: str = "hashing",
    limit: int = 20,
    store: str | None = None,
    weights: Mapping[str, float] | None = None,
    store_per_world: bool = False,
) -> dict[str, Any]:
    """Recall of every sample's questions: one world per conversation, all in one store, or
    with ``store_per_world`` each in a store of its own (answers then cannot depend on the
    other conversations)."""
    rows: list[tuple[int, dict[int, float]]] = []
    answers: list[dict[str, Any]] = []
    started = time.perf_counter()
    asks = 0
    ask_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = store or tmp
        db = None if store_per_world else dwbase.open(root, embedder=embedder)
        try:
            for n, sample in enumerate(samples):
                world = "locomo:" + str(sample["sample_id"])
                if store_per_world:
                    if db is not None:
                        db.close()
                    db = dwbase.open(os.path.join(root, f"world-{n}"), embedder=embedder)
                assert db is not None
                atoms = turn_atoms(world, sample["conversation"])
                db.remember_batch(atoms)
                known = {a["payload"]["dia_id"] for a in atoms}
                for i, qa in enumerate(sample["qa"]):
                    evidence = evidence_ids(qa.get("evidence") or [], known)
                    if not evidence:
                        continue
                    t0 = time.perf_counter()
                    ans = db.ask(world, str(qa["question"]), limit=limit, weights=weights)
                    ask_s += time.perf_counter() - t0
                    asks += 1
                    got = [h.atom.payload.get("dia_id", "") for h in ans.hits]
                    rows.append((int(qa["category"]), {k: recall(evidence, got, k) for k in KS}))
                    answers.append({"world": world, "qa": i, "hits": got})
        finally:
            if db is not None:
                db.close()
    out = summarise(rows)
    out["embedder"] = embedder
    out["store_per_world"] = store_per_world
    out["answers"] = answers  # each question's ranked dia_ids: compare runs with these
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["ask_ms_mean"] = round(1000 * ask_s / max(1, asks), 2)
    return out


def select(samples: Sequence[Mapping[str, Any]], split: str) -> list[Mapping[str, Any]]:
    """The samples of ``split``: all, the development conversations, or the held-out ones."""
    if split == "all":
        return list(samples)
    dev = split == "dev"
    return [s for s in samples if (str(s.get("sample_id")) in DEV_CONVERSATIONS) == dev]


def print_table(result: Mapping[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    print(f"embedder: {result['embedder']}", file=out)
    print(f"{'category':<22}{'n':>6}" + "".join(f"{'R@' + str(k):>9}" for k in KS), file=out)
    for cat, vals in result["by_category"].items():
        name = f"{cat} {CATEGORIES.get(int(cat), '')}"
        n = result["questions"].get(cat, 0)
        print(f"{name:<22}{n:>6}" + "".join(f"{vals[f'recall@{k}']:>9.3f}" for k in KS), file=out)
    for label, key in (("overall 1-5", "overall_1_5"), ("overall 1-4", "overall_1_4")):
        vals = result[key]
        print(f"{label:<28}" + "".join(f"{vals[f'recall@{k}']:>9.3f}" for k in KS), file=out)
    print(f"({result['seconds']} s, ask mean {result['ask_ms_mean']} ms)", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn-level recall@k of dwbase ask on LoCoMo.")
    parser.add_argument("--data", required=True, help="path to a LoCoMo JSON file")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="conversations to use: all, dev (conv-26, -30, -41, -42, -43) or held-out",
    )
    parser.add_argument("--embedder", default="hashing", help="embedder name (default hashing)")
    parser.add_argument("--json", dest="json_out", help="write the results as JSON here")
    parser.add_argument(
        "--store-per-world",
        action="store_true",
        help="each conversation in a store of its own (default: five worlds of one store)",
    )
    parser.add_argument(
        "--world-index-max",
        type=int,
        default=None,
        metavar="N",
        help="set SQLiteStorage.WORLD_INDEX_MAX (0: the store-wide lexical index for every world)",
    )
    parser.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a ranking weight for every ask (for tuning experiments)",
    )
    args = parser.parse_args(argv)
    with open(args.data, encoding="utf-8") as fh:
        samples = select(json.load(fh), args.split)
    print(f"{len(samples)} conversation(s) of {args.data} ({args.split})")
    weights = {}
    for item in args.weight:
        name, _, value = item.partition("=")
        weights[name] = float(value)
    if args.world_index_max is not None:
        from dwbase.storage.sqlite import SQLiteStorage

        if not hasattr(SQLiteStorage, "WORLD_INDEX_MAX"):
            parser.error("--world-index-max: this dwbase has no per-world lexical index")
        SQLiteStorage.WORLD_INDEX_MAX = args.world_index_max
    result = run(
        samples,
        embedder=args.embedder,
        weights=weights or None,
        store_per_world=args.store_per_world,
    )
    print_table(result)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
