"""A node's key, its id, envelopes and swarm.json, without NATS."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dwbase.errors import InvalidInputError
from dwbase.swarm.envelope import (
    EnvelopeError,
    Peer,
    PeerBook,
    ReplayGuard,
    load_peers,
    open_envelope,
    seal,
)
from dwbase.swarm.identity import KEY_FILE, load_or_create, node_id_for
from dwbase.swarm.state import STATE_FILE, SwarmState, load_state, save_state


def test_a_node_key_is_made_once_private_to_its_owner_and_gives_a_stable_id(
    tmp_path: Path,
) -> None:
    first = load_or_create(str(tmp_path))
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600
    again = load_or_create(str(tmp_path))
    assert (again.node_id, again.public_b64) == (first.node_id, first.public_b64)
    assert first.node_id == node_id_for(first.public_b64) and len(first.node_id) == 16
    assert load_or_create(str(tmp_path / "other")).node_id != first.node_id


def test_an_envelope_verifies_only_unchanged_and_from_a_configured_peer(tmp_path: Path) -> None:
    me = load_or_create(str(tmp_path / "me"))
    other = load_or_create(str(tmp_path / "other"))
    book = PeerBook([Peer(me.node_id, me.public_b64)])
    data = seal(me, {"type": "atoms", "world": "w", "n": 3, "atoms": []})
    assert open_envelope(data, book)["n"] == 3
    cases = {
        "bad_signature": data.replace(b'"n":3', b'"n":4'),
        "unknown_peer": seal(other, {"type": "hello"}),
        "malformed": data[68:],  # the body without its signature
    }
    for reason, bad in cases.items():
        with pytest.raises(EnvelopeError) as err:
            open_envelope(bad, book)
        assert err.value.reason == reason


def test_the_replay_guard_accepts_only_what_is_newer_per_sender_and_world() -> None:
    guard = ReplayGuard()
    assert guard.fresh("a", "w", 5)
    guard.accept("a", "w", 5)
    assert not guard.fresh("a", "w", 5) and not guard.fresh("a", "w", 4)
    assert guard.fresh("a", "w", 6) and guard.fresh("a", "other", 1) and guard.fresh("b", "w", 1)


def test_swarm_state_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    st = SwarmState(node_id="n1", published_seq=7, cursor=3, want=["*"])
    st.marks["a"] = {"w": 5}
    save_state(str(tmp_path), st)
    assert load_state(str(tmp_path)) == st
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file left
    (tmp_path / STATE_FILE).write_text("{not json")
    assert load_state(str(tmp_path)) == SwarmState()  # damaged: start over, do not crash


def test_peers_come_from_keys_and_a_peers_file_and_bad_entries_are_named(
    tmp_path: Path,
) -> None:
    a = load_or_create(str(tmp_path / "a"))
    b = load_or_create(str(tmp_path / "b"))
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": [{"key": b.public_b64, "name": "b", "read": ["t:*"]}]}))
    peers = load_peers([a.public_b64], str(path))
    assert [p.node_id for p in peers] == [a.node_id, b.node_id]
    assert peers[1].may_read("t:x") and not peers[1].may_read("ops")
    assert peers[1].caller().can_write("anything")
    with pytest.raises(InvalidInputError, match="not a base64 Ed25519"):
        load_peers(["nope"], "")
    path.write_text(json.dumps({"peers": [{"key": b.public_b64, "role": "x"}]}))
    with pytest.raises(InvalidInputError, match="unknown peer field"):
        load_peers([], str(path))


def test_restoring_a_backup_in_place_keeps_the_node_key(tmp_path: Path) -> None:
    import dwbase
    from dwbase.ops.backup import create_backup, restore_backup

    data = tmp_path / "data"
    with dwbase.open(data) as db:
        db.remember("w", "a", text="x")
    me = load_or_create(str(data))
    save_state(str(data), SwarmState(node_id=me.node_id, published_seq=1))
    create_backup(data, tmp_path / "b.tar.zst")
    restore_backup(tmp_path / "b.tar.zst", data, force=True)
    # The key is not in the backup (a private key) and the restore leaves it in place, so
    # the node keeps the identity its peers trust.
    assert load_or_create(str(data)).public_b64 == me.public_b64
    assert load_state(str(data)).node_id == me.node_id
