"""Real nats-server processes and in-process swarm nodes for the swarm tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dwbase
from dwbase.engine import Engine
from dwbase.swarm import Peer, Swarm, SwarmConfig, load_or_create


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """``nats-server -js -sd <dir>`` on a free loopback port; stop, start again, pause."""

    def __init__(self, binary: str, store_dir: str | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="dwbase-nats-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [self.binary, "-js", "-sd", self.store_dir, "-a", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.port}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def reset(self) -> None:
        """Delete every stream, so the next test starts from an empty JetStream."""
        import nats

        async def go() -> None:
            nc = await nats.connect(self.url)
            js = nc.jetstream()
            for info in await js.streams_info():
                await js.delete_stream(info.config.name or "")
            await nc.close()

        asyncio.run(go())

    def purge(self, stream: str = "DWBASE_WORLDS") -> None:
        """Forget every message of ``stream``, as retention would."""
        import nats

        async def go() -> None:
            nc = await nats.connect(self.url)
            await nc.jetstream().purge_stream(stream)
            await nc.close()

        asyncio.run(go())

    def publish_core(self, subject: str, data: bytes) -> None:
        """Publish raw bytes on plain NATS (not the stream)."""
        import nats

        async def go() -> None:
            nc = await nats.connect(self.url)
            await nc.publish(subject, data)
            await nc.flush()
            await nc.close()

        asyncio.run(go())

    def publish(self, subject: str, data: bytes) -> None:
        """Publish raw bytes on the stream (what an attacker with NATS access could do)."""
        import nats

        async def go() -> None:
            nc = await nats.connect(self.url)
            await nc.jetstream().publish(subject, data)
            await nc.close()

        asyncio.run(go())


@dataclass
class Node:
    data_dir: str
    config: SwarmConfig
    engine: Engine | None = None
    swarm: Swarm | None = None

    def start(self) -> Node:
        self.engine = dwbase.open(self.data_dir)
        self.swarm = Swarm(self.engine, self.config)
        self.swarm.start()
        return self

    def stop(self) -> None:
        if self.swarm is not None:
            self.swarm.stop()
        if self.engine is not None:
            self.engine.close()
        self.swarm = self.engine = None

    @property
    def db(self) -> Engine:
        assert self.engine is not None
        return self.engine

    @property
    def sw(self) -> Swarm:
        assert self.swarm is not None
        return self.swarm

    def ids(self, world: str) -> list[str]:
        return [a.id for a in self.db.replay(world)]


def make_nodes(
    root: Path, url: str, count: int, *, configs: Sequence[dict[str, Any]] = (), **common: Any
) -> list[Node]:
    """``count`` nodes that trust each other, not started yet."""
    dirs = [str(root / f"node{i}") for i in range(count)]
    idents = [load_or_create(d) for d in dirs]
    peers = tuple(Peer(i.node_id, i.public_b64, name=f"node{k}") for k, i in enumerate(idents))
    base = {"nats_url": url, "peers": peers, "hello_interval_s": 0.3, **common}
    base.setdefault("antientropy_interval_s", 0.0)
    out = []
    for k, d in enumerate(dirs):
        extra = configs[k] if k < len(configs) else {}
        out.append(Node(d, SwarmConfig(data_dir=d, **{**base, **extra})))
    return out


def wait_for(check: Callable[[], bool], timeout: float = 10.0, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def with_config(node: Node, **changes: Any) -> Node:
    return Node(node.data_dir, replace(node.config, **changes))


def env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
