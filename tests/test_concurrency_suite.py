"""Several writers on one store at once: three writer processes, the node and the CLI.

Meanwhile the node's SSE stream and an embedded observer in this process watch the world.
Every acknowledged atom must be stored exactly once, observed exactly once by each watcher,
in the store's order, and ``check()`` must find the store clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dwbase
from dwbase.client import Client
from dwbase.config import load_settings
from dwbase.node import start_background

SRC = str(Path(__file__).resolve().parents[1] / "src")
WRITERS, PER_WRITER, NODE_WRITES, CLI_WRITES = 3, 150, 100, 3
TOTAL = WRITERS * PER_WRITER + NODE_WRITES + CLI_WRITES

WRITER = """
import sys, dwbase
with dwbase.open(sys.argv[1]) as db:
    for i in range(int(sys.argv[3])):
        print(db.remember("load", sys.argv[2], "observation", {"text": f"{sys.argv[2]} {i}"}),
              flush=True)
"""


@pytest.mark.slow
def test_writers_node_and_cli_share_a_store_and_every_atom_is_seen_once(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "access_log": False,
            "listen": "127.0.0.1:0",
            "security.burst_count": 100_000,
        },
        environ={},
    )
    data = Path(settings.data_dir)
    env = {**os.environ, "PYTHONPATH": SRC}
    with start_background(settings) as node, Client(node.url) as client:
        start = client.remember("load", "setup", "observation", {"text": "start"})
        streamed: list[str] = []
        ready = threading.Event()

        def consume() -> None:
            with Client(node.url) as reader:
                stream = reader.observe_stream(
                    "load", last_event_id=start, max_events=TOTAL, timeout_s=30
                )
                ready.set()
                streamed.extend(a.id for a in stream)

        sse = threading.Thread(target=consume)
        sse.start()
        assert ready.wait(10)
        local = dwbase.open(data)
        handle = local.observe_start("load", after=start)
        observed: list[str] = []

        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(data), f"p{n}", str(PER_WRITER)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(WRITERS)
        ]
        acked: list[str] = []
        for i in range(NODE_WRITES):
            acked.append(client.remember("load", "node", "observation", {"text": f"node {i}"}))
            observed.extend(a.id for a in local.observe_poll(handle, 1000))
        for i in range(CLI_WRITES):
            out = subprocess.run(
                [sys.executable, "-m", "dwbase", "--data-dir", str(data), "remember",
                 "-w", "load", "--text", f"cli {i}", "--json"],
                env=env, capture_output=True, text=True, timeout=60, check=True,
            ).stdout  # fmt: skip
            acked.append(str(json.loads(out)["id"]))
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            acked.extend(out.split())
        deadline = time.monotonic() + 20
        while len(observed) < TOTAL and time.monotonic() < deadline:
            observed.extend(a.id for a in local.observe_poll(handle, 1000))
            time.sleep(0.02)
        sse.join(30)
        assert not sse.is_alive()

        stored = [a.id for a in local.replay("load", after=start)]
        assert len(acked) == TOTAL
        assert sorted(stored) == sorted(acked)  # every acknowledged atom, exactly once
        assert observed == stored  # each watcher saw every atom once, in the store's order
        assert streamed == stored
        report = local.check()
        assert report.ok, report.problems[:5]
        local.close()
