"""A first look at DWBase: remember, ask, replay, observe. Run: python examples/quickstart.py"""

from __future__ import annotations

import tempfile

import dwbase

with tempfile.TemporaryDirectory() as tmp, dwbase.open(tmp) as db:
    handle = db.observe_start("demo")
    slow = db.remember("demo", "agent-1", "observation", {"text": "checkout latency 820ms"},
                       importance=0.9, labels=["latency"])
    db.remember("demo", "agent-1", "observation", {"text": "EU database failover at 14:02"})
    db.remember("demo", "agent-2", "reflection", {"text": "latency began after the failover"},
                links=[{"target": slow, "kind": "references"}])

    answer = db.ask("demo", "why is checkout slow?", limit=3)
    print(answer.text)
    for hit in answer.hits:
        print(f"{hit.score:6.3f}  {hit.atom.payload['text']}  {hit.parts}")
    print([a.kind for a in db.replay("demo", kinds=["observation"])])
    print(f"observed {len(db.observe_poll(handle, max=10))} new atoms")
