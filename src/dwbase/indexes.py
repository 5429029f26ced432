"""Vector indexes per world: exact search, an HNSW graph past a threshold, background rebuilds.

Each ``(world, quarantined)`` pair has an :class:`~dwbase.vector.ExactIndex` (the vectors
themselves, exact cosine, context lookups) and, once it holds ``Options.ann_threshold``
vectors and the ``ann`` extra is installed, an :class:`~dwbase.vector.hnsw.HnswIndex` built in
the background that then answers nearest-neighbour queries. Indexes are rebuilt from storage
on open (lazily, on a world's first ask).

Embedder changes: the store records the embedder's ``name:version:dim`` (meta ``embedder``)
and, when it changes, the last seq written under the previous one (meta ``embedder_seq``).
Atoms up to that seq without a caller-given vector are re-embedded from their stored text by a
background rebuild; until it finishes the world's index is *stale* and ``ask`` skips semantic
search with a warning. Re-embedded vectors are kept by seq and embedder in a cache (a small
SQLite file ``vectors-reembedded.sqlite`` beside a SQLite store, memory otherwise), so a
later open with the same embedder does not embed them again. :meth:`IndexManager.status`
reports version, embedder, ready, rebuilding, progress, lag and last rebuild time per world.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .background import describe
from .embed import embedder_id
from .model import FilterSpec
from .timeutil import format_instant
from .vector import ExactIndex, graphfile, pack
from .vector import hnsw as hnsw_mod
from .vector.reembed import REEMBED_FILE as REEMBED_FILE
from .vector.reembed import ReembedCache
from .vector.world import WorldIndex as WorldIndex

if TYPE_CHECKING:
    from .background import BackgroundFailures
    from .embed import Embedder
    from .options import Options
    from .storage.base import Storage


@dataclass(frozen=True, slots=True)
class IndexHost:
    """What the index manager uses of its engine: the store, the embedder, the options, the
    background-failure tracker, world dimensions, the clock and whether the engine closed."""

    storage: Storage
    embedder: Embedder
    options: Options
    background: BackgroundFailures
    world_dim: Callable[[str], int]
    forget_dims: Callable[[], None]
    now_us: Callable[[], int]
    is_closed: Callable[[], bool]


INDEX_VERSION = 1
SAVE_EVERY = 10_000
"""The index thread saves a world's graph again once this many vectors changed in it."""
_BATCH = 256
# Vectors read from the store per statement when an index loads or catches up: a large
# world's first ask holds one page of rows beside the index, not all of them.
LOAD_PAGE = 4096
# Vectors a graph build inserts per call (on every core): ``close`` stops a build between
# calls, so a call must end well within close's wait for the build thread (10 s), even on a
# busy machine (one core inserts roughly 1,000-3,000 a second here).
BUILD_SLICE = 2000
GRAPH_SLICE_S = 0.004
"""Vectors go into an HNSW graph in slices of about this long, so a search waits no longer."""
QUIET_SLICE_S = 0.02
"""When no ask ran for ``ASK_QUIET_S``, slices this long (an ask that comes waits for one)."""
ASK_QUIET_S = 1.0
GRAPH_TAIL_MAX = 20_000
"""While asks run, a graph takes nothing in until its unindexed tail passes this many rows.

An ask scores the tail as one block on one core (about 0.2 ms per 1,000 rows); putting a
vector into the graph costs about 1 ms of CPU, which asks running at the same time lose. So
while asks come, the tail waits (up to this bound) and the graph catches up in the quiet."""
log = logging.getLogger("dwbase.indexes")


