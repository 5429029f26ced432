"""Without numpy or any extra (as inside the WASI component) retrieval still works."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    for name in ("numpy", "hnswlib", "torch", "sentence_transformers", "threadpoolctl"):
        sys.modules[name] = None  # importing any of them now raises ImportError
    import dwbase
    from dwbase.vector import exact
    db = dwbase.open(":memory:", ann_threshold=2)
    db.remember_batch([
        {"world": "w", "worker": "a", "kind": "message", "payload": {"text": t}}
        for t in ["what instrument did your sister pick?", "the violin", "lunch was great"]
    ])
    ans = db.ask("w", "instrument sister")
    try:
        db.ask("w", "x", vector=[1.0, 2.0])
        err = None
    except dwbase.InvalidInputError as exc:
        err = str(exc)
    print(json.dumps({
        "numpy": exact._np is not None,
        "top": [h.atom.payload["text"] for h in ans.hits[:2]],
        "semantic": ans.hits[0].parts["semantic"],
        "context": max(h.parts["context"] for h in ans.hits),
        "kind": db.index_status("w")[0]["kind"],
        "warnings": ans.warnings,
        "error": err,
    }))
    """
)


def test_ask_runs_in_pure_python_with_no_extras() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["numpy"] is False
    assert result["top"] == ["what instrument did your sister pick?", "the violin"]
    assert result["semantic"] > 0 and result["context"] > 0
    assert result["kind"] == "exact"  # no HNSW library: large worlds stay on exact search
    assert result["warnings"] == []
    assert result["error"] == "query vector has 2 dims, world 'w' expects 256"
