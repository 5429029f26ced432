"""The NATS link of one node: outbox publisher, durable consumer, presence, anti-entropy.

Everything here runs on the swarm thread's event loop (see :class:`~.service.Swarm`); engine
calls go to worker threads so the NATS connection keeps answering pings while SQLite works.

* **Outbox.** Local atoms are published in store order from ``published_seq`` (saved in
  ``swarm.json``): what was written while NATS was down is sent when it returns. Atoms of one
  world go in one signed envelope (up to ``batch`` atoms, ~512 KiB) on
  ``dwbase.world.<hex(world)>.events``, with ``Nats-Msg-Id`` so a retried publish is stored
  once. Held (quarantined) atoms, atoms that came from peers, worlds outside ``share`` or
  ``deny``-ed, and worlds whose policy denies replication are never sent.
* **Consumer.** One durable pull consumer per node on the stream, filtered to the wanted
  worlds, resumed from this node's own cursor (the stream sequence of the last message it
  stored) on every start and reconnect, so catch-up is in order and nothing delivered while the
  connection dropped is skipped.
* **Ingest.** A verified envelope from a configured peer, for a wanted world the peer may
  write, not stale, goes through ``Engine.ingest`` with the peer as the caller: the same
  validation, policy and capability checks as a local write; ids are kept, known ids skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import nats
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import Error as JsError
from nats.js.errors import NotFoundError as JsNotFoundError

from ..errors import DWBaseError, StorageError, UnavailableError
from ..model import StoredAtom
from ..security.caps import world_matches
from .antientropy import AntiEntropy
from .config import HELLO_SUBJECT, world_of_subject, world_subject
from .envelope import EnvelopeError, Peer, open_envelope, seal
from .membership import Membership, from_self

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from .service import Swarm

log = logging.getLogger("dwbase.swarm")

ENVELOPE_BYTES = 512 * 1024
SCAN_CHUNK = 2000
FETCH = 64
MAX_INGESTED_MEMO = 200_000
PUBLISH_TIMEOUT_S = 2.0  # an ack lost to a NATS restart is retried after this


class Link:
    def __init__(self, swarm: Swarm) -> None:
        self.sw = swarm
        self.cfg = swarm.config
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.antientropy = AntiEntropy(self)
        self._reset_consumer = True
        self._wake = asyncio.Event()
        self.membership = Membership(swarm)
        self._closing = False
        self._stream_ok = False

    # ------------------------------------------------------------------ connection

    async def _connect(self) -> NatsClient:
        return await nats.connect(
            servers=self.cfg.servers,
            name=f"dwbase-{self.sw.node_id}",
            connect_timeout=1,
            reconnect_time_wait=0.25,
            max_reconnect_attempts=-1,
            ping_interval=2,
            max_outstanding_pings=2,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
            error_cb=self._on_error,
        )

    async def run(self, stop: asyncio.Event) -> None:
        stopped = asyncio.create_task(stop.wait())
        while not stop.is_set():
            connect = asyncio.create_task(self._connect())
            await asyncio.wait({connect, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not connect.done():  # asked to stop while connecting
                connect.cancel()
                with contextlib.suppress(BaseException):
                    await connect
                return
            try:
                self.nc = connect.result()
            except Exception as exc:
                log.info("swarm: NATS %s not reachable (%s); retrying", self.cfg.nats_url, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            break
        if stop.is_set() or self.nc is None:
            return
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self._connected()
        await self.nc.subscribe(HELLO_SUBJECT, cb=self.membership.on_hello)
        await self.antientropy.listen(self.nc)
        tasks = [
            asyncio.create_task(self._publisher(stop)),
            asyncio.create_task(self._consumer(stop)),
            asyncio.create_task(self.membership.announce(self.nc, stop)),
            asyncio.create_task(self._saver(stop)),
        ]
        if self.cfg.antientropy_interval_s:
            tasks.append(asyncio.create_task(self._antientropy(stop)))
        await stop.wait()
        self._closing = True
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.sw.flush_on_stop:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish_pending(), 2.0)  # a last flush
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.close(), 2.0 if self.sw.flush_on_stop else 0.1)
        # A close that timed out (NATS paused, or a crash-like stop) leaves the socket open.
        transport = getattr(self.nc, "_transport", None)
        with contextlib.suppress(Exception):
            if transport is not None:
                transport.close()
        self.sw.connected = False

    def _connected(self) -> None:
        self.sw.connected = True
        self.sw.disconnected_since = None

    async def _on_disconnect(self) -> None:
        if self.sw.connected and not self._closing:
            log.warning("swarm: NATS connection lost; local writes wait in the outbox")
        self.sw.connected = False
        self.sw.disconnected_since = self.sw.disconnected_since or self.sw.clock()

    async def _on_reconnect(self) -> None:
        log.info("swarm: NATS connection back")
        self._reset_consumer = True  # resume exactly after our cursor
        self._stream_ok = False  # a new server may not have it (a fresh store)
        self._connected()
        self._wake.set()
        self.membership.announce_now()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("swarm: NATS error: %s", exc)

    # ------------------------------------------------------------------ stream and outbox

    async def _ensure_stream(self) -> None:
        assert self.js is not None
        if self._stream_ok:
            return
        try:
            await self.js.stream_info(self.cfg.stream)
        except JsNotFoundError:
            with contextlib.suppress(JsError):  # another node made it meanwhile
                await self.js.add_stream(
                    api.StreamConfig(
                        name=self.cfg.stream,
                        subjects=["dwbase.world.*.events"],
                        storage=api.StorageType.FILE,
                        max_age=self.cfg.stream_max_age_s,
                        duplicate_window=120.0,
                    )
                )
        self._stream_ok = True

    def may_send(self, world: str) -> bool:
        return self.cfg.shares(world) and self.sw.engine.policy(world).allows_replication(world)

    async def _publisher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.sw.connected:
                    await self._publish_pending()
            except Exception as exc:
                log.info("swarm: publish failed (%s); retrying", exc)
                await asyncio.sleep(0.25)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.poll_s)

    async def _publish_pending(self) -> None:
        sw, storage = self.sw, self.sw.engine.storage
        upto = await asyncio.to_thread(storage.max_seq)
        if upto > sw.state.published_seq:
            await self._ensure_stream()
        while sw.state.published_seq < upto:
            start = sw.state.published_seq
            end = min(upto, start + SCAN_CHUNK)
            rows = await asyncio.to_thread(storage.scan_seqs, start, end)
            groups: dict[str, list[StoredAtom]] = {}
            for s in rows:
                if s.quarantine is not None:
                    continue
                if s.atom.id in sw.ingested:
                    sw.ingested.discard(s.atom.id)
                    continue
                groups.setdefault(s.atom.world, []).append(s)
            for world, items in groups.items():
                if not await asyncio.to_thread(self.may_send, world):
                    continue
                for chunk in _chunks(items, self.cfg.batch):
                    await self._publish(world, chunk)
            with sw.lock:
                sw.state.published_seq = end
            sw.mark_dirty()

    async def _publish(self, world: str, items: Sequence[StoredAtom]) -> None:
        assert self.js is not None
        n = items[-1].seq
        body = {
            "type": "atoms",
            "world": world,
            "n": n,
            "first": items[0].seq,
            "atoms": [s.atom.to_dict() for s in items],
        }
        data = seal(self.sw.identity, body)
        await self.js.publish(
            world_subject(world),
            data,
            stream=self.cfg.stream,
            headers={"Nats-Msg-Id": f"{self.sw.node_id}:{n}"},
            timeout=PUBLISH_TIMEOUT_S,
        )
        with self.sw.lock:
            self.sw.stats.sent += len(items)
            self.sw.stats.envelopes_sent += 1

    # ------------------------------------------------------------------ consumer

    @property
    def durable(self) -> str:
        return f"dwbase-{self.sw.node_id}"

    async def _bind(self) -> JetStreamContext.PullSubscription:
        assert self.js is not None
        await self._ensure_stream()
        cursor = self.sw.state.cursor
        with contextlib.suppress(JsNotFoundError):
            await self.js.delete_consumer(self.cfg.stream, self.durable)
        subjects = self.cfg.filter_subjects()
        config = api.ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=(
                api.DeliverPolicy.BY_START_SEQUENCE if cursor else api.DeliverPolicy.ALL
            ),
            opt_start_seq=cursor + 1 if cursor else None,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=60.0,
            max_ack_pending=20_000,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
        )
        await self.js.add_consumer(self.cfg.stream, config)
        return await self.js.pull_subscribe_bind(durable=self.durable, stream=self.cfg.stream)

    async def _consumer(self, stop: asyncio.Event) -> None:
        sub: JetStreamContext.PullSubscription | None = None
        while not stop.is_set():
            try:
                if self._reset_consumer or sub is None:
                    if sub is not None:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                    sub = None
                    self._reset_consumer = False
                    sub = await self._bind()
                try:
                    msgs = await sub.fetch(FETCH, timeout=0.5)
                except TimeoutError:
                    self.sw.pending = 0
                    self.sw.caught_up_at = self.sw.clock()
                    continue
                for msg in msgs:
                    await self._consume(msg)
                if self.sw.pending == 0:
                    self.sw.caught_up_at = self.sw.clock()
            except asyncio.CancelledError:
                raise
            except (NatsError, OSError) as exc:
                log.debug("swarm: consumer waits for NATS (%s)", exc)
                self._reset_consumer = True
                await asyncio.sleep(0.25)
            except (StorageError, UnavailableError) as exc:
                # Nothing after the cursor was consumed: the same envelopes come again.
                log.warning("swarm: the store refused a peer's atoms (%s); retrying", exc)
                self._reset_consumer = True
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("swarm: consumer failed; rebinding")
                self._reset_consumer = True
                await asyncio.sleep(0.5)

    async def _consume(self, msg: Msg) -> None:
        sw = self.sw
        meta = msg.metadata
        seq = meta.sequence.stream
        if seq > sw.state.cursor:
            await self.handle_atoms(msg.subject, msg.data)
            with sw.lock:
                sw.state.cursor = seq
            sw.pending = meta.num_pending
            sw.mark_dirty()
        with contextlib.suppress(Exception):
            await msg.ack()

    async def handle_atoms(self, subject: str, data: bytes) -> int:
        """Check and store one atoms envelope; the atoms stored (drops are counted)."""
        sw = self.sw
        try:
            body = open_envelope(data, sw.peers)
        except EnvelopeError as exc:
            if not from_self(data, sw.node_id):
                log.debug("swarm: dropped %s", exc)
                with sw.lock:
                    sw.stats.drop(exc.reason)
            return 0
        world = body.get("world")
        atoms = body.get("atoms")
        n = body.get("n")
        if (
            body.get("type") != "atoms"
            or not isinstance(world, str)
            or world != world_of_subject(subject)
            or not isinstance(atoms, list)
            or not isinstance(n, int)
        ):
            with sw.lock:
                sw.stats.drop("malformed")
            return 0
        sender = body["from"]
        peer = sw.peers.get(sender)
        assert peer is not None  # open_envelope verified it against a configured peer
        reason = None
        if not self.cfg.wants(world):
            reason = "not_wanted"
        elif not world_matches(world, peer.write):
            reason = "capability_denied"
        elif not sw.guard.fresh(sender, world, n):
            reason = "replay"
        if reason is not None:
            with sw.lock:
                sw.stats.drop(reason, max(1, len(atoms)))
            return 0
        if any(not isinstance(a, dict) or a.get("world") != world for a in atoms):
            with sw.lock:
                sw.stats.drop("malformed")
            return 0
        stored = await self.ingest(atoms, peer)
        with sw.lock:
            sw.guard.accept(sender, world, n)
            ts = int(body.get("ts") or 0)
            sw.last_ts_ms = ts
            sw.stats.latencies_ms.append(max(0.0, sw.clock() * 1000 - ts))
            sw.state.worlds[world] = {
                "last_from": sender,
                "last_n": n,
                "last_at": round(sw.clock(), 3),
                "received": sw.state.worlds.get(world, {}).get("received", 0) + stored,
            }
        return stored

    async def ingest(self, atoms: list[dict[str, Any]], peer: Peer) -> int:
        """Store atoms from ``peer`` through the engine's checks; count what is refused."""
        sw = self.sw
        if len(sw.ingested) > MAX_INGESTED_MEMO:
            sw.ingested.clear()  # at worst some peer atoms are published again (skipped there)
        for a in atoms:
            if isinstance(a.get("id"), str):
                sw.ingested.add(a["id"])
        stored, drops = await asyncio.to_thread(_ingest, sw.engine, atoms, peer)
        with sw.lock:
            sw.stats.received += stored
            for reason, count in drops.items():
                sw.stats.drop(reason, count)
        return stored

    # ------------------------------------------------------------------ background

    async def _saver(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.1)
            try:
                await asyncio.to_thread(self.sw.save)
            except Exception as exc:  # a full disk: the next save tries again
                log.warning("swarm: saving swarm.json failed: %s", exc)

    async def _antientropy(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.antientropy_interval_s)
            if stop.is_set():
                return
            try:
                await self.antientropy.round()
            except Exception as exc:
                log.info("swarm: anti-entropy round failed: %s", exc)