class IndexManager:
    """Owns every vector index of one engine."""

    def __init__(self, host: IndexHost) -> None:
        self.host = host
        self._lock = threading.RLock()
        self._states: dict[tuple[str, bool], WorldIndex] = {}
        self._stale: set[str] = set()  # worlds waiting for a re-embedding rebuild
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reindexing = False  # a _rebuild_stale thread is running (guarded by _lock)
        self._graph_wake = threading.Event()
        self._graph_thread: threading.Thread | None = None  # started with the first graph
        self._not_trusted: dict[tuple[str, bool], str] = {}  # saved graphs not used, and why
        # How long one graph insertion holds the graph (searches wait that long at most).
        self.graph_slice_s = GRAPH_SLICE_S
        self.graph_tail_max = GRAPH_TAIL_MAX
        self.ask_quiet_s = ASK_QUIET_S  # no ask for this long: the graph catches up at once
        self._last_ask = 0.0  # time.monotonic() of the latest get()
        # An encrypted store keeps re-embedded vectors in memory only: on disk they would be
        # plain text beside the ciphertext (docs/security.md).
        status = getattr(host.storage, "encryption_status", None)
        encrypted = callable(status) and status() is not None
        self.cache = ReembedCache(
            None if encrypted else getattr(host.storage, "path", None),
            lambda why: host.background.failed("reembed", why, log),
        )

    # ------------------------------------------------------------------ embedder changes

    @property
    def ident(self) -> str:
        return embedder_id(self.host.embedder)

    def reembed_upto(self) -> int:
        raw = self.host.storage.meta_get("embedder_seq")
        return int(raw) if raw else 0

    def embedder_changed(self, previous: str | None) -> None:
        """Called on open when the configured embedder differs from the recorded one."""
        storage = self.host.storage
        top = storage.max_seq()
        if previous is None or top == 0:
            return
        storage.meta_set("embedder_seq", str(top))
        dim = self.host.embedder.dim
        worlds = storage.worlds()
        for w in worlds:
            raw = storage.meta_get("dim:" + w)
            if raw and int(raw) != dim and not self._has_given_vectors(w):
                # The world's vectors all came from the embedder: they follow it.
                storage.meta_set("dim:" + w, str(dim))
        self.host.forget_dims()
        with self._lock:
            self._states.clear()
        self.rebuild_later(worlds)

    def _has_given_vectors(self, world: str) -> bool:
        for quarantined in (False, True):
            for s in self.host.storage.scan(world, FilterSpec(), quarantined=quarantined):
                if s.atom.vector is not None:
                    return True
        return False

    # ------------------------------------------------------------------ access

    def get(
        self, world: str, quarantined: bool, warnings: list[str] | None = None
    ) -> WorldIndex | None:
        """The world's index brought up to date, or ``None`` (with a warning) if not ready."""
        self._last_ask = time.monotonic()
        with self._lock:
            if world in self._stale:
                st = self._states.get((world, quarantined))
                pct = f" ({round(100 * st.progress)}%)" if st is not None else ""
                if warnings is not None:
                    warnings.append(
                        f"vector index of world {world!r} is being rebuilt{pct}; semantic "
                        "search skipped, hits use lexical relevance"
                    )
                return None
            st = self._states.get((world, quarantined))
        if st is None:
            made = self._from_file(world, quarantined) or WorldIndex(
                world,
                quarantined,
                ExactIndex(self.host.world_dim(world)),
                self.ident,
                last_rebuilt_us=self.host.now_us(),
            )
            with self._lock:
                st = self._states.setdefault((world, quarantined), made)
        with st.lock:
            if st.dirty:
                self._resync(st)
            else:
                self._take_out(st)
                self._catch_up(st)
        self._maybe_build_ann(st)
        if st.ann_building and warnings is not None:
            warnings.append(
                f"approximate (HNSW) index of world {world!r} is building; exact search used"
            )
        return st

    def stored(self, worlds: Iterable[str]) -> None:
        """Atoms were stored in ``worlds``: the index thread takes them into the loaded
        indexes that have a graph (and into the graph), so the graph's lag stays bounded and
        the next ask finds them there instead of loading them itself. An index without a
        graph catches up on its next ask, which costs little."""
        held = False
        with self._lock:
            for world in set(worlds):
                for q in (False, True):
                    st = self._states.get((world, q))
                    if st is not None and st.ann is not None:
                        st.stored = held = True
        if held:
            self._wake_graph()

    def removed(self, world: str, seqs: Sequence[int]) -> None:
        """Atoms ``seqs`` of ``world`` were deleted (gc): a loaded index drops them on its next
        use, without reading the world again."""
        with self._lock:
            for q in (False, True):
                st = self._states.get((world, q))
                if st is not None and not st.dirty:
                    st.removals.extend(seqs)

    def _take_out(self, st: WorldIndex) -> None:
        """(``st.lock`` held) Apply the removals :meth:`removed` queued."""
        with self._lock:
            gone, st.removals = st.removals, []
        if gone:
            st.exact.remove(gone)
            if st.ann is not None:
                st.ann.remove(gone)
            st.resyncs += 1  # rows the index thread read before this may be gone

    def invalidate(self, world: str) -> None:
        """Atoms left the world (gc, quarantine): resync with storage on next use."""
        with self._lock:
            for q in (False, True):
                st = self._states.get((world, q))
                if st is not None:
                    st.dirty = True

    def invalidate_all(self) -> None:
        """Every index resyncs with storage on its next use."""
        with self._lock:
            for st in self._states.values():
                st.dirty = True

    def reset(self) -> None:
        with self._lock:
            self._states.clear()

    def close(self) -> None:
        self._stop.set()
        self._graph_wake.set()
        with self._lock:
            threads = [*self._threads, self._graph_thread]
        for t in threads:
            if t is not None and t is not threading.current_thread():
                t.join(timeout=10)
        self._save_graphs(closing=True)
        self.cache.close()

    # ------------------------------------------------------------------ graph files

    def _stamp(self, world: str, quarantined: bool) -> graphfile.Stamp:
        gen = self.host.storage.meta_get("generation")
        return graphfile.Stamp(
            world, quarantined, self.ident, self.host.world_dim(world), int(gen or 0)
        )

    def _atom_id(self, world: str, seq: int) -> str | None:
        got = self.host.storage.get_seqs([seq]).get(seq)
        return got.atom.id if got is not None and got.atom.world == world else None

    def _from_file(self, world: str, quarantined: bool) -> WorldIndex | None:
        """The world's index from its saved graph, if one matches the store (else ``None``).

        The exact index is filled from the graph's own vectors (the same float32 the store
        holds), so no vector is read from the store but those the graph does not cover yet,
        which the catch-up then adds as the graph's pending tail.
        """
        base = graphfile.folder(self.host.storage)
        if (
            base is None
            or self.host.options.ann_threshold is None
            or world in self._stale
            or not hnsw_mod.available()
        ):
            return None
        stamp = self._stamp(world, quarantined)
        try:
            got = graphfile.load(
                base, stamp, self.host.storage.max_seq(), lambda seq: self._atom_id(world, seq)
            )
        except Exception as exc:  # never fatal: the index is rebuilt from the store
            got = f"{type(exc).__name__}: {exc}"
        if isinstance(got, str):
            if got != "no saved graph":
                log.info("saved graph of world %r not used (%s); rebuilding", world, got)
                self._not_trusted[(world, quarantined)] = got
            return None
        st = WorldIndex(world, quarantined, ExactIndex(stamp.dim), self.ident, last_rebuilt_us=None)
        st.exact.by_rows()
        seqs, vecs = got.seqs, got.vectors
        if any(a > b for a, b in itertools.pairwise(seqs)):  # the graph's own order
            order = sorted(range(len(seqs)), key=seqs.__getitem__)
            seqs, vecs = [seqs[i] for i in order], vecs[order]
        st.exact.add_matrix(seqs, vecs)
        st.graph_rows = st.exact.rows
        st.ann, st.seen_seq = got.graph, got.covered_seq
        st.saved_generation, st.graph_file = stamp.generation, "loaded"
        return st

    def _save_graphs(self, *, closing: bool) -> None:
        """Save the graphs that changed enough (closing: any change that a reopen would
        otherwise redo, or a store generation the file does not carry)."""
        base = graphfile.folder(self.host.storage)
        if base is None:
            return
        with self._lock:
            states = [st for st in self._states.values() if st.ann is not None]
            stale = set(self._stale)
        for st in states:
            ann = st.ann
            if ann is None or st.world in stale or not st.ready or st.dirty:
                continue
            if not closing and ann.changes < SAVE_EVERY:
                continue
            try:
                stamp = self._stamp(st.world, st.quarantined)
                due = ann.changes >= SAVE_EVERY or st.saved_generation != stamp.generation
                if not due:
                    continue
                with st.lock:
                    if st.dirty or st.ann is not ann:
                        continue
                    covered = max(st.seen_seq, st.exact.max_seq)
                    tail = st.exact.seqs_from(st.graph_rows)
                    if tail:
                        covered = min(covered, min(tail) - 1)
                newest = ann.newest()
                anchor = None
                if newest is not None:
                    found = self._atom_id(st.world, newest)
                    if found is None:  # gone since (a delete): the next save has it right
                        continue
                    anchor = (newest, found)
                graphfile.save(base, stamp, ann, covered, anchor)
                st.saved_generation = stamp.generation
            except Exception as exc:  # the graph is rebuilt on the next open instead
                self.host.background.failed(
                    "index", exc, log, where=f"saving the graph of world {st.world!r}"
                )

    # ------------------------------------------------------------------ loading

    def _resolve(
        self, st: WorldIndex, rows: Sequence[tuple[int, bytes]]
    ) -> list[tuple[int, bytes]]:
        """Stored vectors, re-embedding those written under an earlier embedder."""
        dim = st.exact.dim
        width = 4 * dim
        upto = self.reembed_upto()
        embedder = self.host.embedder
        keep = [(s, d) for s, d in rows if s > upto and len(d) == width]
        old = [(s, d) for s, d in rows if s <= upto]
        if not old:
            return keep
        if embedder.dim != dim:  # a world of caller-given vectors: keep those that fit
            return keep + [(s, d) for s, d in old if len(d) == width]
        ident = embedder_id(embedder)
        out: list[tuple[int, bytes]] = []
        for i in range(0, len(old), _BATCH):
            chunk = old[i : i + _BATCH]
            cached = self.cache.get(ident, [s for s, _ in chunk])
            out.extend((s, cached[s]) for s, _ in chunk if s in cached)
            chunk = [(s, d) for s, d in chunk if s not in cached]
            if not chunk:
                continue
            atoms = self.host.storage.get_seqs([s for s, _ in chunk])
            texts: list[tuple[int, str]] = []
            for s, d in chunk:
                a = atoms.get(s)
                if a is None:
                    continue
                if a.atom.vector is not None:
                    if len(d) == width:
                        out.append((s, d))
                elif a.text:
                    texts.append((s, a.text))
            if texts:
                vecs = embedder.embed([t for _, t in texts])
                made = [(s, pack(v)) for (s, _), v in zip(texts, vecs, strict=True)]
                self.cache.put(ident, made)
                out.extend(made)
        return sorted(keep + out)

    def _catch_up(self, st: WorldIndex) -> None:
        page = LOAD_PAGE
        while True:
            fresh = self.host.storage.load_vectors(
                st.world,
                quarantined=st.quarantined,
                after_seq=max(st.seen_seq, st.exact.max_seq),
                limit=page,
            )
            if fresh:
                self._add(st, self._resolve(st, fresh))
                st.seen_seq = max(st.seen_seq, fresh[-1][0])
            if len(fresh) < page:
                return

    def _add(self, st: WorldIndex, items: Sequence[tuple[int, bytes]]) -> None:
        """(``st.lock`` held) Into the exact index now; into the graph by the index thread."""
        if not items:
            return
        rows = st.exact.rows  # the index thread may have taken some in already
        st.exact.add(items)
        if st.ann is not None and st.exact.rows > rows:
            self._wake_graph()

    def _resync(self, st: WorldIndex) -> None:
        alive: set[int] = set()
        after, page = 0, LOAD_PAGE
        while True:  # a page of rows at a time, as a first load reads them
            rows = self.host.storage.load_vectors(
                st.world, quarantined=st.quarantined, after_seq=after, limit=page
            )
            alive.update(s for s, _ in rows)
            self._add(st, self._resolve(st, [(s, d) for s, d in rows if s not in st.exact]))
            if len(rows) < page:
                break
            after = rows[-1][0]
        gone = [s for s in st.exact.seqs() if s not in alive]
        st.exact.remove(gone)
        if st.ann is not None:
            st.ann.remove(gone)
        with self._lock:
            st.removals = []  # the resync took out every atom gone
        st.dirty = False
        st.resyncs += 1

    # ------------------------------------------------------------------ background work

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _maybe_build_ann(self, st: WorldIndex) -> None:
        threshold = self.host.options.ann_threshold
        if (
            threshold is None
            or not self.host.options.ann_build
            or st.ann is not None
            or st.ann_building
            or len(st.exact) < threshold
            or not hnsw_mod.available()
        ):
            return
        st.ann_building = True
        self._spawn("dwbase-ann", self._build_ann, st)

    def _build_ann(self, st: WorldIndex) -> None:
        try:
            seqs, mat, upto = st.exact.snapshot()
            ann = hnsw_mod.HnswIndex(st.exact.dim, capacity=int(len(seqs) * 1.1) + 1)
            step = BUILD_SLICE
            for i in range(0, len(seqs), step):
                if self._stop.is_set():
                    return
                ann.add_matrix(seqs[i : i + step], mat[i : i + step])
            del mat
            with st.lock:  # switch over; rows added meanwhile go in by the index thread
                ann.remove([s for s in seqs if s not in st.exact])
                st.exact.by_rows()  # searches go to the graph; asks read scattered vectors
                st.graph_rows = upto
                st.ann = ann
            self._wake_graph()
        except Exception as exc:  # the exact index keeps serving
            st.error = f"ANN build failed: {exc}"
            self.host.background.failed("index", exc, log, where=f"ANN build of world {st.world!r}")
        else:
            self.host.background.recovered("index", log)
        finally:
            st.ann_building = False

    def _wake_graph(self) -> None:
        """Vectors wait for a graph: make sure the index thread runs and looks."""
        self._graph_wake.set()
        with self._lock:
            if self._stop.is_set():
                return
            if self._graph_thread is None or not self._graph_thread.is_alive():
                t = threading.Thread(target=self._graph_loop, name="dwbase-index", daemon=True)
                self._graph_thread = t
                t.start()

    def _graph_loop(self) -> None:
        """The index thread: moves pending vectors into each world's graph, slice by slice.

        Asks never wait for it: they scan the pending tail exactly. While asks come, a graph
        takes nothing in until its tail passes ``graph_tail_max`` rows, then slices that hold
        the graph (and so a search) about ``graph_slice_s``; after ``ASK_QUIET_S`` without
        an ask, longer slices. (hnswlib's own threads were slower than one on a busy two-core
        machine, and took the cores a writer needs.) A failing insertion is logged and counted
        (task ``index``) and retried after a pause, while asks keep scanning the tail.
        """
        size, quiet_size = 8, 256
        while not self._stop.is_set():
            self._graph_wake.wait(1.0)
            self._graph_wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    fresh = [st for st in self._states.values() if st.stored]
                    stale = set(self._stale)
                for st in fresh:
                    st.stored = False
                    if st.world not in stale and st.ready and not st.dirty:
                        try:
                            self._catch_up_in_slices(st)
                        except Exception as exc:  # the next ask catches up itself
                            self.host.background.failed(
                                "index", exc, log, where=f"catch-up of world {st.world!r}"
                            )
                with self._lock:
                    work = [
                        st
                        for st in self._states.values()
                        if st.ann is not None and st.exact.rows > st.graph_rows
                    ]
                if not work:
                    self._save_graphs(closing=False)
                    break
                quiet = time.monotonic() - self._last_ask >= self.ask_quiet_s
                due = [st for st in work if quiet or self._tail_rows(st) > self.graph_tail_max]
                if not due:  # asks are running and every tail is short: look again later
                    self._stop.wait(min(self.ask_quiet_s, 0.25))
                    continue
                for st in due:
                    try:
                        if quiet:
                            quiet_size = self._graph_slice(st, quiet_size, quiet=True)
                        else:
                            size = self._graph_slice(st, size)
                    except Exception as exc:
                        st.error = f"graph update failed: {describe(exc)}"
                        self.host.background.failed(
                            "index", exc, log, where=f"graph update of world {st.world!r}"
                        )
                        self._stop.wait(1.0)  # the tail is scanned meanwhile; try again
                    else:
                        if st.error and st.error.startswith("graph update failed"):
                            st.error = None
                            self.host.background.recovered("index", log)
                time.sleep(0)  # let a waiting search have the graph first

    def _catch_up_in_slices(self, st: WorldIndex) -> None:
        """The index thread's catch-up: the store is read without the index's lock, and the
        vectors go in a slice at a time, so an ask waits for one slice at most."""
        with st.lock:
            after, resyncs = max(st.seen_seq, st.exact.max_seq), st.resyncs
        page = LOAD_PAGE
        while True:
            rows = self.host.storage.load_vectors(
                st.world, quarantined=st.quarantined, after_seq=after, limit=page
            )
            for i in range(0, len(rows), 1024):
                chunk = rows[i : i + 1024]
                with st.lock:
                    # atoms removed since the read (gc, quarantine) must not come back: stop,
                    # and leave the rest to the next ask's resync or catch-up
                    if st.dirty or st.resyncs != resyncs or self._stop.is_set():
                        return
                    self._add(st, self._resolve(st, chunk))
                    st.seen_seq = max(st.seen_seq, chunk[-1][0])
                time.sleep(0)
            if len(rows) < page:
                return
            with st.lock:
                after = max(st.seen_seq, st.exact.max_seq)

    @staticmethod
    def _tail_rows(st: WorldIndex) -> int:
        return st.exact.rows - st.graph_rows

    def _graph_slice(self, st: WorldIndex, size: int, *, quiet: bool = False) -> int:
        """Put up to ``size`` tail rows of ``st`` into its graph; the next slice's size.

        ``quiet``: no ask is running, so the slice may be longer."""
        with st.lock:
            ann, lo = st.ann, st.graph_rows
        if ann is None:
            return size
        seqs, block, hi = st.exact.rows_block(lo, size)
        if hi <= lo:
            return size
        t0 = time.perf_counter()
        if seqs:
            ann.add(seqs, block)
        took = time.perf_counter() - t0
        with st.lock:
            if st.ann is ann and st.graph_rows == lo:
                st.graph_rows = hi
            gone = [s for s in seqs if s not in st.exact]  # removed while going in
        if gone:
            ann.remove(gone)
        most, target = (4096, QUIET_SLICE_S) if quiet else (1024, self.graph_slice_s)
        if took <= 0:
            return min(4 * size, most)
        return max(1, min(most, int(size * target / took) or 1))

    def _rebuild_stale(self) -> None:
        while True:
            with self._lock:
                if not self._stale or self._stop.is_set():
                    self._reindexing = False
                    return
                world = sorted(self._stale)[0]
            try:
                for q in (False, True):
                    self.rebuild(world, q)
                self.host.background.recovered("index", log)
            except Exception as exc:
                self.host.background.failed("index", exc, log, where=f"rebuild of world {world!r}")
                with self._lock:
                    for q in (False, True):
                        st = self._states.get((world, q))
                        if st is not None:  # served again, resynced in full on next use
                            st.error = f"rebuild failed: {exc}"
                            st.dirty = True
                            st.ready, st.rebuilding = True, False
                if self.host.is_closed():
                    with self._lock:
                        self._reindexing = False
                    return
            with self._lock:
                self._stale.discard(world)

    def rebuild_later(self, worlds: Sequence[str]) -> None:
        with self._lock:
            self._stale.update(worlds)
            if self._reindexing or not self._stale:
                return  # the running thread picks the new worlds up
            self._reindexing = True
        self._spawn("dwbase-reindex", self._rebuild_stale)

    def rebuild(self, world: str, quarantined: bool = False) -> WorldIndex:
        """Build the world's index from storage now (re-embedding where needed) and swap it in."""
        dim = self.host.world_dim(world)
        st = WorldIndex(
            world, quarantined, ExactIndex(dim), self.ident, ready=False, rebuilding=True
        )
        st.progress = 0.0
        with self._lock:
            old = self._states.get((world, quarantined))
            self._states[(world, quarantined)] = st if world in self._stale else old or st
        total = max(1, self.host.storage.count(world, quarantined=quarantined))
        after, done, page = 0, 0, LOAD_PAGE
        while True:
            rows = self.host.storage.load_vectors(
                world, quarantined=quarantined, after_seq=after, limit=page
            )
            for i in range(0, len(rows), 4 * _BATCH):
                if self._stop.is_set():
                    return st
                st.exact.add(self._resolve(st, rows[i : i + 4 * _BATCH]))
            done += len(rows)
            st.progress = min(1.0, done / total)
            if len(rows) < page:
                break
            after = rows[-1][0]
        with st.lock:
            self._catch_up(st)
            st.ready, st.rebuilding, st.progress = True, False, 1.0
            st.last_rebuilt_us = self.host.now_us()
        with self._lock:
            self._states[(world, quarantined)] = st
        self._maybe_build_ann(st)
        return st

    # ------------------------------------------------------------------ status

    def health(self) -> dict[str, Any]:
        """Index state for ``Engine.health()``: problems, and lags in microseconds.

        ``lag_us`` is, over every index held in memory and every world waiting for a rebuild,
        the age (record time) of the oldest stored vector not yet in its index; 0 when all are
        caught up. A loaded index takes in new vectors at the start of each ask; a world never
        asked in this process has no index in memory (its first ask loads it in full) and does
        not count. ``rebuild_lag_us`` is the same over worlds being rebuilt, whose asks skip
        semantic search until the rebuild ends. Problems: a rebuild running or queued, an
        index whose last build or rebuild failed.
        """
        now = self.host.now_us()
        with self._lock:
            states = list(self._states.values())
            stale = set(self._stale)
        problems: list[str] = []
        lag = rebuild_lag = 0
        held: set[tuple[str, bool]] = set()
        for st in states:
            held.add((st.world, st.quarantined))
            if st.error:
                problems.append(f"vector index of world {st.world!r}: {st.error}")
            rebuilding = st.world in stale
            if st.rebuilding:  # the new index being filled, in seq order
                after = st.exact.max_seq
            elif rebuilding:  # the old index of a stale world: asks skip it, nothing counts
                after = 0
            else:
                after = max(st.seen_seq, st.exact.max_seq)
            age = self._pending_age(st.world, st.quarantined, after, now)
            lag = max(lag, age)
            if rebuilding:
                rebuild_lag = max(rebuild_lag, age)
        for world in sorted(stale):
            main = next((x for x in states if x.world == world and not x.quarantined), None)
            pct = f" ({round(100 * main.progress)}%)" if main and main.rebuilding else ""
            problems.append(f"vector index of world {world!r} is being rebuilt{pct}")
            for q in (False, True):
                if (world, q) not in held:  # queued, nothing built yet: every vector waits
                    age = self._pending_age(world, q, 0, now)
                    lag, rebuild_lag = max(lag, age), max(rebuild_lag, age)
        return {"problems": problems, "lag_us": lag, "rebuild_lag_us": rebuild_lag}

    def _pending_age(self, world: str, quarantined: bool, after_seq: int, now_us: int) -> int:
        """Age of the oldest atom after ``after_seq`` that has a vector to index (0: none)."""
        embeds = self.host.world_dim(world) == self.host.embedder.dim
        for _ in range(4):  # a few pages: atoms without text or vector are rare
            rows = self.host.storage.scan(
                world, FilterSpec(), quarantined=quarantined, after_seq=after_seq, limit=32
            )
            for s in rows:
                if s.atom.vector is not None or (embeds and s.text):
                    return max(0, now_us - s.recorded_us)
            if len(rows) < 32:
                break
            after_seq = rows[-1].seq
        return 0

    def _not_trusted_why(self, world: str) -> str | None:
        why = self._not_trusted.get((world, False))
        return None if why is None else f"not trusted: {why}"

    def status(self, world: str) -> dict[str, Any]:
        with self._lock:
            st = self._states.get((world, False))
            stale = world in self._stale
        loaded = st is not None and st.ready
        vectors = len(st.exact) if st is not None else 0
        lag = 0
        if st is not None and st.ready:
            lag = len(self.host.storage.load_vectors(world, after_seq=st.exact.max_seq))
        elif not stale:  # not loaded yet: every atom waits (counted, not read)
            lag = self.host.storage.count(world, quarantined=False)
        if stale:
            progress = st.progress if st is not None else 0.0
        else:
            progress = 1.0 if lag == 0 else vectors / (vectors + lag)
        emb = self.host.embedder
        return {
            "world": world,
            "kind": st.kind if st is not None else "exact",
            "version": INDEX_VERSION,
            "dim": self.host.world_dim(world),
            "embedder": f"{emb.name}:{emb.version}",
            "embedder_version": emb.version,
            "loaded": loaded,
            "vectors": vectors,
            "ready": not stale,
            "rebuilding": stale,
            "stale": stale,
            "progress": round(progress, 4),
            "lag": lag,
            "ann_building": bool(st and st.ann_building),
            "ann_pending": st.pending if st is not None else 0,
            "graph_file": (st.graph_file if st is not None else None)
            or self._not_trusted_why(world),
            "last_rebuilt": (
                format_instant(st.last_rebuilt_us)
                if st is not None and st.last_rebuilt_us is not None
                else None
            ),
            "error": st.error if st is not None else None,
        }
