"""Embed the DWBase component in a wasmtime host of your own (Python here; any wasmtime works).

    dwbase component build                       # -> dist/dwbase-core.wasm
    python examples/component_host.py dist/dwbase-core.wasm ./memory

The host gives the component one preopened directory (``/data`` inside) and its ``DWBASE_*``
configuration as environment variables; everything else (network, other files) it cannot see.
"""

from __future__ import annotations

import json
import sys

from dwbase.component.host import ComponentHost


def main(wasm: str, data_dir: str) -> None:
    host = ComponentHost.load(wasm)  # compiles once, then instantiates from a cache
    db = host.instantiate(
        data_dir=data_dir,
        env={"DWBASE_TENANT_ID": "acme", "DWBASE_WORKER_ID": "support-bot"},
    )
    atom = {
        "world": "tenant:acme/tickets",
        "worker": "",  # empty: DWBASE_WORKER_ID
        "kind": "observation",
        "timestamp": "",  # empty: now
        "importance": 0.6,
        "payload_json": json.dumps({"text": "ticket 7: refund approved for order 991"}),
        "vector": None,
        "flags": [],
        "labels": ["refund"],
        "links": [],
    }
    tag, value = db.call("remember-v2", atom)
    print("remember-v2:", tag, value)
    question = {
        "world": "tenant:acme/tickets",
        "text": "was the refund for order 991 approved?",
        "filter": None,
        "limit": 3,
        "as_of": None,
    }
    tag, answer = db.call("ask-v2", question)
    print("ask-v2:", tag, answer["text"])
    tag, error = db.call("remember-v2", {**atom, "world": "tenant:globex/secrets"})
    print("another tenant's world:", tag, error["code"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
