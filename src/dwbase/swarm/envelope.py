"""Signed envelopes: every message a node sends another is signed with its Ed25519 key.

On the wire an envelope is ``b"DWB1"``, the 64-byte signature, then the body: compact JSON
holding at least ``from`` (the sender's node id), ``type`` and ``ts`` (the sender's clock in
ms). The receiver looks ``from`` up in its :class:`PeerBook` and verifies the signature with
that peer's configured key, so ``from`` cannot be forged. What fails is dropped and counted
by reason:

* ``malformed`` — not an envelope at all (an unsigned message, a truncated one, bad JSON);
* ``unknown_peer`` — ``from`` names no configured peer (a key nobody trusted);
* ``bad_signature`` — the body was changed, or signed by another key than ``from``'s.

Replay protection is :class:`ReplayGuard`: an atoms envelope carries ``n``, the sender's store
sequence of its last atom, which only grows per sender and world; one whose ``n`` is not above
the last accepted from that sender for that world is stale or repeated (``replay``).

>>> import tempfile
>>> from .identity import load_or_create
>>> me = load_or_create(tempfile.mkdtemp())
>>> book = PeerBook([Peer(me.node_id, me.public_b64)])
>>> data = seal(me, {"type": "hello"})
>>> open_envelope(data, book)["from"] == me.node_id
True
>>> open_envelope(data[:-2] + b"}}", book)
Traceback (most recent call last):
...
dwbase.swarm.envelope.EnvelopeError: bad_signature: envelope from ... does not verify
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import InvalidInputError
from ..security.caps import Caller, world_matches
from .identity import Identity, decode_public, node_id_for

MAGIC = b"DWB1"
SIG_BYTES = 64


class EnvelopeError(Exception):
    """An envelope that is dropped; ``reason`` is the counter it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Peer:
    """A node this one trusts: its id, public key and what it may write here and read."""

    node_id: str
    key: str
    name: str = ""
    write: tuple[str, ...] = ("*",)  # worlds whose atoms it may send us
    read: tuple[str, ...] = ("*",)  # worlds we may send it (anti-entropy answers)
    _public: Ed25519PublicKey | None = field(default=None, compare=False, repr=False)

    def caller(self) -> Caller:
        """The peer as a caller of the engine: it writes (and carries policy and lifecycle
        atoms of) its worlds, and nothing else."""
        return Caller(
            read=(),
            write=self.write,
            policy=self.write,
            manage=self.write,
            name=f"peer {self.name or self.node_id}",
        )

    def may_read(self, world: str) -> bool:
        return world_matches(world, self.read)


class PeerBook:
    """The configured peers, by node id."""

    def __init__(self, peers: Iterable[Peer] = ()) -> None:
        self._peers: dict[str, Peer] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}
        for p in peers:
            self.add(p)

    def add(self, peer: Peer) -> None:
        self._peers[peer.node_id] = peer
        self._keys[peer.node_id] = Ed25519PublicKey.from_public_bytes(decode_public(peer.key))

    def get(self, node_id: str) -> Peer | None:
        return self._peers.get(node_id)

    def key(self, node_id: str) -> Ed25519PublicKey | None:
        return self._keys.get(node_id)

    def __iter__(self) -> Any:
        return iter(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)


def peer_from_entry(entry: Mapping[str, Any] | str, where: str) -> Peer:
    """A peer from a peers-file entry ``{"key", "name"?, "write"?, "read"?}`` or a bare key."""
    if isinstance(entry, str):
        entry = {"key": entry}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
        raise InvalidInputError(f"{where}: a peer needs a 'key' (base64 Ed25519 public key)")
    unknown = set(entry) - {"key", "name", "write", "read"}
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown peer field(s) {', '.join(sorted(unknown))}; "
            "valid: key, name, write, read"
        )
    patterns: dict[str, tuple[str, ...]] = {}
    for name in ("write", "read"):
        value = entry.get(name, ["*"])
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise InvalidInputError(f"{where}: peer {name} must be a list of world patterns")
        patterns[name] = tuple(str(v) for v in value)
    key = entry["key"].strip()
    return Peer(
        node_id=node_id_for(key),
        key=key,
        name=str(entry.get("name", "")),
        write=patterns["write"],
        read=patterns["read"],
    )


def load_peers(inline: Sequence[str], peers_file: str) -> list[Peer]:
    """Peers from ``swarm.peers`` (keys) and ``swarm.peers_file`` (JSON ``{"peers": [...]}``)."""
    out = [peer_from_entry(k, "swarm.peers") for k in inline]
    if peers_file:
        try:
            with open(peers_file, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            raise InvalidInputError(
                f"swarm.peers_file {peers_file} does not exist", field="swarm.peers_file"
            ) from None
        except ValueError as exc:
            raise InvalidInputError(
                f"swarm.peers_file {peers_file}: {exc}", field="swarm.peers_file"
            ) from None
        entries = doc.get("peers") if isinstance(doc, Mapping) else None
        if not isinstance(entries, list):
            raise InvalidInputError(
                f'swarm.peers_file {peers_file} must hold {{"peers": [...]}}',
                field="swarm.peers_file",
            )
        out += [peer_from_entry(e, peers_file) for e in entries]
    return out


def seal(identity: Identity, body: Mapping[str, Any]) -> bytes:
    """``body`` signed by ``identity`` (``from`` and ``ts`` are filled in)."""
    full = {**body, "from": identity.node_id, "ts": body.get("ts") or int(time.time() * 1000)}
    raw = orjson.dumps(full)
    return MAGIC + identity.sign(raw) + raw


def open_envelope(data: bytes, peers: PeerBook) -> dict[str, Any]:
    """The verified body of ``data``, or :class:`EnvelopeError` saying why it is dropped."""
    if len(data) <= len(MAGIC) + SIG_BYTES or not data.startswith(MAGIC):
        raise EnvelopeError("malformed", "not a signed DWBase envelope")
    sig = data[len(MAGIC) : len(MAGIC) + SIG_BYTES]
    raw = data[len(MAGIC) + SIG_BYTES :]
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EnvelopeError("malformed", "envelope body is not JSON") from None
    sender = body.get("from") if isinstance(body, dict) else None
    if not isinstance(sender, str):
        raise EnvelopeError("malformed", "envelope names no sender")
    key = peers.key(sender)
    if key is None:
        raise EnvelopeError("unknown_peer", f"envelope from {sender!r}, not a configured peer")
    try:
        key.verify(sig, raw)
    except InvalidSignature:
        raise EnvelopeError("bad_signature", f"envelope from {sender} does not verify") from None
    assert isinstance(body, dict)
    return body


def nonce() -> str:
    return os.urandom(12).hex()


class ReplayGuard:
    """The highest ``n`` accepted per (sender, world); kept in ``swarm.json``."""

    def __init__(self, marks: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self.marks: dict[str, dict[str, int]] = {k: dict(v) for k, v in (marks or {}).items()}

    def fresh(self, sender: str, world: str, n: int) -> bool:
        return n > self.marks.get(sender, {}).get(world, 0)

    def accept(self, sender: str, world: str, n: int) -> None:
        per = self.marks.setdefault(sender, {})
        per[world] = max(n, per.get(world, 0))