def _chunks(items: Sequence[StoredAtom], batch: int) -> list[Sequence[StoredAtom]]:
    out: list[Sequence[StoredAtom]] = []
    start, size = 0, 0
    for i, s in enumerate(items):
        weight = len(s.atom.payload_json) + 256 + (len(s.atom.vector or ()) * 24)
        if i > start and (i - start >= batch or size + weight > ENVELOPE_BYTES):
            out.append(items[start:i])
            start, size = i, 0
        size += weight
    if start < len(items):
        out.append(items[start:])
    return out


def _ingest(engine: Any, atoms: list[dict[str, Any]], peer: Peer) -> tuple[int, dict[str, int]]:
    """``engine.ingest`` as a peer; a refused batch is retried atom by atom so one bad atom
    does not hold back the rest."""
    drops: dict[str, int] = {}
    caller = peer.caller()
    try:
        result = engine.ingest(atoms, caller=caller)
        results = [result]
    except (StorageError, UnavailableError):
        raise  # the store, not the atoms: the envelope is consumed again later
    except DWBaseError:
        results = []
        for a in atoms:
            try:
                results.append(engine.ingest([a], caller=caller))
            except (StorageError, UnavailableError):
                raise
            except DWBaseError as exc:
                drops[exc.code] = drops.get(exc.code, 0) + 1
                log.info("swarm: atom %s from %s refused: %s", a.get("id"), peer.node_id, exc)
    stored = 0
    for r in results:
        stored += len(r.stored)
        if r.refused:
            drops["policy_denied"] = drops.get("policy_denied", 0) + len(r.refused)
    return stored, drops
