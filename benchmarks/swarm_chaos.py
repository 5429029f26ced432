"""A convergence checker for the swarm, in the spirit of Jepsen.

A seeded random schedule over N nodes and one real nats-server: writes on random live
nodes to random worlds, node kills (the link stopped as a crash stops it: no last publish,
no last save of swarm.json, the engine closed) and restarts, NATS pauses (SIGSTOP/SIGCONT)
and NATS restarts (SIGKILL, then the same port and store). Afterwards every node is started,
NATS is up, and the checker waits until every node holds exactly the acknowledged atoms of
its worlds: none missing, none extra, none twice.

    python benchmarks/swarm_chaos.py --seeds 20 --nodes 3 --steps 40

prints one line per seed (writes, kills, pauses, time to converge) and exits non-zero if any
seed did not converge. tests/swarm/test_chaos.py runs it for 20 seeds at a small scale.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dwbase
from dwbase.engine import Engine
from dwbase.ops.devnet import nats_server_binary
from dwbase.swarm import Peer, Swarm, SwarmConfig, load_or_create

WORLDS = ("chaos:a", "chaos:b", "chaos:c")


class Nats:
    def __init__(self, store: str) -> None:
        self.store = store
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [nats_server_binary(), "-js", "-sd", self.store, "-a", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*args, "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)


@dataclass
class ChaosNode:
    config: SwarmConfig
    engine: Engine | None = None
    swarm: Swarm | None = None

    def start(self) -> None:
        self.engine = dwbase.open(self.config.data_dir)
        self.swarm = Swarm(self.engine, self.config)
        self.swarm.start()

    def kill(self) -> None:
        assert self.swarm is not None and self.engine is not None
        self.swarm.stop(flush=False)
        self.engine.close()
        self.swarm = self.engine = None

    def stop(self) -> None:
        if self.swarm is not None:
            self.swarm.stop()
        if self.engine is not None:
            self.engine.close()
        self.swarm = self.engine = None

    @property
    def alive(self) -> bool:
        return self.engine is not None


@dataclass
class Report:
    seed: int
    writes: int = 0
    kills: int = 0
    pauses: int = 0
    nats_restarts: int = 0
    converged: bool = False
    converge_s: float = 0.0
    teardown_s: float = 0.0
    total_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        state = f"converged in {self.converge_s:.2f} s" if self.converged else "DID NOT CONVERGE"
        return (
            f"seed {self.seed:3d}: {self.writes:4d} acknowledged writes, {self.kills} kills, "
            f"{self.pauses} NATS pauses, {self.nats_restarts} NATS restarts: {state} "
            f"({self.total_s:.1f} s in all)"
        )


def run(seed: int, root: Path, *, nodes: int = 3, steps: int = 40, timeout: float = 20.0) -> Report:
    """One seeded schedule; the returned report says whether every node converged."""
    began = time.monotonic()
    rng = random.Random(seed)
    report = Report(seed)
    nats = Nats(str(root / "nats"))
    nats.start()
    dirs = [str(root / f"node{i}") for i in range(nodes)]
    idents = [load_or_create(d) for d in dirs]
    peers = tuple(Peer(i.node_id, i.public_b64) for i in idents)
    cluster = [
        ChaosNode(
            SwarmConfig(
                data_dir=d,
                nats_url=nats.url,
                peers=peers,
                hello_interval_s=0.3,
                antientropy_interval_s=0,
            )
        )
        for d in dirs
    ]
    acked: dict[str, set[str]] = {w: set() for w in WORLDS}
    paused = False
    try:
        for n in cluster:
            n.start()
        for _ in range(steps):
            roll = rng.random()
            live = [n for n in cluster if n.alive]
            if roll < 0.6 and live:
                node = rng.choice(live)
                assert node.engine is not None
                world = rng.choice(WORLDS)
                for _ in range(rng.randint(1, 5)):
                    acked[world].add(node.engine.remember(world, "chaos", text=f"s{seed}"))
                    report.writes += 1
            elif roll < 0.72 and len(live) > 1:
                rng.choice(live).kill()
                report.kills += 1
            elif roll < 0.84:
                dead = [n for n in cluster if not n.alive]
                if dead:
                    rng.choice(dead).start()
            elif roll < 0.94:
                if paused:
                    nats.signal(signal.SIGCONT)
                else:
                    nats.signal(signal.SIGSTOP)
                    report.pauses += 1
                paused = not paused
            else:
                if paused:
                    nats.signal(signal.SIGCONT)
                    paused = False
                nats.kill()
                time.sleep(rng.uniform(0.05, 0.3))
                nats.start()
                report.nats_restarts += 1
            time.sleep(rng.uniform(0.0, 0.05))
        if paused:
            nats.signal(signal.SIGCONT)
        for n in cluster:
            if not n.alive:
                n.start()
        start = time.monotonic()
        want = {w: sorted(ids) for w, ids in acked.items()}
        while True:
            problems = _differences(cluster, want)
            if not problems:
                report.converged = True
                break
            if time.monotonic() - start > timeout:
                report.problems = problems
                break
            time.sleep(0.05)
        report.converge_s = time.monotonic() - start
    finally:
        t = time.monotonic()
        for n in cluster:
            n.stop()
        nats.kill()
        report.teardown_s = time.monotonic() - t
    report.total_s = time.monotonic() - began
    return report


def _differences(cluster: list[ChaosNode], want: dict[str, list[str]]) -> list[str]:
    out = []
    for k, n in enumerate(cluster):
        assert n.engine is not None
        for world, ids in want.items():
            got = [a.id for a in n.engine.replay(world)]
            if sorted(got) != ids:
                missing = len(set(ids) - set(got))
                extra = len(set(got) - set(ids))
                twice = len(got) - len(set(got))
                out.append(f"node{k} {world}: {missing} missing, {extra} extra, {twice} twice")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    failed = 0
    began = time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        root = Path(tempfile.mkdtemp(prefix=f"dwbase-chaos-{seed}-"))
        try:
            report = run(seed, root, nodes=args.nodes, steps=args.steps)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(report.line(), flush=True)
        for p in report.problems:
            print("   ", p)
        failed += not report.converged
    total = time.monotonic() - began
    print(f"{args.seeds - failed}/{args.seeds} seeds converged ({total:.1f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
