"""Failures on real processes: NATS down during writes, a node killed with SIGKILL, a stream
that forgot (anti-entropy), and the node's view of it all (/health, /swarm, /metrics)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import dwbase
from dwbase.config import load_settings
from dwbase.errors import StorageError
from dwbase.node import create_app
from dwbase.security.tokens import create_token
from dwbase.swarm import Peer, SwarmConfig, load_or_create

from .harness import NatsServer, Node, make_nodes, wait_for, with_config

ROOT = Path(__file__).resolve().parents[2]


def test_writes_while_nats_is_down_are_kept_and_published_when_it_returns(
    tmp_path: Path, own_nats: NatsServer
) -> None:
    a, b = (n.start() for n in make_nodes(tmp_path, own_nats.url, 2))
    try:
        before = a.db.remember("team:a", "agent", text="before the outage")
        assert wait_for(lambda: b.ids("team:a") == [before])
        own_nats.stop(kill=True)
        assert wait_for(lambda: not a.sw.connected, 5)
        during = [a.db.remember("team:a", "agent", text=f"during {i}") for i in range(5)]
        during_b = b.db.remember("team:a", "agent-b", text="b wrote too")
        h = a.sw.health()
        assert h["replication"]["status"] == "degraded" and h["problem"]
        assert h["replication"]["outbox"] >= 5 and h["sync_lag_ms"] > 0
        time.sleep(10.0)  # NATS stays down 10 s while the nodes keep writing
        during += [a.db.remember("team:a", "agent", text="late in the outage")]
        own_nats.start()  # same port, same store directory
        everything = {before, during_b, *during}
        assert wait_for(lambda: set(a.ids("team:a")) == set(b.ids("team:a")) == everything, 10)
        assert a.sw.health()["replication"]["status"] == "ok"
        assert wait_for(lambda: a.sw.outbox() == 0)
        assert len(b.ids("team:a")) == len(everything)
    finally:
        a.stop()
        b.stop()


def test_a_node_killed_during_writes_catches_up_in_order_with_nothing_lost_or_doubled(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    (b,) = make_nodes(tmp_path, nats_server.url, 1)
    k_dir = str(tmp_path / "killed")
    k = load_or_create(k_dir)
    b_id = load_or_create(b.data_dir)
    peers = [[k.node_id, k.public_b64], [b_id.node_id, b_id.public_b64]]
    b = with_config(b, peers=_peers(peers)).start()
    acked = tmp_path / "acked.txt"
    cfg: dict[str, Any] = {
        "data_dir": k_dir,
        "nats_url": nats_server.url,
        "peers": peers,
        "acked": str(acked),
    }
    cfg["write"] = {"world": "team:k", "count": 100_000, "every_s": 0.002}
    conf = tmp_path / "k.json"
    conf.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.swarm.node_proc", str(conf)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    procs = [proc]
    try:
        assert wait_for(lambda: len(b.ids("team:k")) >= 20, 15)
        proc.send_signal(signal.SIGKILL)  # in the middle of its writes
        proc.wait()
        ids_acked = acked.read_text().split()
        # while it is down, b writes the same world; k must catch up on these in order
        b_wrote = [b.db.remember("team:k", "b", text=f"b {i}") for i in range(30)]
        time.sleep(30.0)  # restarted 30 s later (JetStream keeps its consumer meanwhile)
        cfg.pop("write")
        conf.write_text(json.dumps(cfg))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        want = set(ids_acked) | set(b_wrote)
        assert wait_for(lambda: want <= set(b.ids("team:k")), 15)
        with dwbase.open(k_dir) as killed:  # read beside the running node (several processes)
            assert wait_for(lambda: want <= {a.id for a in killed.replay("team:k")}, 15)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        with dwbase.open(k_dir) as killed:
            got = [a.id for a in killed.replay("team:k")]
        assert set(got) >= want and len(got) == len(set(got))  # nothing lost, nothing twice
        assert [i for i in got if i in set(b_wrote)] == b_wrote  # caught up in b's order
        mine = b.ids("team:k")
        assert len(mine) == len(set(mine)) and set(mine) == set(got)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        b.stop()
        for p in procs:
            if p.stdout is not None:
                p.stdout.close()


def test_anti_entropy_fills_a_gap_the_stream_forgot_and_never_sends_a_world_the_peer_may_not_read(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    dirs = [str(tmp_path / n) for n in ("a", "c")]
    ia, ic = (load_or_create(d) for d in dirs)
    a = Node(
        dirs[0],
        SwarmConfig(
            data_dir=dirs[0],
            nats_url=nats_server.url,
            peers=(Peer(ic.node_id, ic.public_b64, read=("team:*",)),),
            hello_interval_s=0.3,
            antientropy_interval_s=0,
        ),
    ).start()
    try:
        team = [a.db.remember("team:x", "agent", text=f"t{i}") for i in range(25)]
        a.db.remember("ops:y", "agent", text="c may not read ops")
        assert a.sw.wait_published()
        nats_server.purge()  # retention expired: the stream holds none of it
        c = Node(
            dirs[1],
            SwarmConfig(
                data_dir=dirs[1],
                nats_url=nats_server.url,
                peers=(Peer(ia.node_id, ia.public_b64),),
                hello_interval_s=0.3,
                antientropy_interval_s=0,
            ),
        ).start()
        try:
            assert wait_for(lambda: any(p["alive"] for p in c.sw.status()["peers"]))
            assert c.ids("team:x") == []
            filled = c.sw.antientropy_now()
            assert filled == {"team:x": 25}
            assert set(c.ids("team:x")) == set(team)
            assert c.ids("ops:y") == []  # a never told c about ops:y
            assert c.sw.antientropy_now() == {}  # nothing left to fill
        finally:
            c.stop()
    finally:
        a.stop()


def test_the_node_serves_swarm_status_health_and_metrics(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    (peer,) = make_nodes(tmp_path, nats_server.url, 1)
    peer.start()
    me = load_or_create(str(tmp_path / "node"))
    try:
        settings = load_settings(
            None,
            {
                "data_dir": str(tmp_path / "node"),
                "swarm.enabled": True,
                "swarm.nats_url": nats_server.url,
                "swarm.peers": [peer.sw.identity.public_b64, me.public_b64],
                "swarm.hello_interval_s": 0.3,
            },
            environ={},
        )
        peer.sw.peers.add(Peer(me.node_id, me.public_b64))
        with settings.open_engine() as engine, TestClient(create_app(engine, settings)) as http:
            aid = http.post(
                "/remember", json={"world": "w", "worker": "a", "payload": {"text": "x"}}
            ).json()
            assert wait_for(lambda: peer.ids("w") == [aid])
            pid = peer.db.remember("w", "p", text="from the peer")
            assert wait_for(lambda: len(engine.replay("w")) == 2)
            status = http.get("/swarm").json()
            assert status["enabled"] is True and status["node_id"] == me.node_id
            assert status["cursors"]["published_seq"] >= 1 and status["connected"] is True
            assert status["worlds"]["w"]["last_from"] == peer.sw.node_id
            assert wait_for(lambda: http.get("/swarm").json()["peers"][0]["alive"])
            health = http.get("/health").json()
            assert health["sync_lag_ms"] == 0 and health["replication"]["connected"] is True
            assert health["replication"]["sent"] == 1 and health["replication"]["received"] == 1
            text = http.get("/metrics").text
            assert "dwbase_sync_lag_seconds 0.0" in text
            assert "dwbase_replication_sent_total 1.0" in text
            assert "dwbase_replication_received_total 1.0" in text
            assert engine.get(pid).worker == "p"
            peer.db.remember("hidden", "p", text="another world")
            assert wait_for(lambda: len(engine.replay("hidden")) == 1)
            assert set(http.get("/swarm").json()["worlds"]) == {"w", "hidden"}
            secret, _ = create_token(str(tmp_path / "node"), "reader", read=["w"])
            headers = {"Authorization": f"Bearer {secret}"}
            # a token sees the swarm's worlds it may read, not the names of the others
            assert set(http.get("/swarm", headers=headers).json()["worlds"]) == {"w"}
    finally:
        peer.stop()


def _peers(pairs: list[list[str]]) -> tuple[Peer, ...]:
    return tuple(Peer(p[0], p[1]) for p in pairs)


def test_a_store_that_cannot_write_for_a_while_loses_nothing_from_the_stream(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a, b = (n.start() for n in make_nodes(tmp_path, nats_server.url, 2))
    try:
        real_append = b.db.storage.append
        failures = [0]

        def failing_append(records: Any) -> Any:
            if failures[0] < 3:  # the disk is full for a moment
                failures[0] += 1
                raise StorageError("database or disk is full")
            return real_append(records)

        b.db.storage.append = failing_append  # type: ignore[method-assign]
        ids = [a.db.remember("team:a", "agent", text=f"n{i}") for i in range(5)]
        assert wait_for(lambda: set(b.ids("team:a")) == set(ids), 10)
        assert failures[0] == 3
        assert "storage_error" not in b.sw.stats.dropped  # retried, not dropped
    finally:
        a.stop()
        b.stop()
