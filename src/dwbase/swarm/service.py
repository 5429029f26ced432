"""The swarm of one node: a thread running the NATS link beside the engine.

:class:`Swarm` owns the node's identity, peers and ``swarm.json``, starts the link
(:mod:`dwbase.swarm.replicator`, which imports nats-py) on a thread of its own with its own
event loop, and answers what operators ask: :meth:`Swarm.status` (``GET /swarm``,
``dwbase swarm status``) and :meth:`Swarm.health` (``sync_lag_ms`` and the replication state
in ``/health``).

>>> import dwbase, tempfile
>>> sw = Swarm(dwbase.open(":memory:"), SwarmConfig(data_dir=tempfile.mkdtemp()))
>>> sw.health()["replication"]["connected"]
False
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .. import __version__
from ..errors import UnavailableError
from .config import SwarmConfig
from .envelope import PeerBook, ReplayGuard
from .identity import Identity, load_or_create
from .state import SwarmState, load_state, save_state

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("dwbase.swarm")

T = TypeVar("T")

SAVE_EVERY_S = 0.2


@dataclass(slots=True)
class SwarmStats:
    """Counters of one node's replication (``dwbase_replication_*``)."""

    sent: int = 0  # atoms published
    received: int = 0  # atoms stored from peers (stream and anti-entropy)
    envelopes_sent: int = 0
    antientropy_filled: int = 0
    antientropy_rounds: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # by reason
    latencies_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=20_000)
    )

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class Swarm:
    """Replication of one engine's worlds with its peers. ``start()`` / ``stop()``."""

    def __init__(
        self, engine: Engine, config: SwarmConfig, *, clock: Callable[[], float] = time.time
    ):
        self.engine = engine
        self.config = config
        self.clock = clock
        self.identity: Identity = load_or_create(config.data_dir)
        self.peers = PeerBook(p for p in config.peers if p.node_id != self.identity.node_id)
        self.state: SwarmState = load_state(config.data_dir)
        if self.state.node_id != self.identity.node_id:
            # Another key (a new data dir, or a restored one): cursors and marks were another
            # node's; the outbox starts over (peers skip what they have).
            self.state = SwarmState(node_id=self.identity.node_id)
        if self.state.want != list(config.want):
            self.state.want = list(config.want)
            self.state.cursor = 0  # newly wanted worlds arrive with their stream history
        self.guard = ReplayGuard()
        self.guard.marks = self.state.marks  # one dict: what the guard accepts is saved
        self.stats = SwarmStats()
        self.lock = threading.Lock()  # state and stats between the link and readers
        self.connected = False
        self.pending = 0  # stream messages this node has not consumed yet
        self.last_ts_ms = 0  # sender time of the newest envelope consumed
        self.caught_up_at = clock()
        self.disconnected_since: float | None = clock()
        self.ingested: set[str] = set()  # ids stored from peers, not to be published again
        self.version = __version__
        self._dirty = False
        self._saved_at = 0.0
        self.flush_on_stop = True
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._link: Any = None

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the link on its own thread; it connects (and reconnects) by itself."""
        try:
            from .replicator import Link
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise UnavailableError(
                f"swarm extra not installed ({exc}): pip install 'dwbase[swarm]'"
            ) from None
        if self._thread is not None:
            return
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stop = asyncio.Event()
            self._link = Link(self)
            ready.set()
            try:
                loop.run_until_complete(self._link.run(self._stop))
            except Exception:
                log.exception("swarm link failed")
            finally:
                # nats-py's own tasks outlive a close that timed out (NATS paused): end them
                # here, so nothing is left pending on a closed loop.
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name="dwbase-swarm", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self, timeout: float = 10.0, *, flush: bool = True) -> None:
        """Stop the link (publishing what it can first) and save ``swarm.json``.

        ``flush=False`` stops as a crash would: no last publish and no last save, so the
        next start resumes from the state last written (the convergence checker's kill).
        """
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        self.flush_on_stop = flush
        with contextlib.suppress(RuntimeError):  # the loop ended already
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None
        if flush:
            self.save(force=True)

    def call(self, coro: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        """Run ``coro()`` on the link's loop and wait for its result."""
        loop = self._loop
        if loop is None or self._link is None:
            raise UnavailableError("the swarm is not running")
        return asyncio.run_coroutine_threadsafe(coro(), loop).result(timeout)

    def antientropy_now(self, timeout: float = 30.0) -> dict[str, int]:
        """Compare every wanted world with every live peer now; atoms stored, per world."""
        return self.call(lambda: self._link.antientropy.round(), timeout)

    def wait_published(self, timeout: float = 10.0) -> bool:
        """True once every local atom there is now has been published (tests, benchmarks)."""
        target = self.engine.storage.max_seq()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.published_seq >= target:
                return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------ state

    def mark_dirty(self) -> None:
        self._dirty = True

    def save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or (self._dirty and now - self._saved_at >= SAVE_EVERY_S)):
            return
        with self.lock:
            self._dirty = False
            self._saved_at = now
            save_state(self.config.data_dir, self.state)

    # ------------------------------------------------------------------ reports

    def lag_ms(self) -> float:
        """How far behind its peers this node may be: 0 when it has consumed everything;
        the age of the newest event consumed while more wait; and, while NATS is unreachable,
        the time since it last knew it was current."""
        now = self.clock()
        if not self.connected:
            return max(0.0, (now - self.caught_up_at) * 1000)
        if self.pending <= 0:
            return 0.0
        return max(0.0, now * 1000 - self.last_ts_ms) if self.last_ts_ms else 0.0

    def outbox(self) -> int:
        """Local atoms not yet published (an upper bound: held and unshared ones count)."""
        try:
            return max(0, self.engine.storage.max_seq() - self.state.published_seq)
        except Exception:  # a closed store: nothing can be said
            return 0

    def health(self) -> dict[str, Any]:
        """``sync_lag_ms`` and ``replication`` for ``/health``; ``problem`` when degraded."""
        lag = round(self.lag_ms(), 3)
        with self.lock:
            dropped = dict(self.stats.dropped)
        problem = None
        if not self.connected:
            since = self.disconnected_since or self.clock()
            problem = (
                f"replication: NATS {self.config.nats_url} unreachable for "
                f"{self.clock() - since:.0f} s; {self.outbox()} local atom(s) wait in the outbox"
            )
        return {
            "sync_lag_ms": lag,
            "replication": {
                "status": "ok" if problem is None else "degraded",
                "connected": self.connected,
                "outbox": self.outbox(),
                "pending": self.pending,
                "sent": self.stats.sent,
                "received": self.stats.received,
                "dropped": dropped,
            },
            "problem": problem,
        }

    def status(self) -> dict[str, Any]:
        """Peers, worlds, lag and cursors (``GET /swarm``)."""
        now = self.clock()
        ttl_default = 3 * self.config.hello_interval_s
        with self.lock:
            peers = []
            for p in self.peers:
                seen = self.state.peers.get(p.node_id, {})
                seen_at = seen.get("seen_at")
                ttl = seen.get("ttl", ttl_default)
                peers.append(
                    {
                        "node_id": p.node_id,
                        "name": p.name,
                        "endpoint": seen.get("endpoint"),
                        "want": seen.get("want"),
                        "version": seen.get("version"),
                        "seen_at": seen_at,
                        "alive": seen_at is not None and now - seen_at <= ttl,
                    }
                )
            worlds = {w: dict(v) for w, v in sorted(self.state.worlds.items())}
            lat = sorted(self.stats.latencies_ms)
            stats = {
                "sent": self.stats.sent,
                "received": self.stats.received,
                "envelopes_sent": self.stats.envelopes_sent,
                "dropped": dict(self.stats.dropped),
                "antientropy_rounds": self.stats.antientropy_rounds,
                "antientropy_filled": self.stats.antientropy_filled,
            }
            cursor, published = self.state.cursor, self.state.published_seq
        return {
            "node_id": self.node_id,
            "public_key": self.identity.public_b64,
            "nats_url": self.config.nats_url,
            "connected": self.connected,
            "want": list(self.config.want),
            "share": list(self.config.share),
            "deny": list(self.config.deny),
            "sync_lag_ms": round(self.lag_ms(), 3),
            "cursors": {"stream_seq": cursor, "published_seq": published},
            "outbox": self.outbox(),
            "pending": self.pending,
            "peers": peers,
            "worlds": worlds,
            "stats": stats,
            "latency_ms": _percentiles(lat),
        }


def _percentiles(sorted_ms: list[float]) -> dict[str, float | None]:
    def at(q: float) -> float | None:
        if not sorted_ms:
            return None
        return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "count": float(len(sorted_ms))}
