"""Ingest from peers through a node's engine, without NATS."""

from __future__ import annotations

from pathlib import Path

import dwbase
from dwbase.config import load_settings
from dwbase.swarm import Peer, load_or_create


def test_a_peers_batch_is_not_held_as_a_burst_but_its_impossible_numbers_are(
    tmp_path: Path,
) -> None:
    origin = dwbase.open(":memory:")  # the library's defaults: no burst rule
    origin.remember_batch([{"world": "w", "worker": "a", "payload": {"i": i}} for i in range(200)])
    atoms = [a.to_dict() for a in origin.replay("w")]
    bad = {**atoms[0], "id": "01J00000000000000000000BAD", "payload_json": '{"loss": NaN}'}
    settings = load_settings(None, {"data_dir": str(tmp_path / "node")}, environ={})
    assert settings.security_burst_count == 50  # a node holds a worker's 51st atom in 1 s
    me = load_or_create(str(tmp_path / "peer"))
    with settings.open_engine() as node:
        # A peer's catch-up brings one worker's atoms of many seconds at once: replication,
        # not a burst of writes; the origin applied its own burst rule when they were written.
        result = node.ingest([*atoms, bad], caller=Peer(me.node_id, me.public_b64).caller())
        assert len(result.stored) == 201
        held = node.quarantine_list("w")
        assert [a.id for a in held] == [bad["id"]]
        assert len(node.replay("w")) == 200
