"""Replication over a real nats-server: convergence, selection, forged and replayed envelopes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dwbase.errors import NotFoundError
from dwbase.swarm import load_or_create
from dwbase.swarm.config import world_subject
from dwbase.swarm.envelope import seal

from .harness import NatsServer, Node, make_nodes, wait_for, with_config


@pytest.fixture
def trio(tmp_path: Path, nats_server: NatsServer) -> Iterator[list[Node]]:
    nodes = [n.start() for n in make_nodes(tmp_path, nats_server.url, 3)]
    yield nodes
    for n in nodes:
        n.stop()


def test_three_nodes_writing_each_converge_to_the_same_atoms_per_world(trio: list[Node]) -> None:
    written: dict[str, set[str]] = {"team:a": set(), "team:b": set()}
    for k, node in enumerate(trio):
        for j in range(20):
            world = "team:a" if j % 2 else "team:b"
            written[world].add(node.db.remember(world, f"agent-{k}", text=f"note {k}.{j}"))
    for world, ids in written.items():

        def converged(w: str = world, i: set[str] = ids) -> bool:
            return all(set(n.ids(w)) == i for n in trio)

        assert wait_for(converged), world
        for n in trio:
            got = n.ids(world)
            assert len(got) == len(set(got)) == 30  # nothing duplicated
    a = trio[0].db.get(next(iter(written["team:a"])))
    for n in trio[1:]:
        b = n.db.get(a.id)
        assert (b.worker, b.payload_json, b.timestamp) == (a.worker, a.payload_json, a.timestamp)
    status = trio[0].sw.status()
    assert status["stats"]["sent"] == 20 and status["stats"]["received"] == 40
    assert {p["node_id"] for p in status["peers"] if p["alive"]} == {
        trio[1].sw.node_id,
        trio[2].sw.node_id,
    }


def test_a_world_not_wanted_or_denied_by_policy_is_never_received(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a, b, c = make_nodes(
        tmp_path,
        nats_server.url,
        3,
        configs=[{}, {"want": ("team:*",)}, {"deny": ("secret*",)}],
    )
    nodes = [a.start(), b.start(), c.start()]
    try:
        a.db.set_policy("private:x", replication_deny=["private:*"])
        shared = a.db.remember("team:x", "agent", text="shared")
        a.db.remember("ops:y", "agent", text="not asked for by b")
        a.db.remember("private:x", "agent", text="policy says stay home")
        a.db.remember("secret:z", "agent", text="c denies secret*")
        last = a.db.remember("team:x", "agent", text="the last one")
        assert wait_for(lambda: set(b.ids("team:x")) == {shared, last})
        assert wait_for(lambda: set(c.ids("team:x")) == {shared, last})
        assert a.sw.wait_published()
        # worlds are published in batches of their own, in no order across worlds
        assert wait_for(lambda: len(c.ids("ops:y")) == 1)
        assert b.ids("ops:y") == []
        for n in (b, c):
            assert n.ids("private:x") == []  # never even published
            assert "private:x" not in n.db.list_worlds()
        assert c.ids("secret:z") == []
        assert c.sw.stats.dropped.get("not_wanted") == 1
        assert "private:x" not in a.sw.status()["worlds"]
    finally:
        for n in nodes:
            n.stop()


def test_forged_tampered_unknown_and_replayed_envelopes_are_dropped_and_counted(
    tmp_path: Path, trio: list[Node], nats_server: NatsServer
) -> None:
    a, b, _ = trio
    aid = a.db.remember("team:a", "agent", text="genuine")
    assert wait_for(lambda: b.ids("team:a") == [aid])
    atom = a.db.get(aid).to_dict()
    subject = world_subject("team:a")
    forged_atom = {**atom, "id": "01J0000000000000000000FAKE", "payload_json": '{"text":"x"}'}

    # a stranger's key claiming to be a
    stranger = load_or_create(str(tmp_path / "stranger"))
    body = {"type": "atoms", "world": "team:a", "n": 10**9, "atoms": [forged_atom]}
    wrong_key = bytearray(seal(stranger, body))
    wrong_key[68:] = wrong_key[68:].replace(stranger.node_id.encode(), a.sw.node_id.encode())
    nats_server.publish(subject, bytes(wrong_key))
    # a's own envelope with its body changed after signing
    genuine = seal(a.sw.identity, {**body, "atoms": [atom]})
    nats_server.publish(subject, genuine.replace(b"genuine", b"tampered"))
    # a peer nobody configured, signing correctly with its own key
    nats_server.publish(subject, seal(stranger, body))
    # no signature at all
    nats_server.publish(subject, b'{"type":"atoms","world":"team:a","atoms":[]}')
    # a hello signed by a key nobody configured
    nats_server.publish_core("dwbase.node.hello", seal(stranger, {"type": "hello"}))
    # a's genuine first envelope, sent again
    first = seal(a.sw.identity, {"type": "atoms", "world": "team:a", "n": 1, "atoms": [atom]})
    nats_server.publish(subject, first)

    def counted() -> bool:
        d = b.sw.stats.dropped
        reasons = ("bad_signature", "unknown_peer", "malformed", "replay", "hello_unknown_peer")
        return all(d.get(r, 0) >= 1 for r in reasons)

    assert wait_for(counted), b.sw.stats.dropped
    assert b.sw.stats.dropped["bad_signature"] == 2  # wrong key, tampered body
    assert b.ids("team:a") == [aid]
    assert stranger.node_id not in {p["node_id"] for p in b.sw.status()["peers"]}
    with pytest.raises(NotFoundError):
        b.db.get("01J0000000000000000000FAKE")
    health = b.sw.health()["replication"]
    assert health["dropped"]["replay"] >= 1 and health["connected"] is True


def test_a_peer_writing_a_world_it_may_not_write_here_is_refused_and_counted(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a, b = make_nodes(tmp_path, nats_server.url, 2)
    # b lets a write only team:* worlds (the peers file's "write")
    peers = tuple(replace(p, write=("team:*",)) if p.name == "node0" else p for p in b.config.peers)
    b = with_config(b, peers=peers)
    nodes = [a.start(), b.start()]
    try:
        ops = a.db.remember("ops:x", "agent", text="not for b")
        team = a.db.remember("team:x", "agent", text="for b")
        assert wait_for(lambda: b.ids("team:x") == [team])
        assert wait_for(lambda: b.sw.stats.dropped.get("capability_denied") == 1)
        assert b.ids("ops:x") == [] and a.ids("ops:x") == [ops]
    finally:
        for n in nodes:
            n.stop()
