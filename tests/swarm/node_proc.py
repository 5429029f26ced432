"""A swarm node in a process of its own, for the kill -9 test and the chaos checker.

usage: python -m tests.swarm.node_proc CONFIG.json — CONFIG holds ``data_dir``, ``nats_url``,
``peers`` ([[node_id, key]]), and optionally ``write`` ({"world", "count", "every_s"}) and
``acked`` (a file that gets one acknowledged atom id per line, flushed before the next write).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import dwbase
from dwbase.swarm import Peer, Swarm, SwarmConfig


def main() -> None:
    with open(sys.argv[1]) as fh:
        cfg = json.load(fh)
    peers = tuple(Peer(p[0], p[1]) for p in cfg["peers"])
    engine = dwbase.open(cfg["data_dir"])
    swarm = Swarm(
        engine,
        SwarmConfig(
            data_dir=cfg["data_dir"],
            nats_url=cfg["nats_url"],
            peers=peers,
            hello_interval_s=0.3,
            antientropy_interval_s=0.0,
        ),
    )
    swarm.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    write = cfg.get("write")
    if write:
        with open(cfg["acked"], "a", encoding="utf-8") as out:
            for i in range(write["count"]):
                if done.is_set():
                    break
                aid = engine.remember(write["world"], "proc", text=f"{os.getpid()} {i}")
                out.write(aid + "\n")
                out.flush()
                time.sleep(write["every_s"])
    print("ready", flush=True)
    done.wait()
    swarm.stop()
    engine.close()


if __name__ == "__main__":
    main()
