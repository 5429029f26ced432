"""Membership: presence on ``dwbase.node.hello``, and who is alive.

Every ``swarm.hello_interval_s`` a node announces itself in a signed envelope: its id, HTTP
endpoint, the world patterns it wants and shares, its version, its public key and a TTL
(three intervals). A hello from a configured peer records it in ``swarm.json`` (``peers``,
with when it was seen); a hello whose key nobody configured is ignored and counted
(``hello_unknown_peer``), as is one that does not verify. A peer is *alive* while its last
hello is younger than its TTL; anti-entropy talks only to live peers. A newcomer is answered
with a hello at once, so two nodes know each other within one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from .config import HELLO_SUBJECT
from .envelope import MAGIC, SIG_BYTES, EnvelopeError, Peer, open_envelope, seal

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from .service import Swarm


def from_self(data: bytes, node_id: str) -> bool:
    """True for this node's own envelopes (they come back on subjects it also reads)."""
    return f'"from":"{node_id}"'.encode() in data[len(MAGIC) + SIG_BYTES :]


class Membership:
    def __init__(self, swarm: Swarm) -> None:
        self.sw = swarm
        self.cfg = swarm.config
        self._now = asyncio.Event()

    def hello_body(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "endpoint": self.cfg.endpoint,
            "want": list(self.cfg.want),
            "share": list(self.cfg.share),
            "version": self.sw.version,
            "key": self.sw.identity.public_b64,
            "ttl": 3 * self.cfg.hello_interval_s,
        }

    def announce_now(self) -> None:
        self._now.set()

    async def announce(self, nc: NatsClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await nc.publish(HELLO_SUBJECT, seal(self.sw.identity, self.hello_body()))
            self._now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.cfg.hello_interval_s)

    async def on_hello(self, msg: Msg) -> None:
        sw = self.sw
        if from_self(msg.data, sw.node_id):
            return
        try:
            body = open_envelope(msg.data, sw.peers)
        except EnvelopeError as exc:
            with sw.lock:
                sw.stats.drop(f"hello_{exc.reason}")
            return
        sender = body["from"]
        now = sw.clock()
        with sw.lock:
            prev = sw.state.peers.get(sender)
            new = prev is None or now - prev.get("seen_at", 0) > prev.get("ttl", 0)
            sw.state.peers[sender] = {
                "endpoint": body.get("endpoint"),
                "want": body.get("want"),
                "version": body.get("version"),
                "ttl": float(body.get("ttl") or 3 * self.cfg.hello_interval_s),
                "seen_at": round(now, 3),
            }
        sw.mark_dirty()
        if new:
            self._now.set()  # answer a newcomer (or one back) at once, so it knows us too

    def live_peers(self) -> list[Peer]:
        now = self.sw.clock()
        out = []
        for p in self.sw.peers:
            seen = self.sw.state.peers.get(p.node_id)
            if seen and now - seen.get("seen_at", 0) <= seen.get("ttl", 15.0):
                out.append(p)
        return out
