"""Anti-entropy and forgetting: atoms a node erased (crypto-shredded) or deleted by gc are
known to it, so it neither asks peers for them again nor gets them back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase.errors import NotFoundError
from dwbase.security.keys import env_name
from dwbase.swarm.antientropy import AntiEntropy

from .harness import NatsServer, Node, make_nodes, wait_for

KEY = "11" * 32  # a 256-bit key, hex


def _record_ops(node: Node) -> list[str]:
    """The ops (summary, ids, fetch) ``node``'s anti-entropy asks its peers from now on."""
    ae: AntiEntropy = node.sw._link.antientropy
    ops: list[str] = []
    ask: Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]] = ae._ask

    async def recording(peer: Any, body: dict[str, Any]) -> dict[str, Any]:
        ops.append(str(body.get("op")))
        return await ask(peer, body)

    ae._ask = recording  # type: ignore[method-assign]
    return ops


def _pair(tmp_path: Path, nats_server: NatsServer) -> list[Node]:
    nodes = make_nodes(tmp_path, nats_server.url, 2)
    for n in nodes:
        n.start()
    assert wait_for(lambda: all(any(p["alive"] for p in n.sw.status()["peers"]) for n in nodes))
    return nodes


def test_a_node_that_erased_a_subject_fetches_nothing_and_gets_nothing_back(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_name("k1"), KEY)
    for name in ("node0", "node1"):  # both stores encrypted under the key in the environment
        dwbase.open(tmp_path / name, encryption_key="k1").close()
    a, b = _pair(tmp_path, nats_server)
    try:
        keep = [a.db.remember("team:x", "agent", text=f"keep {i}") for i in range(5)]
        gone = [
            a.db.remember("team:x", "agent", text=f"alice {i}", labels=["subject:alice"])
            for i in range(3)
        ]
        assert a.sw.wait_published()
        assert wait_for(lambda: set(b.ids("team:x")) == set(keep + gone))
        assert a.db.erase_subject("alice")["atoms"] == 3  # only on a: b still holds them
        a_ops, b_ops = _record_ops(a), _record_ops(b)
        for _ in range(2):
            assert a.sw.antientropy_now() == {}
            assert b.sw.antientropy_now() == {}
        assert a_ops == ["summary", "summary"] and b_ops == ["summary", "summary"]
        assert sorted(a.ids("team:x")) == sorted(keep)
        with pytest.raises(NotFoundError):
            a.db.get(gone[0])
        assert set(b.ids("team:x")) == set(keep + gone)
    finally:
        a.stop()
        b.stop()


def test_a_node_that_deleted_atoms_by_gc_fetches_nothing_and_gets_nothing_back(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a, b = _pair(tmp_path, nats_server)
    try:
        keep = [a.db.remember("team:x", "agent", text=f"keep {i}") for i in range(5)]
        low = [a.db.remember("team:x", "agent", text=f"low {i}", importance=0.1) for i in range(3)]
        assert a.sw.wait_published()
        assert wait_for(lambda: set(b.ids("team:x")) == set(keep + low))
        policy = a.db.set_policy("team:x", min_importance=0.3)  # b gets it, yet runs no gc
        assert a.sw.wait_published()
        assert wait_for(lambda: b.db.storage.get(policy) is not None)
        a.db.gc()
        assert sorted(a.ids("team:x")) == sorted(keep)
        a_ops, b_ops = _record_ops(a), _record_ops(b)
        for _ in range(2):
            assert a.sw.antientropy_now() == {}
            assert b.sw.antientropy_now() == {}
        assert "fetch" not in a_ops and "fetch" not in b_ops
        assert sorted(a.ids("team:x")) == sorted(keep)
        assert set(b.ids("team:x")) == set(keep + low)
    finally:
        a.stop()
        b.stop()


def test_a_new_node_gets_what_a_peer_holds_and_stops_asking_for_what_it_deleted(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    a, c = make_nodes(tmp_path, nats_server.url, 2)
    a.start()
    try:
        for i in range(300):  # more than a fetch page of ids a will never send, sorted first
            a.db.remember("team:x", "agent", text=f"low {i}", importance=0.1)
        keep = [a.db.remember("team:x", "agent", text=f"keep {i}") for i in range(5)]
        a.db.set_policy("team:x", min_importance=0.3)
        a.db.gc()
        assert sorted(a.ids("team:x")) == sorted(keep)
        assert a.sw.wait_published()
        nats_server.purge()  # the stream forgot: only anti-entropy can fill c
        c.start()
        assert wait_for(lambda: any(p["alive"] for p in c.sw.status()["peers"]))
        ops = _record_ops(c)
        assert c.sw.antientropy_now().get("team:x") == len(keep)
        assert sorted(c.ids("team:x")) == sorted(keep)
        assert ops.count("fetch") >= 2
        ops.clear()
        assert c.sw.antientropy_now() == {}
        assert "fetch" not in ops  # ids a said it will never send are not asked for again
        assert sorted(c.ids("team:x")) == sorted(keep)
    finally:
        a.stop()
        c.stop()
