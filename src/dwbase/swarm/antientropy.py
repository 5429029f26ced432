"""Anti-entropy: two nodes find and fill gaps without the stream.

The stream forgets (``swarm.stream_max_age_s``), and a node restored from an old backup misses
what it held since; so every ``swarm.antientropy_interval_s`` (and on demand) a node asks each
live peer, over request-reply on the peer's inbox ``dwbase.swarm.<node_id>.inbox``:

1. ``summary`` — per world the peer may send us and we want: id count and a SHA-256 digest
   of the sorted ids;
2. ``ids`` — for a world whose summary differs from ours, the peer's ids (paged);
3. ``fetch`` — the atoms we lack, in pages of at most ~512 KiB; the reply also names the ids
   asked for that the peer will never send (deleted or erased there).

The ids of a world are every id the store knows for it (``Storage.known_ids``): atoms held,
quarantined, erased (crypto-shredded) and deleted by gc (tombstones). So two nodes that hold
the same history agree whatever each forgot, a node never asks for an atom it erased or
deleted, and a round reads ids only, never decoding the world's atoms.

Requests and replies are signed envelopes; a reply must come from the peer asked and name the
request's nonce. A node answers only configured peers, and only about worlds it shares, its
policy lets replicate, and the peer may read (``read`` in the peers file): a world a peer may
not have is never sent, nor is a quarantined or erased atom. What is fetched is stored
through the same ingest path as the stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from ..security.caps import world_matches
from .config import inbox_subject
from .envelope import EnvelopeError, Peer, nonce, open_envelope, seal

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from .replicator import Link

log = logging.getLogger("dwbase.swarm")

IDS_PAGE = 10_000
FETCH_IDS = 256
REPLY_BYTES = 512 * 1024
TIMEOUT_S = 5.0


class AntiEntropy:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.sw = link.sw
        self.nc: NatsClient | None = None
        # (peer, world) -> ids that peer said it will never send: not asked for again.
        self._gone: dict[tuple[str, str], set[str]] = {}

    # ------------------------------------------------------------------ local facts

    def _ids(self, world: str) -> list[str]:
        return self.sw.engine.storage.known_ids(world)

    def _summary(self, world: str) -> dict[str, Any]:
        ids = self._ids(world)
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        return {"count": len(ids), "digest": digest}

    def _may_send(self, world: str, peer: Peer) -> bool:
        return peer.may_read(world) and self.link.may_send(world)

    # ------------------------------------------------------------------ answering

    async def listen(self, nc: NatsClient) -> None:
        self.nc = nc
        await nc.subscribe(inbox_subject(self.sw.node_id), cb=self._on_request)

    async def _on_request(self, msg: Msg) -> None:
        sw = self.sw
        try:
            body = open_envelope(msg.data, sw.peers)
        except EnvelopeError as exc:
            with sw.lock:
                sw.stats.drop(f"request_{exc.reason}")
            return
        peer = sw.peers.get(body["from"])
        assert peer is not None
        try:
            answer = await asyncio.to_thread(self._answer, body, peer)
        except Exception as exc:
            log.info("swarm: anti-entropy request from %s failed: %s", peer.node_id, exc)
            answer = {"error": str(exc)}
        reply = seal(sw.identity, {"type": "reply", "re": body.get("nonce"), **answer})
        await msg.respond(reply)

    def _answer(self, body: dict[str, Any], peer: Peer) -> dict[str, Any]:
        op = body.get("op")
        if op == "summary":
            want = [str(p) for p in body.get("want") or []]
            worlds = {}
            for w in self.sw.engine.storage.worlds():
                if world_matches(w, want) and self._may_send(w, peer):
                    worlds[w] = self._summary(w)
            return {"worlds": worlds}
        world = body.get("world")
        if not isinstance(world, str) or not self._may_send(world, peer):
            return {"error": "denied"}
        if op == "ids":
            after = str(body.get("after") or "")
            ids = [i for i in self._ids(world) if i > after]
            return {"ids": ids[:IDS_PAGE], "more": len(ids) > IDS_PAGE}
        if op == "fetch":
            wanted = [str(i) for i in body.get("ids") or []][:FETCH_IDS]
            found = self.sw.engine.storage.get_many(wanted)
            atoms: list[dict[str, Any]] = []
            gone: list[str] = []  # never sent: deleted, erased, unknown or of another world
            size = 0
            for i in wanted:
                s = found.get(i)
                if s is None or s.atom.world != world:
                    gone.append(i)
                    continue
                if s.quarantine is not None:
                    continue  # held for now: may be released later
                d = s.atom.to_dict()
                size += len(orjson.dumps(d))
                if atoms and size > REPLY_BYTES:
                    break
                atoms.append(d)
            return {"atoms": atoms, "gone": gone}
        return {"error": f"unknown op {op!r}"}

    # ------------------------------------------------------------------ asking

    async def _ask(self, peer: Peer, body: dict[str, Any]) -> dict[str, Any]:
        assert self.nc is not None
        n = nonce()
        msg = await self.nc.request(
            inbox_subject(peer.node_id), seal(self.sw.identity, {**body, "nonce": n}), TIMEOUT_S
        )
        reply = open_envelope(msg.data, self.sw.peers)
        if reply.get("from") != peer.node_id or reply.get("re") != n:
            raise EnvelopeError("replay", "reply is not the answer to this request")
        if "error" in reply:
            raise EnvelopeError("refused", str(reply["error"]))
        return reply

    async def round(self) -> dict[str, int]:
        """One comparison with every live peer; atoms stored per world."""
        filled: dict[str, int] = {}
        for peer in self.link.membership.live_peers():
            try:
                await self._with_peer(peer, filled)
            except Exception as exc:
                log.info("swarm: anti-entropy with %s failed: %s", peer.node_id, exc)
        with self.sw.lock:
            self.sw.stats.antientropy_rounds += 1
            self.sw.stats.antientropy_filled += sum(filled.values())
        return filled

    async def _with_peer(self, peer: Peer, filled: dict[str, int]) -> None:
        cfg = self.sw.config
        summary = await self._ask(peer, {"type": "request", "op": "summary", "want": cfg.want})
        for world, theirs in (summary.get("worlds") or {}).items():
            if not cfg.wants(world) or not world_matches(world, peer.write):
                continue
            mine = await asyncio.to_thread(self._summary, world)
            if mine == theirs:
                continue
            have = set(await asyncio.to_thread(self._ids, world))
            have |= self._gone.get((peer.node_id, world), set())
            missing: list[str] = []
            after = ""
            while True:
                page = await self._ask(
                    peer, {"type": "request", "op": "ids", "world": world, "after": after}
                )
                ids = [str(i) for i in page.get("ids") or []]
                missing += [i for i in ids if i not in have]
                if not page.get("more") or not ids:
                    break
                after = ids[-1]
            while missing:
                got = await self._ask(
                    peer,
                    {"type": "request", "op": "fetch", "world": world, "ids": missing[:FETCH_IDS]},
                )
                atoms = [a for a in got.get("atoms") or [] if a.get("world") == world]
                asked = set(missing[:FETCH_IDS])
                gone = {str(i) for i in got.get("gone") or []} & asked
                if gone:
                    self._gone.setdefault((peer.node_id, world), set()).update(gone)
                if atoms:
                    stored = await self.link.ingest(atoms, peer)
                    filled[world] = filled.get(world, 0) + stored
                done = {a.get("id") for a in atoms} | gone
                if not done:
                    break
                missing = [i for i in missing if i not in done]
